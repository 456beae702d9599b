"""gradient_check.py: carried states, window sampling, the weight check, and the CLI end to end on a tiny model."""
import numpy as np
import pytest

from aux_scripts import gradient_check as sg_gradient_check
from state_gradients.core import lm_data
from state_gradients.core.configuration import load_config
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import gradient_check
from state_gradients.models.lm import LanguageModel
from state_gradients.models.numpy_rnn import NumpyRNN
from tests import numpy_reference as ref

WORDS = "the cat sat on a mat and the dog ran to the big red ball while a bird sang".split()


@pytest.fixture
def tiny(tmp_path):
    """A config file, its exported LSTM model (save_path/weights.npz + dict) and corpus, in tmp_path."""
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    for name, n_lines in [("train", 30), ("valid", 14), ("test", 3)]:
        lines = [" ".join(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(n_lines)]
        (data / f"{name}.txt").write_text("\n".join(lines) + "\n")
    config_path = tmp_path / "tiny.config"
    config_path.write_text(
        f"save_path {tmp_path / 'model'}\nlog_dir {tmp_path / 'logs'}\ndata_path {data}\nvocab False\n"
        "batch_size 2\nnum_steps 6\nsize 4\nembedding_size 3\nbasic_cell LSTM\nnum_layers 2\n"
        "init_scale 0.6\nsoftmax full\nforget_bias 0.2\ngrad_interm cell\ntime_step all\nmax_delay 4\n"
        f"grad_dir {tmp_path / 'grads'}\n")
    config = load_config(str(config_path), train=False, valid=True, test=False)
    corpus = lm_data.load_corpus(config, need_train=False, need_valid=True, need_test=False)
    model = LanguageModel.from_config(config, corpus.vocab_size)
    SavedModel(config.save_path).write_weights(model, corpus.word_to_id)
    return str(config_path), config, corpus


def _report(capsys):
    return capsys.readouterr().out


def test_entering_states_are_the_carried_validation_states(tiny):
    _, config, corpus = tiny
    net = NumpyRNN.from_npz(f"{config.save_path}/weights.npz")
    batches, _ = lm_data.make_windows(corpus.valid, 2, 6)
    numbers = np.array([0, 3, 4])                      # windows (batch, row) = (0, 0), (1, 1), (2, 0)
    state = gradient_check.entering_states(net, batches, numbers)
    w = net.arrays()
    for i, n in enumerate(numbers):
        expected = ref.zero_state(w)                   # the pass starts from zeros, row by row
        for b in range(n // 2):
            _, expected = ref.run(w, w["embedding"][batches[b, n % 2]], expected)
        for layer in range(2):
            for c in range(2):
                np.testing.assert_allclose(state[layer][c][i], expected[layer][c], rtol=0, atol=1e-14)
    assert np.abs(state[1][0][1]).max() > 0.01         # realistic: not the zero state


def test_sample_windows_is_seeded_sorted_and_distinct():
    a = gradient_check.sample_windows(50, 7, seed=3)
    assert list(a) == sorted(set(a.tolist())) and len(a) == 7 and a.max() < 50
    np.testing.assert_array_equal(a, gradient_check.sample_windows(50, 7, seed=3))
    assert list(gradient_check.sample_windows(4, 4, seed=0)) == [0, 1, 2, 3]
    with pytest.raises(UserError, match="only 4 windows"):
        gradient_check.sample_windows(4, 5, seed=0)


def test_relative_differences_use_each_windows_largest_entry_at_any_delay():
    # window 0: largest entry 4 (delay 0); window 1: 0.5 at delay 0 but 2.0 at delay 1
    ref_g = {0: np.array([[[2.0, -4.0]], [[0.5, 0.0]]]), 1: np.array([[[1e-3, 0.0]], [[0.0, -2.0]]])}
    other = {0: np.array([[[2.0, -4.0]], [[0.5, 0.0]]]), 1: np.array([[[0.0, 0.0]], [[0.0, -1.9]]])}
    np.testing.assert_allclose(gradient_check.relative_differences(ref_g, other), [1e-3 / 4, 0.1 / 2.0])


def test_parse_weight():
    net = NumpyRNN({"cell_type": np.array("RNN"), "num_layers": np.array(1), "forget_bias": np.array(0.0),
                    "embedding": np.zeros((5, 2)), "layer0/kernel": np.zeros((5, 3)), "layer0/bias": np.zeros(3),
                    "softmax_w": np.zeros((3, 5)), "softmax_b": np.zeros(5)})
    assert gradient_check.parse_weight("layer0/kernel[4, 2]", net) == ("layer0/kernel", (4, 2))
    assert gradient_check.parse_weight("softmax_b[3]", net) == ("softmax_b", (3,))
    for spec, message in [("layer0/kernel", "must look like"), ("layer1/kernel[0,0]", "no weight"),
                          ("layer0/kernel[5,0]", "outside"), ("softmax_b[1,1]", "outside")]:
        with pytest.raises(UserError, match=message):
            gradient_check.parse_weight(spec, net)


def test_check_weight_curve_and_derivative(tiny):
    _, config, corpus = tiny
    net = NumpyRNN.from_npz(f"{config.save_path}/weights.npz")
    batches, targets = lm_data.make_windows(corpus.valid, 2, 6)
    state = net.zero_state(2)
    result = gradient_check.check_weight(net, "layer1/kernel", (2, 5), batches[1], targets[1], state,
                                         span=0.3, points=7, eps=1e-3)
    w = net.weights["layer1/kernel"][2, 5]
    np.testing.assert_allclose(result["curve_w"], w + np.linspace(-0.3, 0.3, 7))
    assert result["curve_loss"][3] == result["loss"] == net.loss(batches[1], targets[1], state)
    other = net.perturbed("layer1/kernel", (2, 5), 0.3).loss(batches[1], targets[1], state)
    assert result["curve_loss"][6] == pytest.approx(other, abs=1e-12)
    expected = net.loss_and_gradients(batches[1], targets[1], state)[1]["layer1/kernel"][2, 5]
    assert result["analytic"] == expected
    assert abs(result["numeric"] - expected) <= 1e-9 and result["relative"] <= 1e-6


def test_cli_passes_and_plots(tiny, tmp_path, capsys):
    config_path, _, _ = tiny
    png = tmp_path / "out" / "loss.png"
    png.parent.mkdir()
    assert sg_gradient_check.main(["--config", config_path, "--windows", "3", "--seed", "1", "--layer", "0",
                                "--weight", "layer0/kernel[2,7]", "--span", "0.2", "--points", "5",
                                "--plot", str(png)]) == 0
    out = _report(capsys)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name != "loss.png"]    # no temporary left over
    assert "layer 0 (cell), t 5, delays 0..3" in out    # time_step 'all' -> num_steps - 1; max_delay from the config
    assert "weight layer0/kernel[2,7]" in out and "FAILED" not in out
    largest = [float(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("largest")]
    assert len(largest) == 2 and max(largest) <= 1e-5


def test_cli_fails_on_a_noisy_engine_and_on_a_tight_tolerance(tiny, capsys, monkeypatch):
    config_path, _, _ = tiny
    real = gradient_check.engine_state_gradients

    def noisy(*args):
        out = real(*args)
        return {k: g + (1e-3 if k == 2 else 0.0) for k, g in out.items()}

    monkeypatch.setattr(gradient_check, "engine_state_gradients", noisy)
    assert sg_gradient_check.main(["--config", config_path, "--interm", "hidden", "--time-step", "4"]) == 1
    out = _report(capsys)
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "TF engine" in failed[0]
    monkeypatch.setattr(gradient_check, "engine_state_gradients", real)
    assert sg_gradient_check.main(["--config", config_path, "--time-step", "4", "--tolerance", "1e-30"]) == 1
    failed = [line for line in _report(capsys).splitlines() if line.startswith("FAILED")]
    assert any("finite differences" in line for line in failed) and any("weight" in line for line in failed)


def test_cli_user_errors_exit_2(tiny, tmp_path, capsys):
    config_path, config, _ = tiny
    cases = [(["--time-step", "6"], "--time-step must lie in 0..5"),
             (["--windows", "1000"], "only"),
             (["--weight", "kernel[1,1]"], "no weight 'kernel'"),
             (["--layer", "2"], "--layer must lie in 0..1"),
             (["--max-delay", "0"], "--max-delay must be >= 1 (the number of delays)"),
             (["--time-step", "2", "--max-delay", "9"], "--max-delay 9: position t = 2 has only 3 inputs"),
             (["--plot", str(tmp_path / "x.pdf")], "must end in .png"),
             (["--tolerance", "0"], "--tolerance must be a positive number")]
    for extra, message in cases:
        assert sg_gradient_check.main(["--config", config_path] + extra) == 2
        assert message in capsys.readouterr().err
    other = tmp_path / "other.config"
    other.write_text(open(config_path).read().replace("size 4", "size 5"))
    assert sg_gradient_check.main(["--config", str(other)]) == 2
    assert "but " + str(other) + " says 2-layer LSTM with H 5, E 3" in capsys.readouterr().err
    no_delay = tmp_path / "no_delay.config"
    no_delay.write_text(open(config_path).read().replace("grad_interm cell\ntime_step all\nmax_delay 4\n", ""))
    assert sg_gradient_check.main(["--config", str(no_delay)]) == 2
    assert "has no max_delay: pass --max-delay D" in capsys.readouterr().err
    dict_path = tmp_path / "model" / "dict"
    words = [line.split("\t")[0] for line in dict_path.read_text().splitlines()]
    dict_path.write_text("".join(f"{w}\t{i}\n" for i, w in enumerate(words[:-1])))   # one row short
    assert sg_gradient_check.main(["--config", config_path]) == 2
    assert "embedding rows" in capsys.readouterr().err
    (tmp_path / "model" / "weights.npz").unlink()
    assert sg_gradient_check.main(["--config", config_path]) == 2
    assert "train first or run main.py --notrain --export_weights" in capsys.readouterr().err
