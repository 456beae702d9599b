"""interpret_state: learned noise scales on the paper's linear example, against state gradients, and the CLI."""
import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from aux_scripts import interpret_state as sg_interpret_state
from state_gradients.core import lm_data
from state_gradients.core.configuration import config_from_dict
from state_gradients.engine.recurrent import state_gradients
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import sigma_learner
from state_gradients.models.lm import LanguageModel
from tests.tiny_corpus import TAGS

PAPER_W = np.array([10.0, 20.0, 5.0, -20.0, -10.0])


def _linear_phi(w):
    weights = tf.constant(w)
    return lambda x: tf.tensordot(weights, x, 1)   # x [D, E] -> [E]


def _paper_x(e):
    return np.random.default_rng(0).normal(size=(5, e)) / 10


@pytest.mark.parametrize("e, per_dim", [(1, False), (4, False), (4, True)])
def test_linear_phi_matches_the_closed_form_and_ranks_by_weight(e, per_dim):
    scale, s2 = 0.5, 2.0
    sigma, losses = sigma_learner.learn_sigmas(_linear_phi(PAPER_W), _paper_x(e), s2, scale=scale, steps=300, lr=0.05,
                                     samples=32, seed=4, init_sigma=1e-3, per_dim=per_dim, return_losses=True)
    # d/dsigma_i [E w_i^2 sigma_i^2 / s2 - scale log sigma_i] = 0 (per_dim: each of the E dims, weight scale/E)
    optimum = np.sqrt(scale * s2 / (2 * e * PAPER_W ** 2))
    if per_dim:
        assert sigma.shape == (5, e)
        np.testing.assert_allclose(sigma, np.repeat(optimum[:, None], e, 1), rtol=0.15)
        sigma = sigma_learner.sigma_per_position(sigma[None])[0]
    assert sigma.shape == (5,)
    np.testing.assert_allclose(sigma, optimum, rtol=0.1)
    order = np.argsort(sigma)
    assert set(order[:2]) == {1, 3}           # |w| = 20: the 2nd and 4th positions matter most
    assert order[-1] == 2                     # |w| = 5: the 3rd matters least
    assert losses[-50:].mean() < losses[:10].mean() - 5
    assert np.all(np.diff(losses[:30]) < 0)   # from far below the optimum the loss falls steadily


def test_seed_determines_the_result():
    run = [sigma_learner.learn_sigmas(_linear_phi(PAPER_W), _paper_x(2), 1.0, scale=1.0, steps=40, lr=0.05, samples=4,
                            seed=seed) for seed in (7, 7, 8)]
    np.testing.assert_array_equal(run[0], run[1])
    assert not np.allclose(run[0], run[2])


def test_max_sigma_caps_inputs_phi_ignores():
    w = np.array([3.0, 0.0])
    sigma = sigma_learner.learn_sigmas(_linear_phi(w), _paper_x(1)[:2], 1.0, scale=1.0, steps=200, lr=0.1, samples=8,
                             seed=0, max_sigma=0.5)
    assert sigma[1] == pytest.approx(0.5)
    assert sigma[0] == pytest.approx(np.sqrt(0.5) / 3, rel=0.15)


def test_phi_variance_is_the_summed_unit_variance():
    out = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 6.0]])
    assert sigma_learner.phi_variance(out) == pytest.approx(1.0 + 12.0)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_small_noise_sigma_is_the_reciprocal_state_gradient_norm(cell):
    # Linear regime: sigma_k = sqrt(scale * s2 / 2) / ||d s_t / d x_{t-k}||_F, with G from the engine.
    model = LanguageModel(12, 3, 5, 2, cell, forget_bias=0.2, init_scale=0.6, dtype=tf.float64, seed=3)
    inputs = np.random.default_rng(0).integers(0, 12, size=(1, 6)).astype(np.int32)
    state = model.zero_state(1)
    grads = state_gradients(model, inputs, state, layer=1, component=0, time_steps=[5], max_delay=6)
    norms = np.array([np.linalg.norm(grads[k][1][0, 0]) for k in range(6)])
    scale = 1e-4
    learner = sigma_learner.SigmaLearner(sigma_learner.state_phi(model, 1, 0), scale=scale, lr=0.05, samples=16)
    sigma, _ = learner.fit(tf.gather(model.embedding, inputs), 1.0, steps=120, seed=0, init_sigma=1e-2, args=state)
    assert norms.max() / norms.min() > 2   # so that a wrong delay order or layer would fail
    np.testing.assert_allclose(sigma[0, ::-1], np.sqrt(scale / 2) / norms, rtol=0.15)


# --------------------------------------------------------------------------------------------
# The CLI on a tiny model
# --------------------------------------------------------------------------------------------

@pytest.fixture
def tiny(tiny_tagged_corpus):
    tmp_path = tiny_tagged_corpus(valid_lines=30, class_ext="")
    data = tmp_path / "data"
    values = dict(save_path=str(tmp_path / "model"), log_dir=str(tmp_path / "logs"), data_path=str(data),
                  vocab=False, batch_size=2, num_steps=8, size=6, embedding_size=4, basic_cell="LSTM",
                  num_layers=1, init_scale=0.5, softmax="full", forget_bias=0.2, max_delay=5,
                  grad_dtype="float64")
    config_path = tmp_path / "tiny.config"
    config_path.write_text("".join(f"{k} {v}\n" for k, v in values.items()))
    config = config_from_dict(values, train=False)
    corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
    model = LanguageModel.from_config(config, corpus.vocab_size, dtype=tf.float64)
    return tmp_path, config_path, config, corpus, model


def _read_csv(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_prefix_state_reproduces_the_pass_state(tiny):
    _, _, config, corpus, model = tiny
    windows, _ = lm_data.make_windows(corpus.valid, 2, 8)
    t, first = 6, 3
    targets, enter = sigma_learner.pass_states(model, windows, 0, 0, t, first)
    flat = windows.reshape(-1, 8)
    x = tf.gather(model.embedding, flat[:, first:t + 1])[:, None]
    state = tuple(tuple(tf.constant(s) for s in layer) for layer in enter)
    np.testing.assert_allclose(sigma_learner.state_phi(model, 0, 0)(x, state)[:, 0].numpy(), targets, rtol=1e-12, atol=1e-14)
    # window n = i * B + r continues window n - B: its entering state is the state after that window
    joined = np.concatenate([flat[0], flat[2]])[None]
    all_states = model.run_layers(model.embed(joined), model.zero_state(1))
    np.testing.assert_allclose(targets[2], all_states[0][0][0, 8 + t].numpy(), rtol=1e-12)


def test_cli_end_to_end(tiny, capsys):
    tmp, config_path, _, corpus, model = tiny
    out = tmp / "sig"
    common = ["--config", str(config_path), "--windows", "6", "--steps", "60", "--samples", "4",
              "--time-step", "6", "--pos-mapping", str(tmp / "pos_mapping.txt"),
              "--pos-classes", f"{tmp / 'nouns'},{tmp / 'verbs'}"]
    assert sg_interpret_state.main(common + ["--out", str(out)]) == 2
    assert "train first or run main.py" in capsys.readouterr().err
    SavedModel(tmp / "model").write_weights(model, corpus.word_to_id)

    assert sg_interpret_state.main(common + ["--out", str(out), "--chunk", "4"]) == 0
    assert "delay: 4\tmean sigma:" in capsys.readouterr().out
    for suffix in ("_windows.csv", ".csv", ".png"):
        assert os.path.getsize(f"{out}{suffix}") > 0
    rows = _read_csv(f"{out}_windows.csv")
    averages = _read_csv(f"{out}.csv")
    assert len(rows) == 6 * 5 and {r["delay"] for r in rows} == {str(k) for k in range(5)}
    assert all(r["t"] == "6" for r in rows)
    sigma = np.array([float(r["sigma"]) for r in rows])
    assert np.all(np.isfinite(sigma)) and np.all(sigma > 0)
    # the word column is the word at t - k of window n = i * B + r
    flat = lm_data.make_windows(corpus.valid, 2, 8)[0].reshape(-1, 8)
    assert all(r["word"] == corpus.id_to_word[flat[int(r["window"]), 6 - int(r["delay"])]] for r in rows)

    classes = {"overall": None, "nouns": {"NN", "NNS"}, "verbs": {"VBD"}}
    seen = set()
    for avg in averages:
        tags = classes[avg["class"]]
        values = [float(r["sigma"]) for r in rows if r["delay"] == avg["delay"]
                  and (tags is None or TAGS.get(r["word"], "") in tags)]
        assert int(avg["count"]) == len(values) > 0
        assert float(avg["mean_sigma"]) == pytest.approx(np.mean(values), rel=1e-12)
        assert float(avg["std_sigma"]) == pytest.approx(np.std(values), rel=1e-9, abs=1e-15)
        seen.add(avg["class"])
    assert seen == set(classes)

    # chunking does not change the result: each window's noise comes from (seed, window, step)
    assert sg_interpret_state.main(common + ["--out", str(tmp / "again"), "--chunk", "6"]) == 0
    again = np.array([float(r["sigma"]) for r in _read_csv(f"{tmp / 'again'}_windows.csv")])
    np.testing.assert_allclose(again, sigma, rtol=1e-9)


def test_cli_user_errors(tiny, capsys):
    tmp, config_path, _, corpus, model = tiny
    SavedModel(tmp / "model").write_weights(model, corpus.word_to_id)
    base = ["--config", str(config_path), "--out", str(tmp / "o"), "--steps", "2"]
    cases = [(["--windows", "1000"], "the validation data has only"),
             (["--time-step", "8"], "--time-step must lie in 0..7"),
             (["--pos-classes", str(tmp / "nouns")], "needs a POS mapping"),
             (["--init-sigma", "5", "--max-sigma", "1"], "exceeds --max-sigma"),
             # 500 delays at t = 3 (4 inputs up to it): refused, not silently cut to 4
             (["--time-step", "3", "--max-delay", "500"], "--max-delay 500: position t = 3 has only 4 inputs")]
    for extra, message in cases:
        assert sg_interpret_state.main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert sg_interpret_state.main(["--config", str(config_path), "--out", str(tmp / "tiny"), "--steps", "2",
                     "--windows", "1", "--pos-mapping", str(tmp / "tiny_windows.csv"),
                     "--pos-classes", str(tmp / "nouns")]) == 2
    assert "refusing to overwrite input file" in capsys.readouterr().err
