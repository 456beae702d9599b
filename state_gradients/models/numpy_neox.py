"""float64 numpy twin of state_gradients.models.neox.NeoXLM (forward pass, loss), written from the block's definition."""
# Shape letters: N windows, T positions, V vocabulary, D model size, F feed-forward size, A heads,
# K head size, R rotary dimensions.
#
# Independent of the TensorFlow code: a loop over heads, the rotary positions of the first R
# components as rotations of the pairs (i, i + R/2) by t base^(-2i/R), GELU through math.erf, the
# parallel or sequential residual written out.
import math

import numpy as np

from state_gradients.core.errors import UserError

BLOCK = ("ln1_gain", "ln1_bias", "qkv_kernel", "qkv_bias", "proj_kernel", "proj_bias", "ln2_gain", "ln2_bias",
         "fc_kernel", "fc_bias", "out_kernel", "out_bias")
_erf = np.vectorize(math.erf)


def _layer_norm(h, gain, bias, eps):
    mean = h.mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(((h - mean) ** 2).mean(-1, keepdims=True) + eps) * gain + bias


def _rotary(x, dims, base):
    """x [N, T, K]: the pairs (i, i + R/2) of the first R components rotated by t base^(-2i/R)."""
    half = dims // 2
    angle = np.arange(x.shape[1])[:, None] * base ** (-2.0 * np.arange(half) / dims)
    c, s = np.cos(angle), np.sin(angle)
    a, b = x[..., :half], x[..., half:dims]
    return np.concatenate([a * c - b * s, b * c + a * s, x[..., dims:]], -1)


class NumpyNeoX:
    """The GPT-NeoX-layout model of a weights.npz dict, in float64 numpy."""

    cell_type = "GPTNeoX"
    state_names = ("residual", "final")

    def __init__(self, weights, source="weights"):
        self.weights = {name: np.asarray(value, np.float64) for name, value in weights.items()
                        if np.asarray(value).dtype.kind == "f" and np.asarray(value).ndim}
        for name in ("embedding", "final_gain", "rotary_dims", "parallel_residual"):
            if name not in weights:
                raise UserError(f"{source} has no array {name!r} (not a GPT-NeoX weights file)")
        self.num_layers, self.heads = int(weights["num_layers"]), int(weights["num_heads"])
        self.dims, self.base = int(weights["rotary_dims"]), float(weights["rope_base"])
        self.eps, self.parallel = float(weights["norm_epsilon"]), bool(weights["parallel_residual"])
        self.source = source

    def embed(self, inputs):
        return self.weights["embedding"][np.asarray(inputs)]

    def block(self, layer, h):
        w = {name: self.weights[f"layer{layer}/{name}"] for name in BLOCK}
        a = _layer_norm(h, w["ln1_gain"], w["ln1_bias"], self.eps)
        q, k, v = np.split(a @ w["qkv_kernel"] + w["qkv_bias"], 3, axis=-1)
        size, steps = h.shape[-1] // self.heads, h.shape[1]
        future = np.triu(np.ones((steps, steps), bool), 1)
        heads = []
        for head in range(self.heads):
            cols = slice(head * size, (head + 1) * size)
            qh, kh = _rotary(q[..., cols], self.dims, self.base), _rotary(k[..., cols], self.dims, self.base)
            scores = np.where(future, -np.inf, qh @ np.swapaxes(kh, -1, -2) / np.sqrt(size))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            heads.append((scores / scores.sum(-1, keepdims=True)) @ v[..., cols])
        attn = np.concatenate(heads, -1) @ w["proj_kernel"] + w["proj_bias"]
        mid = h if self.parallel else h + attn
        z = _layer_norm(mid, w["ln2_gain"], w["ln2_bias"], self.eps) @ w["fc_kernel"] + w["fc_bias"]
        return h + attn + (0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))) @ w["out_kernel"] + w["out_bias"]

    def states(self, x):
        h, streams = np.asarray(x, np.float64), []
        for layer in range(self.num_layers):
            h = self.block(layer, h)
            streams.append(h)
        return streams, _layer_norm(h, self.weights["final_gain"], self.weights["final_bias"], self.eps)

    def state(self, x, layer, component):
        streams, final = self.states(x)
        return final if component == 1 else streams[layer]

    def loss(self, inputs, targets, state=None):
        del state
        _, final = self.states(self.embed(inputs))
        logits = final @ self.weights["softmax_w"]
        top = logits.max(-1, keepdims=True)
        logp = logits - (np.log(np.exp(logits - top).sum(-1, keepdims=True)) + top)
        picked = np.take_along_axis(logp, np.asarray(targets)[..., None], -1)[..., 0]
        return float(-picked.sum() / picked.shape[0])
