"""Small float64 Transformers for the tests: LayerNorm gains and biases moved off 1 and 0, and their windows."""
import numpy as np
import tensorflow as tf

from state_gradients.models.transformer import TransformerLM

V, L, A, F, T = 23, 2, 2, 12, 9     # vocabulary, blocks, heads, feed-forward size, window


def make_model(embedding, size, dtype=tf.float64, seed=3):
    """A Transformer with every LayerNorm gain and bias moved off 1 and 0 (the initial ones would hide a
    missing gain or bias in the tangent)."""
    model = TransformerLM(V, embedding, size, L, A, F, T, init_scale=0.4, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for name, var in model.named_variables().items():
        if "gain" in name or "bias" in name:
            var.assign(var + rng.uniform(-0.5, 0.5, var.shape))
    return model


def inputs_of(rows, seed=0):
    return np.random.default_rng(seed).integers(0, V, (rows, T))
