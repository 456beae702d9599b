"""main.py with basic_cell Transformer end to end: training, resuming, window perplexities, gradient passes, shards, refusals."""
import json
import os

import numpy as np
import pytest

from state_gradients.core import configuration, lm_data
from state_gradients.core.errors import UserError
from state_gradients.files import gradient_files
from state_gradients.files.saved_model import SavedModel
from state_gradients.models.numpy_transformer import NumpyTransformer
from state_gradients.training import run_epoch
from tests.main_runs import number, run, write_config

KEYS = dict(basic_cell="Transformer", num_layers=2, num_heads=2, embedding_size=6, size=8, forget_bias=None,
            lr_decay=None, max_epoch=None, optimizer="adam", learning_rate=0.01, lr_schedule="warmup_cosine",
            warmup_steps=5, max_grad_norm=1, dropout=0.9, max_max_epoch=2)
GRADS = dict(grad_interm="residual", time_step="all", max_delay=3, grad_average="True", grad_dump="False")


def numpy_window_perplexity(save_path, data, split, batch_size, num_steps):
    """The perplexity of the B x T windows of `split`, each read from its first token, in numpy from weights.npz."""
    net = NumpyTransformer.from_npz(os.path.join(save_path, "weights.npz"))
    word_to_id = lm_data.read_vocab_file(os.path.join(save_path, "dict"))
    ids = lm_data.words_to_ids(lm_data.read_words(os.path.join(data, f"{split}.txt")), word_to_id)
    inputs, targets = lm_data.make_windows(ids, batch_size, num_steps)
    total = sum(net.loss(x, y) * batch_size for x, y in zip(inputs, targets))
    return float(np.exp(total / inputs[..., 0].size / num_steps))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Transformer trained 2 epochs, and the same config killed during epoch 2's validation (after
    epoch 1's checkpoint) and rerun: a resume with the same max_max_epoch, hence the same schedule."""
    root = tmp_path_factory.mktemp("transformer")
    outputs = {}
    for name in ("whole", "resumed"):
        config = write_config(root, name, **KEYS)
        if name == "resumed":
            calls, real = [], run_epoch.evaluate_pass

            def killed_in_epoch_2(*args, **kwargs):
                calls.append(1)
                if len(calls) == 2:
                    raise KeyboardInterrupt
                return real(*args, **kwargs)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(run_epoch, "evaluate_pass", killed_in_epoch_2)
                assert main_run(config) != 0
        outputs[name] = main_run(config, capture=True)
    return root, outputs


def main_run(config, *extra, capture=False):
    from tf_scripts.main import main

    if not capture:
        return main(["--config", str(config), *extra])
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["--config", str(config), *extra])
    return code, buffer.getvalue()


def test_training_prints_window_perplexities_of_the_saved_model(trained):
    """Valid and test perplexities are those of the B x T windows without state, recomputed in numpy from the
    saved weights.npz (float32 weights, float64 sums: rel 1e-5)."""
    root, outputs = trained
    code, out = outputs["whole"]
    assert code == 0
    save = root / "models" / "whole"
    assert "Learning rate: 0.002" in out                 # the warm-up's first window: 0.01 * 1 / 5
    valid, test = number(out, "Epoch: 2 Valid Perplexity:"), number(out, "Test Perplexity:")
    assert valid == pytest.approx(numpy_window_perplexity(save, root / "data", "valid", 3, 4), rel=1e-5)
    assert test == pytest.approx(numpy_window_perplexity(save, root / "data", "test", 3, 4), rel=1e-5)


def test_resumed_training_continues_like_an_uninterrupted_run(trained):
    """The warm-up/cosine rate is set per window from the checkpointed window count: same weights either way."""
    root, outputs = trained
    assert outputs["resumed"][0] == 0 and "(1 epoch(s) done)" in outputs["resumed"][1]
    whole = SavedModel(str(root / "models" / "whole")).read_weights()
    resumed = SavedModel(str(root / "models" / "resumed")).read_weights()
    for name, value in whole.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


def test_sliding_evaluation_scores_every_token_with_context(trained, capsys):
    """eval_stride 2 < num_steps: the printed perplexity is window_perplexity's over one stream."""
    root, _ = trained
    config = write_config(root, "whole", **KEYS, eval_stride=2)
    code, out, err = run(capsys, "--config", config, "--notrain", "--notest")
    assert code == 0, err
    model = SavedModel(str(root / "models" / "whole")).load()
    ids = lm_data.words_to_ids(lm_data.read_words(str(root / "data" / "valid.txt")),
                               lm_data.read_vocab_file(str(root / "models" / "whole" / "dict")))
    assert number(out, "Valid Perplexity:") == pytest.approx(run_epoch.window_perplexity(model, ids, 4, 2), rel=1e-6)


def test_gradient_pass_and_its_shards(trained, capsys):
    """A gradient pass of the residual stream writes the averages; two shards (no state to replay) merge into
    the same files; --states-only is refused with one line."""
    root, _ = trained
    common = dict(KEYS, **GRADS, grad_blocks=2)
    one = write_config(root, "whole", **common, grad_dir=root / "grads_one")
    code, out, err = run(capsys, "--config", one, "--notrain", "--notest")
    assert code == 0, err
    assert "Valid Perplexity:" in out
    split = write_config(root, "whole", **common, grad_dir=root / "grads_split")
    for i in (1, 2):
        code, out, err = run(capsys, "--config", split, "--notrain", "--notest", "--shard", f"{i}/2")
        assert code == 0, err
        assert "Forward pass over" not in out
    merged = gradient_files.merge_shards(str(root / "grads_split"), log=lambda s: None)
    with open(root / "grads_one" / "grad_progress.json", encoding="utf-8") as handle:
        assert merged == pytest.approx(json.load(handle)["perplexity"], rel=1e-12)
    for k in range(3):
        a = np.load(root / "grads_one" / f"delay_{k}_avg.npy")
        b = np.load(root / "grads_split" / f"delay_{k}_avg.npy")
        assert a.shape == (8, 6)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * np.abs(a).max())
    code, _, err = run(capsys, "--config", split, "--notrain", "--notest", "--states-only")
    assert code != 0 and "carry no state" in err and "Traceback" not in err


@pytest.mark.parametrize("keys,message", [
    (dict(grad_interm="hidden"), "grad_interm must be residual or final"),
    (dict(grad_interm="final", grad_layer=0), "grad_layer must be 1"),
    (dict(num_heads=3), "multiple of num_heads"),
    (dict(eval_stride=5), "eval_stride must be <= num_steps"),
    (dict(softmax="sampled"), "softmax sampled is not available"),
    (dict(num_heads=None), "missing required key(s): num_heads"),
    (dict(lr_decay=0.5, max_epoch=1), "lr_decay and lr_schedule warmup_cosine exclude each other"),
])
def test_config_mistakes_name_the_key(tmp_path, keys, message):
    values = dict(KEYS, save_path="m", log_dir="l", data_path="d", vocab=False, num_steps=4, init_scale=0.1,
                  batch_size=3, trainer="trainer", softmax="full", time_step="all", max_delay=2, grad_dir="g")
    values.update(keys)
    train = "grad_interm" not in keys
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        configuration.config_from_dict({k: v for k, v in values.items() if v is not None}, train=train)


@pytest.mark.parametrize("key,value", [("num_heads", 2), ("ffn_size", 16), ("eval_stride", 2),
                                       ("grad_interm", "residual")])
def test_transformer_keys_are_refused_for_recurrent_models(key, value):
    values = dict(save_path="m", log_dir="l", data_path="d", vocab=False, basic_cell="LSTM", num_layers=1, size=4,
                  num_steps=4, init_scale=0.1, batch_size=3, softmax="full", forget_bias=0, **{key: value})
    if key == "grad_interm":
        values.update(time_step=0, max_delay=1, grad_dir="g")
    with pytest.raises(UserError, match=key if key != "grad_interm" else "state of basic_cell Transformer"):
        configuration.config_from_dict(values, train=False)


def test_gradient_check_of_a_transformer(trained, capsys):
    """sg-gradient-check on a Transformer: engine and autodiff vs the numpy twin's central differences, and the
    loss's weight derivative; exit 0 within the default tolerance 1e-5 (float64 throughout: ~1e-9 seen)."""
    from aux_scripts.gradient_check import main as check

    root, _ = trained
    config = write_config(root, "whole", **KEYS, **GRADS, grad_dir=root / "unused")
    assert check(["--config", str(config), "--windows", "2", "--time-step", "3", "--interm", "final"]) == 0
    out = capsys.readouterr().out
    assert "2-block Transformer" in out and "carry no state" in out
    assert out.count(" ok") == 3 and "FAIL" not in out


def test_sigma_and_txray_refuse_a_transformer(trained):
    """The two measures defined on a carried recurrent state say so, naming the model, instead of failing later."""
    from state_gradients.measures import interpret_state, txray

    root, _ = trained
    config = write_config(root, "whole", **KEYS, **GRADS, grad_dir=root / "unused")
    with pytest.raises(UserError, match=r"sigma \(sg-interpret-state\) is defined for recurrent models"):
        interpret_state.measure_sigma(str(config))
    with pytest.raises(UserError, match=r"TX-Ray \(sg-txray\) is defined for recurrent models.*weights.npz"):
        txray.run_txray(str(config), txray.TxrayOptions(features="token"))


def test_the_library_computes_a_transformers_profile(trained, tmp_path):
    """state_gradients in a notebook: load_model and MemoryProfile.compute work on a Transformer; the profile's
    overall average at delay 0 is the mean of the engine's Jacobians over every (window, t)."""
    import state_gradients as sg
    from state_gradients.engine.transformer import TransformerStateGradients

    root, _ = trained
    config = write_config(root, "whole", **KEYS, **GRADS, grad_dir=tmp_path / "api")
    model = sg.load_model(str(config), log=lambda s: None)
    assert model.lm.cell_type == "Transformer"
    profile = sg.MemoryProfile.compute(str(config), log=lambda s: None)
    ids = lm_data.words_to_ids(lm_data.read_words(str(root / "data" / "valid.txt")), model.word_to_id)
    inputs, _ = lm_data.make_windows(ids, 3, 4)
    engine = TransformerStateGradients(model.lm, layer=1, component=0, time_steps=range(4), max_delay=3, num_steps=4)
    g0 = np.concatenate([engine.jacobians(x, ())[0][0][1].reshape(-1, 8, 6) for x in inputs])
    np.testing.assert_allclose(profile.averages[0, 0], g0.mean(axis=0), rtol=0, atol=1e-6 * np.abs(g0).max())
    assert sg.normalisation(model).d_factor.shape == (6, 6)


def test_perturbation_measures_of_a_transformer(trained, tmp_path):
    """sg-perturb on a Transformer: contexts stay in the window (a longer one is refused, naming the window), the
    whole window as context is the full loss (increase 0 to rounding: float64, 1e-12 of losses of about 2), and
    every replacement measure, same-class draws included, is finite at every delay."""
    import contextlib
    import csv
    import io

    from aux_scripts import perturb
    from state_gradients.measures import perturbation

    root, _ = trained
    (tmp_path / "mapping.txt").write_text("".join(f"w{i:02d} {'A' if i % 2 else 'B'}\n" for i in range(40)),
                                          encoding="utf-8")
    (tmp_path / "odd.txt").write_text("A\n", encoding="utf-8")
    (tmp_path / "even.txt").write_text("B\n", encoding="utf-8")
    config = write_config(root, "whole", **dict(KEYS, **GRADS, batch_size=1, grad_blocks=3,
                                                pos_mapping=tmp_path / "mapping.txt",
                                                pos_classes=f"{tmp_path / 'odd.txt'},{tmp_path / 'even.txt'}"),
                          grad_dir=tmp_path / "unused")
    argv = ["--config", str(config), "--out", str(tmp_path / "p"), "--delays", "0,1,3", "--content", "odd",
            "--function", "even", "--targets-per-window", "4"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        assert perturb.main(argv + ["--contexts", "1,2,5"]) == 2
    assert "window" in err.getvalue() and "Traceback" not in err.getvalue()
    with contextlib.redirect_stdout(io.StringIO()):
        assert perturb.main(argv + ["--contexts", "1,2,4"]) == 0
    with open(tmp_path / "p" / "perturbation.csv", encoding="utf-8", newline="") as handle:
        rows = {(r["measure"], r["class"], int(r["delay"])): r for r in csv.DictReader(handle)}
    # num_steps 4: the only target with a 4-word context is t = 3, and its whole window is that context
    whole = rows[("truncation_loss", "overall", 4)]
    assert abs(float(whole["value"])) <= 1e-12 and float(whole["count"]) > 0
    assert float(rows[("truncation_loss", "overall", 1)]["value"]) > 0.01
    for name in perturbation.REPLACED:
        for k in (0, 1, 3):
            assert np.isfinite(float(rows[(name, "overall", k)]["value"])), (name, k)
    # no content or function classes (''): no same-class replacement and nothing dropped, rather than zeros
    with contextlib.redirect_stdout(io.StringIO()):
        assert perturb.main(argv[:2] + ["--out", str(tmp_path / "none"), "--delays", "1", "--content", "",
                                        "--function", "", "--contexts", "1,4"]) == 0
    with open(tmp_path / "none" / "perturbation.csv", encoding="utf-8", newline="") as handle:
        measured = {r["measure"] for r in csv.DictReader(handle)}
    assert measured == set(perturbation.REPLACEMENT + perturbation.SIZES + perturbation.TRUNCATION[:3])
