"""The Llama-layout LM and its state gradients: an independent numpy twin, GradientTape, finite differences."""
# Shape letters: R rows, T positions, D model size (= E), V vocabulary.
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.llama import LlamaStateGradients
from state_gradients.models.llama import LlamaLM
from state_gradients.models.numpy_llama import NumpyLlama

V, D, L, A, F, T = 37, 16, 2, 4, 24, 9
INTERMS = [(0, 0), (1, 0), (1, 1)]  # (layer, component): residual after block 0 and 1, final RMSNorm


def make_model(kv_heads=2, tied=False, seed=3, dtype=tf.float64):
    """A tiny random Llama whose weights are float32-representable (so that the twin reads them exactly); a rope
    base and scale that turn the small positions by sizeable angles; init 0.3 so that blocks are not near-linear."""
    model = LlamaLM(V, D, L, A, kv_heads, F, max_positions=32, rope_base=50.0, rope_scale=0.5, init_scale=0.3,
                    dtype=dtype, seed=seed, tied=tied)
    model.assign_numpy(model.weights_numpy())
    return model


def inputs_of(rows, seed=0):
    return np.random.default_rng(seed).integers(0, V, (rows, T)).astype(np.int32)


def twin(model):
    return NumpyLlama({k: (v.astype(np.float64) if v.dtype == np.float32 else v)
                       for k, v in model.weights_numpy().items()})


def tape_jacobians(model, inputs, layer, component):
    """d s[r, t] / d x[r, j]: [R, T, D, T, E] by reverse-mode autodiff."""
    x = model.embed(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = model.run_layers(x)[layer][0]
        if component == 1:
            s = model.final_norm(s)
    full = tape.jacobian(s, x).numpy()
    return np.stack([full[r, :, :, r] for r in range(inputs.shape[0])])


@pytest.mark.parametrize("kv_heads,tied", [(4, False), (2, True), (1, False)])
def test_the_numpy_twin_computes_the_same_model(kv_heads, tied):
    """Multi-head, grouped and multi-query attention, tied and untied heads: states and loss to float64
    rounding (O(1) values through 2 blocks: 1e-12 is 10^3 above the 1e-15 seen)."""
    model = make_model(kv_heads, tied)
    net = twin(model)
    inputs = inputs_of(3)
    targets = np.roll(inputs, -1, axis=1)
    streams, final = net.states(net.embed(inputs))
    got = model.run_layers(model.embed(tf.constant(inputs)))
    for layer in range(L):
        np.testing.assert_allclose(got[layer][0].numpy(), streams[layer], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.final_norm(got[-1][0]).numpy(), final, rtol=0, atol=1e-12)
    loss = tf.reduce_sum(model.token_losses(got[-1][0], tf.constant(targets))).numpy() / 3
    assert loss == pytest.approx(net.loss(inputs, targets), rel=1e-13)
    assert ("softmax_w" in model.weights_numpy()) is not tied


def test_rotary_positions_are_relative():
    """RoPE's premise: a rotated query and key score by their offset t - u alone (shifting both positions by s
    changes nothing), for any base and scale; to float64 rounding."""
    from state_gradients.models import llama

    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 8))
    table = lambda t: llama.rope_tables(tf.constant([t]), 8, 50.0, 0.5, tf.float64)  # noqa: E731
    for t, u, s in ((5, 2, 7), (3, 3, 11), (8, 0, 4)):
        a = tf.reduce_sum(llama.rotate(q, *table(t)) * llama.rotate(k, *table(u)))
        b = tf.reduce_sum(llama.rotate(q, *table(t + s)) * llama.rotate(k, *table(u + s)))
        assert float(a) == pytest.approx(float(b), rel=1e-12)


# grouped-query attention at every state; one and four key/value heads at the final norm (through both blocks)
@pytest.mark.parametrize("kv_heads,layer,component", [(2,) + i for i in INTERMS] + [(4, 1, 1), (1, 1, 1)])
def test_state_gradients_equal_autodiff_jacobians(kv_heads, layer, component):
    """Every (t, k) of every row, float64 engine vs tape.jacobian: the same derivative by two routes (the engine's
    hand-derived tangents vs TensorFlow's reverse mode through the same forward code), agreeing to float64 rounding
    (O(1) entries; 1e-12)."""
    model = make_model(kv_heads)
    inputs = inputs_of(2)
    engine = LlamaStateGradients(model, layer=layer, component=component, time_steps=range(T), max_delay=5,
                                 num_steps=T)
    out, final = engine.jacobians(inputs, ())
    assert final == () and sorted(out) == [0, 1, 2, 3, 4]
    reference = tape_jacobians(model, inputs, layer, component)
    for k, (targets, g) in out.items():
        np.testing.assert_allclose(g, reference[:, targets, :, targets - k].transpose(1, 0, 2, 3), rtol=0, atol=1e-12)
    assert np.abs(reference[:, 2, :, 3:]).max() == 0          # causal: no later input reaches an earlier state


@pytest.mark.parametrize("layer,component", INTERMS)
def test_state_gradients_equal_finite_differences_of_the_numpy_twin(layer, component):
    """Independent code: fourth-order central differences (step 1e-3) of the numpy twin, whose rotary positions,
    head grouping and norms are written apart from the TensorFlow model. Truncation ~ eps^4 |s^(5)| ~ 1e-12 and
    rounding ~ 1e-16 / eps ~ 1e-13 on O(1) entries: 1e-8 holds anywhere."""
    model = make_model(2, seed=11)
    net = twin(model)
    inputs = inputs_of(2, seed=4)
    t, eps = 7, 1e-3
    engine = LlamaStateGradients(model, layer=layer, component=component, time_steps=[t], max_delay=6, num_steps=T)
    out, _ = engine.jacobians(inputs, ())
    x = net.embed(inputs)[:, :t + 1]
    for k, (_, g) in out.items():
        j = t - k
        numeric = np.zeros((2, D, D))
        for e in range(D):
            shifted = []
            for step in (-2, -1, 1, 2):
                y = x.copy()
                y[:, j, e] += step * eps
                shifted.append(net.state(y, layer, component)[:, t])
            m2, m1, p1, p2 = shifted
            numeric[:, :, e] = ((m2 - p2) + 8 * (p1 - m1)) / (12 * eps)
        np.testing.assert_allclose(g[:, 0], numeric, rtol=0, atol=1e-8)


def test_output_level_jacobians_equal_autodiff_of_the_log_probability():
    """d log p(w_{t+1}) / d x_{t-k} through a tied head (class_moments' output-level sums at one target), vs the
    tape's gradient of the twin-equal TF log-probability."""
    model = make_model(2, tied=True)
    inputs = inputs_of(1, seed=5)
    labels = np.roll(inputs, -1, axis=1)
    t = 8
    engine = LlamaStateGradients(model, layer=1, component=0, time_steps=[t], max_delay=4, num_steps=T)
    blocks, final, steps, vectors = engine._primal(tf.constant(inputs), tf.constant(labels))
    _, out = engine._chunk_tangent(blocks, final, steps, t - 3, 4, vectors)       # sources t-3 .. t: [1, 4, E, P]
    x = model.embed(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model.logits(model.run_layers(x)[-1][0])
        logp = tf.nn.log_softmax(logits)[0, t, labels[0, t]]
    grad = tape.gradient(logp, x).numpy()[0]                                       # [T, E]
    for k in range(4):
        j = t - k
        np.testing.assert_allclose(out.numpy()[0, j - (t - 3), :, k], grad[j], rtol=0, atol=1e-12)
