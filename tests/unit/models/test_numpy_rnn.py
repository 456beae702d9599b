"""numpy BPTT against finite differences, the independent numpy reference, the TF engine and tf.GradientTape."""
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.core.errors import UserError
from state_gradients.engine.recurrent import state_gradients
from state_gradients.models.lm import LanguageModel
from state_gradients.models.numpy_rnn import NumpyRNN, finite_difference_state_gradients, finite_difference_weight
from tests import numpy_reference as ref

CASES = [("LSTM", 0), ("LSTM", 1), ("GRU", 0), ("RNN", 0), ("GRU_RESET_AFTER", 0)]   # (cell, component: LSTM 0 = c, 1 = h)
ROWS, STEPS, VOCAB = 2, 7, 11


def _setup(cell, layers, seed=0, emb=5, size=4):
    """A float64 TF model, its numpy twin, ids, targets and a non-zero entering state."""
    rng = np.random.default_rng(seed)
    model = LanguageModel(VOCAB, emb, size, layers, cell, forget_bias=0.3, init_scale=0.6, dtype=tf.float64,
                          seed=seed + 1)
    net = NumpyRNN(ref.float64_weights(model))
    inputs = rng.integers(0, VOCAB, (ROWS, STEPS))
    targets = rng.integers(0, VOCAB, (ROWS, STEPS))
    state = [tuple(rng.normal(size=(ROWS, size)) for _ in net.state_names) for _ in range(layers)]
    return model, net, inputs, targets, state


def _tf_state(state):
    return tuple(tuple(tf.constant(s) for s in layer) for layer in state)


def _rel(a, b, scale):
    """Largest difference over delays relative to the window's scale (docs/spec.md §6)."""
    return max(np.abs(a[k] - b[k]).max() for k in a) / scale


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"])
def test_forward_equals_independent_reference(cell):
    _, net, inputs, targets, state = _setup(cell, 2)
    w = net.arrays()
    trace = net.forward(net.embed(inputs), state)
    for r in range(ROWS):
        steps, final = ref.run(w, w["embedding"][inputs[r]], [tuple(s[r] for s in layer) for layer in state])
        for t, per_layer in enumerate(steps):
            for layer in range(2):
                for c, s in enumerate(per_layer[layer]):
                    np.testing.assert_allclose(trace.states[layer][c][r, t], s, rtol=0, atol=1e-14)
        for layer in range(2):
            for c, s in enumerate(final[layer]):
                np.testing.assert_allclose(net.run_state(inputs, state)[layer][c][r], s, rtol=0, atol=1e-14)
                np.testing.assert_allclose(trace.final_state()[layer][c][r], s, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cell,comp", CASES)
@pytest.mark.parametrize("layers", [1, 2])
def test_state_gradients_equal_finite_differences(cell, comp, layers):
    _, net, inputs, _, state = _setup(cell, layers, seed=3)
    x = net.embed(inputs)
    w = net.arrays()
    for layer in range(layers):
        bptt = net.state_gradients(x, state, layer, comp, 6, max_delay=5)
        assert sorted(bptt) == list(range(5))
        mine = finite_difference_state_gradients(net, x, state, layer, comp, 6, max_delay=5)
        for r in range(ROWS):
            row_state = [tuple(s[r] for s in ls) for ls in state]
            fd = ref.tangent_gradients(w, x[r], row_state, layer, comp, 6, max_delay=5)
            scale = max(np.abs(g).max() for g in fd.values())   # the window's largest entry, any delay
            assert scale > 1e-3
            assert _rel({k: g[r] for k, g in bptt.items()}, fd, scale) <= 1e-8
            # the CLI's batched finite differences are the reference's, up to rounding
            assert _rel({k: g[r] for k, g in mine.items()}, fd, scale) <= 1e-8


def test_state_gradients_stop_at_window_start_and_max_delay():
    _, net, inputs, _, state = _setup("LSTM", 1)
    x = net.embed(inputs)
    assert sorted(net.state_gradients(x, state, 0, 0, 2, max_delay=5)) == [0, 1, 2]
    assert sorted(net.state_gradients(x, state, 0, 0, 6, max_delay=2)) == [0, 1]
    # at t = 0 only delay 0 exists: the entering state is a constant, not an input
    g0 = net.state_gradients(x, state, 0, 1, 0, max_delay=3)
    assert list(g0) == [0] and g0[0].shape == (ROWS, 4, 5)


@pytest.mark.parametrize("cell,comp", CASES)
@pytest.mark.parametrize("layers", [1, 2])
def test_state_gradients_equal_tf_engine(cell, comp, layers):
    model, net, inputs, _, state = _setup(cell, layers, seed=4)
    x = net.embed(inputs)
    for layer in range(layers):
        out = state_gradients(model, inputs, _tf_state(state), layer=layer, component=comp, time_steps=[5, 6],
                              max_delay=4)
        for i, t in enumerate([5, 6]):
            bptt = net.state_gradients(x, state, layer, comp, t, max_delay=4)
            for k, g in bptt.items():
                np.testing.assert_allclose(g, out[k][1][:, i], rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"])
@pytest.mark.parametrize("layers", [1, 2])
def test_weight_gradients_equal_gradient_tape(cell, layers):
    model, net, inputs, targets, state = _setup(cell, layers, seed=5)
    # an id twice in the window: its embedding gradient must sum both occurrences
    inputs[0, 1] = inputs[1, 4] = inputs[0, 5]
    named = model.named_variables()
    with tf.GradientTape() as tape:
        outputs = model.run_layers(model.embed(inputs), _tf_state(state))[-1][-1]
        loss = tf.reduce_sum(model.token_losses(outputs, targets)) / ROWS
    tape_grads = tape.gradient(loss, list(named.values()))
    np_loss, grads = net.loss_and_gradients(inputs, targets, state)
    assert abs(np_loss - float(loss)) <= 1e-12
    np.testing.assert_allclose(net.token_losses(inputs, targets, state),
                               model.token_losses(outputs, targets).numpy(), rtol=0, atol=1e-12)
    assert sorted(grads) == sorted(named)
    for (name, _), g in zip(named.items(), tape_grads):
        np.testing.assert_allclose(grads[name], tf.convert_to_tensor(g).numpy(), rtol=0, atol=1e-12, err_msg=name)
    unused = np.setdiff1d(np.arange(VOCAB), inputs)
    assert np.all(grads["embedding"][unused] == 0)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"])
@pytest.mark.parametrize("layers", [1, 2])
def test_weight_gradients_equal_finite_differences(cell, layers):
    _, net, inputs, targets, state = _setup(cell, layers, seed=6)
    _, grads = net.loss_and_gradients(inputs, targets, state)
    rng = np.random.default_rng(7)
    for name, g in grads.items():
        # two entries per array; embedding rows of ids in the window (the others have zero gradient)
        for _ in range(2):
            index = tuple(int(rng.integers(0, n)) for n in g.shape)
            if name == "embedding":
                index = (int(inputs[rng.integers(0, ROWS), rng.integers(0, STEPS)]), index[1])
            numeric = finite_difference_weight(net, name, index, inputs, targets, state)
            assert abs(numeric - g[index]) <= 1e-8 * max(1.0, abs(g[index])), (name, index)


def test_perturbed_copy_leaves_the_model_unchanged():
    _, net, inputs, targets, state = _setup("GRU", 1)
    before = {k: v.copy() for k, v in net.weights.items()}
    other = net.perturbed("layer0/cand_kernel", (2, 1), 0.25)
    assert other.weights["layer0/cand_kernel"][2, 1] == before["layer0/cand_kernel"][2, 1] + 0.25
    for k, v in net.weights.items():
        np.testing.assert_array_equal(v, before[k])
    assert other.loss(inputs, targets, state) != net.loss(inputs, targets, state)


def test_bad_weights_are_user_errors(tmp_path):
    _, net, _, _, _ = _setup("LSTM", 1)
    arrays = net.arrays()
    del arrays["layer0/bias"]
    with pytest.raises(UserError, match="layer0/bias"):
        NumpyRNN(arrays)
    arrays = net.arrays()
    arrays["cell_type"] = np.array("SRU")
    with pytest.raises(UserError, match="SRU"):
        NumpyRNN(arrays)
    arrays = net.arrays()
    arrays["layer0/kernel"] = arrays["layer0/kernel"][:, :-1]
    with pytest.raises(UserError, match=r"layer0/kernel has shape \(9, 15\), expected \(9, 16\)"):
        NumpyRNN(arrays)
    bad = tmp_path / "weights.npz"
    bad.write_text("not an archive")
    with pytest.raises(UserError, match="cannot read weights file"):
        NumpyRNN.from_npz(bad)
