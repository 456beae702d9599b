"""The Transformer LM and its state gradients: against GradientTape, float64 finite differences of an independent numpy twin."""
# Shape letters: R rows, T positions, E embedding, D model size, V vocabulary, C classes.
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.transformer import TransformerStateGradients
from state_gradients.models.transformer import TransformerLM
from state_gradients.models.numpy_transformer import NumpyTransformer, finite_difference_state_gradients
from state_gradients.training import run_epoch, trainer

from tests.transformer_models import A, F, L, T, V, inputs_of, make_model  # noqa: F401

SHAPES = [(5, 8), (8, 8)]          # (E, D): with an input projection, and without one (E = D)
INTERMS = [(0, 0), (1, 0), (1, 1)]  # (layer, component): residual after block 0 and 1, final LayerNorm


def tape_jacobians(model, inputs, layer, component):
    """d s[r, t] / d x[r, j] for every t, j of each row: [R, T, D, T, E] by reverse-mode autodiff."""
    x = model.embed(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = model.run_layers(x)[layer][0]
        if component == 1:
            s = model.final_norm(s)
    full = tape.jacobian(s, x).numpy()                                    # [R, T, D, R, T, E]
    return np.stack([full[r, :, :, r] for r in range(inputs.shape[0])])


@pytest.mark.parametrize("embedding,size", SHAPES)
def test_the_numpy_twin_computes_the_same_model(embedding, size):
    """The independent numpy forward pass (loops over heads, masked softmax) gives TF's states and loss."""
    model = make_model(embedding, size)
    net = NumpyTransformer(model.weights_numpy() | {n: v.numpy() for n, v in model.named_variables().items()})
    inputs = inputs_of(3)
    targets = np.roll(inputs, -1, axis=1)
    streams, final = net.states(net.embed(inputs))
    tf_streams = model.run_layers(model.embed(tf.constant(inputs)))
    for layer in range(L):
        np.testing.assert_allclose(tf_streams[layer][0].numpy(), streams[layer], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.final_norm(tf_streams[-1][0]).numpy(), final, rtol=0, atol=1e-12)
    loss = tf.reduce_sum(model.token_losses(tf_streams[-1][0], tf.constant(targets))).numpy() / 3
    assert loss == pytest.approx(net.loss(inputs, targets), rel=1e-13)


@pytest.mark.parametrize("embedding,size", SHAPES)
@pytest.mark.parametrize("layer,component", INTERMS)
def test_state_gradients_equal_autodiff_jacobians(embedding, size, layer, component):
    """Every (t, k) of every row, float64 engine vs tape.jacobian: the same derivative by two routes, so they
    agree to float64 rounding (entries are O(1); 1e-12 leaves a margin of 10^3 over the 1e-15 seen)."""
    model = make_model(embedding, size)
    inputs = inputs_of(2)
    engine = TransformerStateGradients(model, layer=layer, component=component, time_steps=range(T), max_delay=5,
                                       num_steps=T)
    out, final = engine.jacobians(inputs, ())
    assert final == () and sorted(out) == [0, 1, 2, 3, 4]
    reference = tape_jacobians(model, inputs, layer, component)
    for k, (targets, g) in out.items():
        np.testing.assert_array_equal(targets, np.arange(k, T))
        np.testing.assert_allclose(g, reference[:, targets, :, targets - k].transpose(1, 0, 2, 3), rtol=0, atol=1e-12)
    # causality, the engine's premise: nothing flows from a later input to an earlier state
    assert np.abs(reference[:, 2, :, 3:]).max() == 0


@pytest.mark.parametrize("layer,component", INTERMS)
def test_state_gradients_equal_finite_differences_of_the_numpy_twin(layer, component):
    """Independent code: float64 fourth-order central differences (step 1e-3) of the numpy twin. Truncation
    error ~ eps^4 |s^(5)| ~ 1e-12 and rounding ~ 1e-16 / eps ~ 1e-13 on O(1) entries: 1e-8 holds anywhere."""
    model = make_model(5, 8, seed=11)
    net = NumpyTransformer(model.weights_numpy())
    inputs = inputs_of(2, seed=4)
    t = 7
    engine = TransformerStateGradients(model, layer=layer, component=component, time_steps=[t], max_delay=6,
                                       num_steps=T)
    out, _ = engine.jacobians(inputs, ())
    # the twin reads the float32 weights of weights.npz; the engine's model holds the same values in float64
    model.assign_numpy(model.weights_numpy())
    out, _ = engine.jacobians(inputs, ())
    numeric = finite_difference_state_gradients(net, net.embed(inputs), layer, component, t, 6, 1e-3)
    for k, (_, g) in out.items():
        np.testing.assert_allclose(g[:, 0], numeric[k], rtol=0, atol=1e-8)


def test_float32_engine_is_float32_close_to_float64():
    """The float32 engine (float64 forward pass, float32 tangents) vs float64: about 20 rounding steps of 6e-8
    per entry through 2 blocks; 1e-5 of the largest entry is a margin of 10x over that."""
    model64 = make_model(5, 8)
    model32 = model64.copy(tf.float32)
    model64.assign_numpy(model32.weights_numpy())   # the same (float32-representable) weights
    inputs = inputs_of(3)
    kwargs = dict(layer=1, component=0, time_steps=range(T), max_delay=T, num_steps=T)
    out64, _ = TransformerStateGradients(model64, **kwargs).jacobians(inputs, ())
    out32, _ = TransformerStateGradients(model32, **kwargs).jacobians(inputs, ())
    scale = max(np.abs(g).max() for _, g in out64.values())
    for k in out64:
        np.testing.assert_allclose(out32[k][1], out64[k][1], rtol=0, atol=1e-5 * scale)


def test_class_sums_are_the_masked_sums_of_the_jacobians(monkeypatch):
    """class_moments over source chunks (forced to 2 sources, so the last chunk is padded) equals summing
    jacobians' matrices by the source word's class, at a subset of time steps; grams are sums of G^T G."""
    monkeypatch.setattr("state_gradients.engine.transformer.CHUNK_ELEMENTS", 2 * 3 * 5 * 4 * F)
    model = make_model(5, 8)
    inputs = inputs_of(3, seed=2)
    steps = [5, 6, 8]                   # sources 2..8 (7 of them): chunks of 2, the last one padded
    engine = TransformerStateGradients(model, layer=1, component=1, time_steps=steps, max_delay=4, num_steps=T)
    assert engine._chunk_size(3) == 2 and engine._n_sources == 7
    masks = np.random.default_rng(1).random((3, 3, T)) < 0.5                       # [C, R, T]
    sums, grams, counts, _, _ = engine.class_moments(inputs, (), masks, gram_delays=(0, 3))
    out, _ = engine.jacobians(inputs, ())
    for di, k in enumerate(engine.delays):
        targets, g = out[k]                                                           # [R, n, D, E]
        w = masks[:, :, targets - k].astype(float)                                    # [C, R, n]
        np.testing.assert_allclose(sums[di], np.einsum("crn,rnhe->che", w, g), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(counts[di], w.sum(axis=(1, 2)))
        if k in (0, 3):
            gram = np.einsum("rnhe,rnhf->rnef", g, g)
            np.testing.assert_allclose(grams[(0, 3).index(k)], np.einsum("crn,rnef->cef", w, gram), rtol=0,
                                       atol=1e-12)


def test_sliding_windows_score_every_target_once():
    """Hand-worked: 11 ids (10 targets), T 4, stride 3 -> windows at 0, 3, and the last one ending at the data's end."""
    ids = np.arange(11)
    inputs, targets, scored = run_epoch.sliding_windows(ids, 4, 3)
    np.testing.assert_array_equal(inputs, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    np.testing.assert_array_equal(targets, inputs + 1)
    np.testing.assert_array_equal(scored, [[1, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]])
    inputs, _, scored = run_epoch.sliding_windows(ids, 4, 4)
    np.testing.assert_array_equal(inputs[:, 0], [0, 4, 6])
    np.testing.assert_array_equal(scored[-1], [0, 0, 1, 1])
    for stride in range(1, 5):
        inputs, targets, scored = run_epoch.sliding_windows(ids, 4, stride)
        np.testing.assert_array_equal(np.sort(targets[scored]), np.arange(1, 11))


def test_window_perplexity_equals_the_numpy_losses_of_each_window():
    """window_perplexity (batched, a partial last batch) vs the numpy twin's losses window by window."""
    model = make_model(5, 8)
    net = NumpyTransformer(model.weights_numpy())
    model.assign_numpy(model.weights_numpy())
    ids = np.random.default_rng(7).integers(0, V, 40)
    inputs, targets, scored = run_epoch.sliding_windows(ids, T, 4)
    total = 0.0
    for x, y, keep in zip(inputs, targets, scored):
        _, final = net.states(net.embed(x[None]))
        logits = final[0] @ net.weights["softmax_w"] + net.weights["softmax_b"]
        losses = np.log(np.exp(logits).sum(-1)) - logits[np.arange(T), y]
        total += losses[keep].sum()
    got = run_epoch.window_perplexity(model, ids, T, 4, batch_size=3)
    assert got == pytest.approx(np.exp(total / scored.sum()), rel=1e-12)


def test_warmup_cosine_rate_by_hand():
    """Linear up over 4 windows, cosine from 1.0 to 0.1 over the next 10: at the half-way point 0.55."""
    rate = lambda step: trainer.warmup_cosine_rate(step, 1.0, 4, 14, 0.1)  # noqa: E731
    assert [rate(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert rate(4) == 1.0 and rate(9) == pytest.approx(0.55, abs=1e-15) and rate(14) == pytest.approx(0.1)
    assert rate(100) == pytest.approx(0.1)


@pytest.mark.parametrize("size,heads", [(16, 2), (8, 4), (24, 3)])
def test_state_gradients_are_exact_at_head_sizes_whose_scale_float32_rounds(size, heads):
    """Head sizes 8, 2 and 8 (1/sqrt(K) not a float32 number): the engine's attention scale once went through
    float32 (tf.cast of a Python float) and the Jacobians were off by 3e-9 of O(1) entries; in float64 they equal
    tape.jacobian to rounding (1e-12). The other tests' head size 4 has an exact scale and could not see it."""
    model = TransformerLM(V, size, size, 1, heads, F, T, init_scale=0.3, dtype=tf.float64, seed=3)
    inputs = inputs_of(2)
    engine = TransformerStateGradients(model, layer=0, component=0, time_steps=range(T), max_delay=5, num_steps=T)
    out, _ = engine.jacobians(inputs, ())
    reference = tape_jacobians(model, inputs, 0, 0)
    for k, (targets, g) in out.items():
        np.testing.assert_allclose(g, reference[:, targets, :, targets - k].transpose(1, 0, 2, 3), rtol=0, atol=1e-12)
