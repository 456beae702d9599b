"""The state-gradient engine against tf.GradientTape Jacobians and float64 finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.recurrent import StateGradients, state_gradients
from state_gradients.models.lm import LanguageModel
from tests import numpy_reference as ref

CASES = [("LSTM", 0), ("LSTM", 1), ("GRU", 0), ("RNN", 0), ("GRU_RESET_AFTER", 0)]   # (cell, state component: LSTM 0 = c, 1 = h)


def _setup(cell, layers, rows, emb=5, size=4, seed=0):
    rng = np.random.default_rng(seed)
    model = LanguageModel(13, emb, size, layers, cell, forget_bias=0.3, init_scale=0.6, dtype=tf.float64)
    inputs = rng.integers(0, 13, (rows, 7))
    # a non-zero state enters the window: it must be held constant
    state = tuple(tuple(tf.constant(rng.normal(size=(rows, size)), tf.float64) for _ in model.cell.state_names)
                  for _ in range(layers))
    return model, inputs, state


_JACOBIANS = {}


def _tape_jacobian(model, inputs, state, layer, comp):
    """Reverse-mode autodiff of the whole window, cached across the forward/reverse test pairs."""
    key = (model.cell_type, model.num_layers, layer, comp, inputs.tobytes())
    if key not in _JACOBIANS:
        _JACOBIANS[key] = _tape_jacobian_uncached(model, inputs, state, layer, comp)
    return _JACOBIANS[key]


def _tape_jacobian_uncached(model, inputs, state, layer, comp):
    x = model.embed(inputs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = model.run_layers(x, state)[layer][comp]
    return tape.jacobian(s, x).numpy()                                   # [R, T, H, R, T, E]


@pytest.mark.parametrize("cell,comp", CASES)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_engine_equals_tape_jacobian(cell, comp, layers, mode):
    # B = 3 here; B = 1 in the finite-difference test below
    rows = 3
    model, inputs, state = _setup(cell, layers, rows)
    for layer in range(layers):
        jac = _tape_jacobian(model, inputs, state, layer, comp)
        for time_steps in ([1, 4, 5], list(range(7))):
            out = state_gradients(model, inputs, state, layer=layer, component=comp, time_steps=time_steps,
                                  max_delay=4, mode=mode)
            assert sorted(out) == list(range(min(4, max(time_steps) + 1)))
            for k, (ts, g) in out.items():
                assert list(ts) == [t for t in time_steps if t >= k]
                for i, t in enumerate(ts):
                    expected = jac[np.arange(rows), t, :, np.arange(rows), t - k, :]
                    np.testing.assert_allclose(g[:, i], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell,comp", CASES)
@pytest.mark.parametrize("layers", [1, 2])
def test_engine_equals_numpy_finite_differences(cell, comp, layers):
    model, inputs, state = _setup(cell, layers, 1, seed=3)
    w = ref.float64_weights(model)
    xs = model.embedding.numpy()[inputs[0]]
    np_state = [tuple(s[0].numpy() for s in layer) for layer in state]
    out = state_gradients(model, inputs, state, layer=layers - 1, component=comp, time_steps=[6], max_delay=5)
    fd = ref.tangent_gradients(w, xs, np_state, layers - 1, comp, 6, max_delay=5)
    scale = max(np.abs(g).max() for g in fd.values())   # docs/spec.md §6: the window's largest entry, any delay
    for k, (ts, g) in out.items():
        assert ts[0] == 6
        assert np.abs(g[0, 0] - fd[k]).max() <= 1e-5 * scale, k


def test_reverse_mode_is_chosen_when_state_is_smaller_than_embedding():
    model, inputs, state = _setup("LSTM", 1, 2, emb=6, size=3)
    auto = StateGradients(model, layer=0, component=0, time_steps=[5], max_delay=3, num_steps=7)
    assert auto.mode == "reverse"
    fwd = StateGradients(model, layer=0, component=0, time_steps=[5], max_delay=3, num_steps=7, mode="forward")
    a, _ = auto.jacobians(inputs, state)
    b, _ = fwd.jacobians(inputs, state)
    for k in a:
        np.testing.assert_allclose(a[k][1], b[k][1], atol=1e-12)


def test_class_sums_equal_sums_of_jacobians():
    model, inputs, state = _setup("LSTM", 2, 3)
    engine = StateGradients(model, layer=1, component=0, time_steps=list(range(2, 7)), max_delay=3, num_steps=7)
    masks = np.stack([np.ones((3, 7)), inputs % 2 == 0, inputs < 4]).astype(float)
    sums, counts, _ = engine.class_sums(inputs, state, masks)
    out, _ = engine.jacobians(inputs, state)
    for di, (k, (ts, g)) in enumerate(out.items()):
        for c in range(3):
            w = masks[c][:, ts - k]                                       # [R, n_k]
            np.testing.assert_allclose(sums[di, c], np.einsum("rn,rnhe->he", w, g), atol=1e-12)
            assert counts[di, c] == w.sum()


def test_single_delay_at_time_step_zero():
    model, inputs, state = _setup("GRU", 1, 1)
    out = state_gradients(model, inputs, state, layer=0, component=0, time_steps=[0], max_delay=50)
    assert list(out) == [0] and out[0][1].shape == (1, 1, 4, 5)
