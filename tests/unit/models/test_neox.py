"""The GPT-NeoX-layout LM (Pythia) and its state gradients: numpy twin, GradientTape, finite differences, transformers."""
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.engine.neox import NeoXStateGradients
from state_gradients.models.neox import NeoXLM
from state_gradients.models.numpy_neox import NumpyNeoX

from tests.commands import REPO

V, D, L, A, F, T = 37, 16, 2, 2, 24, 9
LAYOUTS = [(True, 4), (False, 8), (True, 8)]     # (parallel residual, rotary dimensions of the head size 8)
INTERMS = [(0, 0), (1, 0), (1, 1)]


def make_model(parallel=True, dims=4, seed=3):
    model = NeoXLM(V, D, L, A, F, rotary_dims=dims, max_positions=32, rope_base=50.0, parallel_residual=parallel,
                   norm_epsilon=1e-5, init_scale=0.3, dtype=tf.float64, seed=seed)
    model.assign_numpy(model.weights_numpy())        # float32-representable weights, read exactly by the twin
    return model


def inputs_of(rows, seed=0):
    return np.random.default_rng(seed).integers(0, V, (rows, T)).astype(np.int32)


@pytest.mark.parametrize("parallel,dims", LAYOUTS)
def test_the_numpy_twin_computes_the_same_model(parallel, dims):
    """Parallel and sequential residuals, partial and full rotary: states and loss to float64 rounding."""
    model = make_model(parallel, dims)
    net = NumpyNeoX(model.weights_numpy())
    inputs = inputs_of(3)
    streams, final = net.states(net.embed(inputs))
    got = model.run_layers(model.embed(tf.constant(inputs)))
    for layer in range(L):
        np.testing.assert_allclose(got[layer][0].numpy(), streams[layer], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.final_norm(got[-1][0]).numpy(), final, rtol=0, atol=1e-12)
    targets = np.roll(inputs, -1, axis=1)
    loss = tf.reduce_sum(model.token_losses(got[-1][0], tf.constant(targets))).numpy() / 3
    assert loss == pytest.approx(net.loss(inputs, targets), rel=1e-13)


# the partial-rotary parallel layout (Pythia's) at every state; the others at the final norm (through both blocks)
@pytest.mark.parametrize("parallel,dims,layer,component", [LAYOUTS[0] + i for i in INTERMS]
                         + [layout + (1, 1) for layout in LAYOUTS[1:]])
def test_state_gradients_equal_autodiff_jacobians(parallel, dims, layer, component):
    """Every (t, k), float64 engine vs tape.jacobian through the same forward code (1e-12 on O(1) entries; the
    head size 8 has a scale 1/sqrt(8) that float32 would round)."""
    model = make_model(parallel, dims)
    inputs = inputs_of(2)
    engine = NeoXStateGradients(model, layer=layer, component=component, time_steps=range(T), max_delay=5,
                                num_steps=T)
    out, _ = engine.jacobians(inputs, ())
    x = model.embed(tf.constant(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = model.run_layers(x)[layer][0]
        if component == 1:
            s = model.final_norm(s)
    full = tape.jacobian(s, x).numpy()
    reference = np.stack([full[r, :, :, r] for r in range(2)])
    for k, (targets, g) in out.items():
        np.testing.assert_allclose(g, reference[:, targets, :, targets - k].transpose(1, 0, 2, 3), rtol=0, atol=1e-12)


def test_state_gradients_equal_finite_differences_of_the_numpy_twin():
    """Independent code (the twin's pair rotations, erf GELU, written-out parallel residual), fourth-order central
    differences with step 1e-3: truncation ~1e-12, rounding ~1e-13 on O(1) entries, so 1e-8 holds anywhere."""
    model = make_model(True, 4, seed=11)
    net = NumpyNeoX(model.weights_numpy())
    inputs = inputs_of(2, seed=4)
    t, eps = 7, 1e-3
    engine = NeoXStateGradients(model, layer=1, component=1, time_steps=[t], max_delay=4, num_steps=T)
    out, _ = engine.jacobians(inputs, ())
    x = net.embed(inputs)[:, :t + 1]
    for k, (_, g) in out.items():
        numeric = np.zeros((2, D, D))
        for e in range(D):
            shifted = []
            for step in (-2, -1, 1, 2):
                y = x.copy()
                y[:, t - k, e] += step * eps
                shifted.append(net.state(y, 1, 1)[:, t])
            m2, m1, p1, p2 = shifted
            numeric[:, :, e] = ((m2 - p2) + 8 * (p1 - m1)) / (12 * eps)
        np.testing.assert_allclose(g[:, 0], numeric, rtol=0, atol=1e-8)


def test_a_hugging_face_gpt_neox_folder_gives_transformers_outputs():
    """A small random GPTNeoXForCausalLM (rotary on half of each head, parallel residual; written by transformers):
    every hidden state and the logits equal transformers' float32 ones to float32 rounding (1e-5 relative)."""
    from state_gradients.importing import hf_llama, hf_neox

    folder = REPO / "tests" / "data" / "reference" / "gpt_neox_tiny"
    config, arrays = hf_llama.read_folder(str(folder))
    converted, _ = hf_neox.convert(config, arrays, str(folder))
    assert int(converted["rotary_dims"]) == 4 and bool(converted["parallel_residual"])
    ref = np.load(folder / "reference.npz")
    model = NeoXLM.from_arrays(converted, tf.float64)
    x = model.embed(tf.constant(ref["ids"].astype(np.int32)))
    states = model.run_layers(x)
    ours = [x] + [s[0] for s in states[:-1]] + [model.final_norm(states[-1][0])]
    for i, h in enumerate(ours):
        theirs = ref[f"hidden_l{i}"]
        assert np.abs(h.numpy() - theirs).max() / np.abs(theirs).max() < 1e-5, i
    logits = model.logits(states[-1][0]).numpy()
    assert np.abs(logits - ref["logits"]).max() / np.abs(ref["logits"]).max() < 1e-5
