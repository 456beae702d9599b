"""A GPT-NeoX-layout decoder (Pythia: LayerNorm, partial rotary positions, parallel residual) with the LM interface."""
# Shape letters: B batch rows, T positions, V vocabulary, D model size (= E), F feed-forward size,
# A heads, K head size (D / A), R rotary dimensions of a head (rotary_pct K, even).
#
#   inputs [B, T] --embed_in--> h [B, T, D]                                 (no learned positions)
#   block l, parallel residual (Pythia):  h <- h + attention(LN1(h)) + MLP(LN2(h))
#            sequential:                   h <- h + attention(LN1(h));  h <- h + MLP(LN2(h))
#   attention: q, k, v = LN1(h) W_qkv + b (per head), the first R components of q and k rotated as in
#              models/llama.py (rotate-half on those R), softmax(q k / sqrt(K)) v, then W_o + b
#   MLP:       GELU(x W_in + b_in) W_out + b_out (GELU exact, with erf: Pythia's "gelu")
#   head:      logits = LN_final(h_top) @ softmax_w (Pythia's embed_out, untied)
#
# LayerNorm has gain and bias and the checkpoint's epsilon. run_layers returns per block (h,), as
# the other stateless families; the block's maths is shared with the engine (engine/neox.py).
import math

import numpy as np
import tensorflow as tf

from state_gradients.core.errors import UserError
from state_gradients.models.llama import DEFAULT_ROPE_BASE, RotaryLM, rotate
from state_gradients.models import transformer
from state_gradients.models.transformer import causal_probs, merge_heads, split_heads
from state_gradients.models.weights import NamedWeights

CELL_TYPE = "GPTNeoX"
BLOCK_PARAMS = transformer.BLOCK_PARAMS     # the same weights as a GPT-2 block, under the same names
DESCRIPTION = ("num_heads", "rotary_dims", "rope_base", "norm_epsilon", "parallel_residual", "max_positions")


def normalise(h, epsilon):
    """(x_hat, 1 / sigma) of LayerNorm over the last axis."""
    mean, var = tf.nn.moments(h, axes=[-1], keepdims=True)
    inv = tf.math.rsqrt(var + epsilon)
    return (h - mean) * inv, inv


def layer_norm(h, gain, bias, epsilon):
    return normalise(h, epsilon)[0] * gain + bias


def gelu(z):
    return 0.5 * z * (1.0 + tf.math.erf(z / math.sqrt(2.0)))


def gelu_slope(z):
    """d gelu / dz = Φ(z) + z φ(z)."""
    return 0.5 * (1.0 + tf.math.erf(z / math.sqrt(2.0))) + z * tf.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def rotate_part(x, cos, sin, dims):
    """RoPE on the first `dims` components of x [..., K] (cos, sin of size dims), the rest as it is."""
    if dims == x.shape[-1]:
        return rotate(x, cos, sin)
    return tf.concat([rotate(x[..., :dims], cos, sin), x[..., dims:]], -1)


def layer_forward(p, h, shape, cos, sin, keep=None):
    """One block on h [B, T, D] -> (new h, the activations its linearisation needs); shape: (A, R, epsilon,
    parallel); cos, sin [B or 1, 1, T, R]."""
    heads, dims, epsilon, parallel = shape
    a = layer_norm(h, p["ln1_gain"], p["ln1_bias"], epsilon)
    qkv = tf.einsum("btd,de->bte", a, p["qkv_kernel"]) + p["qkv_bias"]
    q, k, v = (split_heads(t, heads) for t in tf.split(qkv, 3, axis=-1))
    q, k = rotate_part(q, cos, sin, dims), rotate_part(k, cos, sin, dims)
    probs = causal_probs(q, k, keep)
    o = tf.matmul(probs, v)
    attn = tf.einsum("btd,de->bte", merge_heads(o), p["proj_kernel"]) + p["proj_bias"]
    mid = h if parallel else h + attn                     # what LN2 reads
    m = layer_norm(mid, p["ln2_gain"], p["ln2_bias"], epsilon)
    z = tf.einsum("btd,df->btf", m, p["fc_kernel"]) + p["fc_bias"]
    out = h + attn + tf.einsum("btf,fd->btd", gelu(z), p["out_kernel"]) + p["out_bias"]
    return out, {"h_mid": mid, "q": q, "k": k, "v": v, "probs": probs, "o": o, "z": z}


class NeoXLM(RotaryLM, NamedWeights, tf.Module):
    """Variables and maths of a GPT-NeoX-layout LM (imported: sg-import; no training recipe of its own)."""

    cell_type = CELL_TYPE
    forget_bias = 0.0

    def __init__(self, vocab_size, size, num_layers, num_heads, ffn_size, *, rotary_dims=None, max_positions=2048,
                 rope_base=DEFAULT_ROPE_BASE, norm_epsilon=1e-5, parallel_residual=True, init_scale=0.05,
                 dtype=tf.float32, seed=1, output_layer=True):
        super().__init__(name="neox")
        if size % num_heads:
            raise UserError(f"size ({size}) must be a multiple of num_heads ({num_heads})")
        self.head_size = size // num_heads
        self.rotary_dims = int(rotary_dims if rotary_dims is not None else self.head_size)
        if self.rotary_dims % 2 or not 0 < self.rotary_dims <= self.head_size:
            raise UserError(f"rotary dimensions {self.rotary_dims} must be even and at most the head size "
                            f"{self.head_size}")
        self.vocab_size, self.size, self.embedding_size = vocab_size, size, size
        self.num_layers, self.num_heads, self.ffn_size, self.num_steps = num_layers, num_heads, ffn_size, max_positions
        self.rope_base, self.rope_scale, self.norm_epsilon = float(rope_base), 1.0, float(norm_epsilon)
        self.parallel_residual = bool(parallel_residual)
        self.init_scale = init_scale
        self.dtype = tf.as_dtype(dtype)
        self.input_kernel = None
        rng = np.random.default_rng(seed)
        dims = {"D": size, "3D": 3 * size, "F": ffn_size, "V": vocab_size}

        def var(name, dim_names, how):
            shape = tuple(dims[d] for d in dim_names)
            value = rng.uniform(-init_scale, init_scale, shape) if how == "uniform" else np.full(shape, how)
            return tf.Variable(value.astype(self.dtype.as_numpy_dtype), name=name)

        self.embedding = var("embedding", ("V", "D"), "uniform")
        self.layers = [{name: var(f"layer{layer}/{name}", shape, how) for name, (shape, how) in BLOCK_PARAMS.items()}
                       for layer in range(num_layers)]
        self.final_gain = var("final_gain", ("D",), 1.0)
        self.final_bias = var("final_bias", ("D",), 0.0)
        self.softmax_w = var("softmax_w", ("D", "V"), "uniform") if output_layer else None
        self.softmax_b = None

    @property
    def block_shape(self):
        return self.num_heads, self.rotary_dims, self.norm_epsilon, self.parallel_residual

    def block(self, p, h, cos, sin, keep=None):
        return layer_forward(p, h, self.block_shape, cos, sin, keep)

    def final_norm(self, h):
        return layer_norm(h, self.final_gain, self.final_bias, self.norm_epsilon)

    def named_variables(self):
        named = {"embedding": self.embedding}
        for layer, params in enumerate(self.layers):
            named.update({f"layer{layer}/{name}": v for name, v in params.items()})
        named.update({"final_gain": self.final_gain, "final_bias": self.final_bias})
        if self.softmax_w is not None:
            named["softmax_w"] = self.softmax_w
        return named

    def weights_numpy(self):
        arrays = {"cell_type": np.array(CELL_TYPE), "forget_bias": np.array(0.0, np.float32),
                  "num_layers": np.array(self.num_layers, np.int64), "num_heads": np.array(self.num_heads, np.int64),
                  "rotary_dims": np.array(self.rotary_dims, np.int64), "rope_base": np.array(self.rope_base),
                  "norm_epsilon": np.array(self.norm_epsilon), "parallel_residual": np.array(self.parallel_residual),
                  "max_positions": np.array(self.num_steps, np.int64)}
        return {**arrays, **{name: v.numpy().astype(np.float32) for name, v in self.named_variables().items()}}

    def copy(self, dtype):
        twin = NeoXLM(self.vocab_size, self.size, self.num_layers, self.num_heads, self.ffn_size,
                      rotary_dims=self.rotary_dims, max_positions=self.num_steps, rope_base=self.rope_base,
                      norm_epsilon=self.norm_epsilon, parallel_residual=self.parallel_residual, dtype=dtype,
                      output_layer=self.has_output_layer)
        return twin.assign_from(self)

    @classmethod
    def from_arrays(cls, arrays, dtype=tf.float32, origin="weights file"):
        for name in ("embedding", "layer0/fc_kernel", "final_gain") + DESCRIPTION:
            if name not in arrays:
                raise UserError(f"weights file {origin} has no array {name!r}")
        vocab_size, size = arrays["embedding"].shape
        model = cls(vocab_size, size, int(arrays["num_layers"]), int(arrays["num_heads"]),
                    arrays["layer0/fc_kernel"].shape[1], rotary_dims=int(arrays["rotary_dims"]),
                    max_positions=int(arrays["max_positions"]), rope_base=float(arrays["rope_base"]),
                    norm_epsilon=float(arrays["norm_epsilon"]), parallel_residual=bool(arrays["parallel_residual"]),
                    dtype=dtype, output_layer="softmax_w" in arrays)
        model.assign_numpy(arrays)
        return model
