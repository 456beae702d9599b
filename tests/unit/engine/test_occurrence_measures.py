"""The occurrence measures of the engines: the output-level Jacobian against autodiff and central differences, and the
per-class sums of ‖G·D‖_*, ‖J·D‖, ‖J·D‖² and J·D against their definitions on the engine's own G and J."""
# Shape letters: R rows, T positions, E embedding, H state, V vocabulary, C classes.
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.recurrent import NUCLEAR_STRIDE, OCCURRENCE_SCALARS, StateGradients
from state_gradients.engine.transformer import TransformerStateGradients
from state_gradients.models.lm import LanguageModel
from tests.transformer_models import inputs_of, make_model

ROWS, STEPS, VOCAB = 2, 7, 13


def _recurrent(cell, layers, seed=0):
    rng = np.random.default_rng(seed)
    model = LanguageModel(VOCAB, 3, 5, layers, cell, forget_bias=0.3, init_scale=0.6, dtype=tf.float64)
    inputs = rng.integers(0, VOCAB, (ROWS, STEPS))
    state = tuple(tuple(tf.constant(rng.normal(size=(ROWS, 5)), tf.float64) for _ in model.cell.state_names)
                  for _ in range(layers))
    return model, inputs, state


def _log_probs(model, x, state, labels):
    """log p(labels[r, t]) [R, T] of a window whose input embeddings are x."""
    top = model.run_layers(x, state)[-1][-1] if state is not None else model.run_layers(x)[-1][0]
    return -model.token_losses(top, tf.constant(labels))


def _check_against_autodiff(model, engine, inputs, state, labels):
    out = engine.output_jacobians(inputs, state, labels)
    rows, steps = inputs.shape
    x = model.embed(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logp = _log_probs(model, x, state, labels)
    jac = tape.jacobian(logp, x).numpy()                                   # [R, T, R, T, E]
    for k, (ts, j) in out.items():
        for i, t in enumerate(ts):
            want = jac[np.arange(rows), t, np.arange(rows), t - k]
            # float64 throughout; a few dozen operations per entry
            np.testing.assert_allclose(j[:, i], want, rtol=0, atol=1e-12)
    # central differences of the float64 model at one (t, k) per row and direction: error O(h²) with h = 1e-5,
    # about 1e-10 times the third derivative here, far below the 1e-7 allowed
    t, k, h = steps - 1, 2, 1e-5
    i = list(out[k][0]).index(t)
    for e in range(x.shape[-1]):
        bump = np.zeros(x.shape)
        bump[:, t - k, e] = h
        up = _log_probs(model, x + bump, state, labels).numpy()[:, t]
        down = _log_probs(model, x - bump, state, labels).numpy()[:, t]
        np.testing.assert_allclose(out[k][1][:, i, e], (up - down) / (2 * h), rtol=0, atol=1e-7)
    return out


def _check_sums(engine, inputs, state, labels, outputs, grad_norm):
    rng = np.random.default_rng(4)
    masks = rng.random((3,) + inputs.shape) < 0.6
    masks[0] = True
    _, _, counts, _, occurrence = engine.class_moments(inputs, state, masks, norm=grad_norm, labels=labels)
    jacobians, _ = engine.jacobians(inputs, state)
    for di, k in enumerate(engine.delays):
        ts, g = jacobians[k]
        w = masks[:, :, ts - k].astype(np.float64)                           # [C, R, n]
        nuclear = np.linalg.svd(g @ grad_norm, compute_uv=False).sum(-1)    # [R, n]
        sampled = w * ((ts - k) % NUCLEAR_STRIDE == 0)                      # the nuclear norm's occurrences
        jd = outputs[k][1] @ grad_norm                                       # [R, n, E]
        norms = np.linalg.norm(jd, axis=-1)
        want = np.concatenate([np.stack([np.einsum("crn,rn->c", sampled, nuclear), sampled.sum(axis=(1, 2)),
                                         np.einsum("crn,rn->c", w, norms), np.einsum("crn,rn->c", w, norms ** 2)], 1),
                               np.einsum("crn,rne->ce", w, jd)], 1)
        assert occurrence.shape[-1] == OCCURRENCE_SCALARS + grad_norm.shape[0]
        # the nuclear norm from the eigenvalues of Dᵀ GᵀG D: a square root of rounding near zero eigenvalues
        # (about sqrt(u)·‖G·D‖ = 1e-8 relative) bounds its agreement with the SVD
        np.testing.assert_allclose(occurrence[di], want, rtol=1e-7, atol=1e-7 * np.abs(want).max())
        assert np.array_equal(counts[di], w.sum(axis=(1, 2)))


# a lower layer's cell state (the top layer's h then rides along), the top layer's h, and a one-state cell
@pytest.mark.parametrize("cell,layers,layer,component", [("LSTM", 2, 0, 0), ("LSTM", 1, 0, 1), ("GRU", 1, 0, 0)])
def test_recurrent_output_level_jacobian_and_sums(cell, layers, layer, component):
    model, inputs, state = _recurrent(cell, layers)
    labels = np.random.default_rng(1).integers(0, VOCAB, (ROWS, STEPS))
    engine = StateGradients(model, layer=layer, component=component, time_steps=range(STEPS), max_delay=4,
                            num_steps=STEPS, mode="forward")
    outputs = _check_against_autodiff(model, engine, inputs, state, labels)
    grad_norm = np.linalg.cholesky(np.cov(np.random.default_rng(2).normal(size=(40, 3)), rowvar=False))
    _check_sums(engine, inputs, state, labels, outputs, grad_norm)


def test_reverse_mode_refuses_the_output_level_measure():
    model, inputs, state = _recurrent("LSTM", 1)
    engine = StateGradients(model, layer=0, component=0, time_steps=range(STEPS), max_delay=3, num_steps=STEPS,
                            mode="reverse")
    with pytest.raises(ValueError, match="needs forward mode"):
        engine.output_jacobians(inputs, state, np.zeros((ROWS, STEPS), np.int64))


@pytest.mark.parametrize("layer,component", [(0, 0), (1, 1)])
def test_transformer_output_level_jacobian_and_sums(layer, component):
    model = make_model(5, 8)
    inputs = inputs_of(ROWS)
    labels = np.random.default_rng(1).integers(0, model.vocab_size, inputs.shape)
    engine = TransformerStateGradients(model, layer=layer, component=component, time_steps=range(inputs.shape[1]),
                                       max_delay=4, num_steps=inputs.shape[1])
    outputs = _check_against_autodiff(model, engine, inputs, None, labels)
    grad_norm = np.linalg.cholesky(np.cov(np.random.default_rng(2).normal(size=(40, 5)), rowvar=False))
    _check_sums(engine, inputs, (), labels, outputs, grad_norm)


def test_a_wrong_grad_norm_file_is_one_line(tmp_path):
    from types import SimpleNamespace

    from state_gradients.core.errors import UserError
    from state_gradients.passes.gradient_pass import read_norm

    np.save(tmp_path / "d.npy", np.eye(4))
    config = SimpleNamespace(path="x.config", grad_norm_file=str(tmp_path / "d.npy"))
    with pytest.raises(UserError, match=r"x.config: grad_norm_file .*d.npy holds a \(4, 4\) array; the model's "
                                        r"embedding size needs a finite 3 x 3 D"):
        read_norm(config, 3)
    (tmp_path / "bad.npy").write_text("not numpy")
    with pytest.raises(UserError, match="not a readable .npy file"):
        read_norm(SimpleNamespace(path="x.config", grad_norm_file=str(tmp_path / "bad.npy")), 3)
    assert read_norm(SimpleNamespace(path="x.config", grad_norm_file=None), 3) is None
    assert np.array_equal(read_norm(config, 4), np.eye(4))
