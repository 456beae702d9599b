"""A Llama-layout decoder (RMSNorm, rotary positions, grouped-query attention, SiLU-gated MLP) with the LM interface."""
# Shape letters: B batch rows, T positions of a window, V vocabulary, D model size (= the embedding
# size E of a pretrained Llama), F feed-forward size, A query heads, G key/value heads (A a multiple
# of G), K head size, Q = A K.
#
#   inputs [B, T] --embedding--> h [B, T, D]                              (no learned positions)
#   block l:  h <- h + o_proj(attention(RMSNorm1(h)))   q, k rotated by their position (RoPE)
#             h <- h + down(silu(gate(RMSNorm2(h))) * up(RMSNorm2(h)))    the residual stream after block l
#   head:     logits [B, T, V] = RMSNorm_final(h_top) @ softmax_w          (tied: softmax_w = embeddingᵀ)
#
# RMSNorm(h) = gain * h / sqrt(mean(h²) + eps). Rotary positions in the rotate-half layout of Hugging
# Face's Llama: with inv_freq_i = base^(-2i / K) (i < K/2; a linear scaling divides the positions by
# its factor), angle[t, i] = t inv_freq_i, cos = [cos(angle), cos(angle)], sin likewise, and
# rot(x) = x cos + [-x_2, x_1] sin, x_1 and x_2 the two halves of a head's K components. Query head
# a reads key/value head a // (A / G). As for the GPT-2 block (models/transformer.py), a window
# carries no state; run_layers returns per block the tuple (h,) of the residual stream after it, and
# the block's maths lives in pure functions of a parameter dict shared with the engine (engine/llama.py).
import numpy as np
import tensorflow as tf

from state_gradients.core.errors import UserError
from state_gradients.models.transformer import WindowLM, causal_probs, merge_heads, split_heads
from state_gradients.models.weights import NamedWeights

CELL_TYPE = "Llama"
NO_STATE = ()
DEFAULT_EPSILON = 1e-5
DEFAULT_ROPE_BASE = 10000.0

# weights.npz name -> (shape in terms of D, F, Q = A K, KV = G K; initialiser)
BLOCK_PARAMS = {
    "attn_norm": (("D",), 1.0),
    "q_kernel": (("D", "Q"), "uniform"), "k_kernel": (("D", "KV"), "uniform"), "v_kernel": (("D", "KV"), "uniform"),
    "o_kernel": (("Q", "D"), "uniform"),
    "mlp_norm": (("D",), 1.0),
    "gate_kernel": (("D", "F"), "uniform"), "up_kernel": (("D", "F"), "uniform"), "down_kernel": (("F", "D"), "uniform"),
}
# the scalars of weights.npz that describe the model (besides cell_type and num_layers)
DESCRIPTION = ("num_heads", "num_kv_heads", "head_size", "rope_base", "rope_scale", "norm_epsilon", "max_positions")


def rms_inverse(h, epsilon):
    """1 / sqrt(mean(h²) + eps) over the last axis, keepdims."""
    return tf.math.rsqrt(tf.reduce_mean(tf.square(h), -1, keepdims=True) + epsilon)


def rms_norm(h, gain, epsilon):
    return h * rms_inverse(h, epsilon) * gain


def silu(z):
    return z * tf.sigmoid(z)


def silu_slope(z):
    """d silu / dz = sigmoid(z) (1 + z (1 - sigmoid(z)))."""
    s = tf.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def rope_tables(positions, head_size, base, scale, dtype):
    """(cos, sin) [..., K] of integer positions [...] (any shape) in the rotate-half layout."""
    inv_freq = base ** (-np.arange(0, head_size, 2, dtype=np.float64) / head_size)          # [K/2]
    angle = tf.cast(positions, tf.float64)[..., None] / scale * inv_freq                    # [..., K/2]
    angle = tf.concat([angle, angle], -1)
    return tf.cast(tf.cos(angle), dtype), tf.cast(tf.sin(angle), dtype)


def rotate(x, cos, sin):
    """RoPE of x [..., T, K] with cos, sin broadcasting to it (a linear map per position: its own tangent)."""
    half = x.shape[-1] // 2
    turned = tf.concat([-x[..., half:], x[..., :half]], -1)
    return x * cos + turned * sin


def repeat_kv(t, groups):
    """[B, G, T, K] -> [B, G * groups, T, K]: query head a reads key/value head a // groups."""
    return t if groups == 1 else tf.repeat(t, groups, axis=1)


def layer_forward(p, h, shape, cos, sin, keep=None):
    """One block on the residual stream h [B, T, D] -> (new h, the activations its linearisation needs).

    shape: (A, G, epsilon); cos, sin [B or 1, 1, T, K] (rope_tables of each row's positions); keep: as
    causal_probs."""
    heads, kv_heads, epsilon = shape
    a = rms_norm(h, p["attn_norm"], epsilon)
    q = rotate(split_heads(tf.einsum("btd,dq->btq", a, p["q_kernel"]), heads), cos, sin)        # [B, A, T, K]
    k = rotate(split_heads(tf.einsum("btd,dq->btq", a, p["k_kernel"]), kv_heads), cos, sin)     # [B, G, T, K]
    v = split_heads(tf.einsum("btd,dq->btq", a, p["v_kernel"]), kv_heads)
    k_all, v_all = repeat_kv(k, heads // kv_heads), repeat_kv(v, heads // kv_heads)
    probs = causal_probs(q, k_all, keep)
    o = tf.matmul(probs, v_all)                                                                 # [B, A, T, K]
    h = h + tf.einsum("btq,qd->btd", merge_heads(o), p["o_kernel"])
    m = rms_norm(h, p["mlp_norm"], epsilon)
    gate = tf.einsum("btd,df->btf", m, p["gate_kernel"])
    up = tf.einsum("btd,df->btf", m, p["up_kernel"])
    out = h + tf.einsum("btf,fd->btd", silu(gate) * up, p["down_kernel"])
    return out, {"h_mid": h, "q": q, "k": k_all, "v": v_all, "probs": probs, "o": o, "gate": gate, "up": up}


class RotaryLM(WindowLM):
    """What the rotary-position layouts share (Llama, GPT-NeoX): no learned positions (the residual stream starts at
    the embeddings), each word's rotary position (its rank among the kept words), and the blocks through
    block(p, h, cos, sin, keep). A subclass has rotary_dims, rope_base, rope_scale, dtype and layers."""

    def positions(self, x, keep=None):
        """The rotary position of every word [B or 1, T]: 0 .. T-1, or with keep each kept word's rank among the
        kept ones."""
        if keep is None:
            return tf.range(tf.shape(x)[1])[None]
        return tf.maximum(tf.cumsum(tf.cast(keep, tf.int32), axis=1) - 1, 0)

    def rope(self, positions):
        """(cos, sin) [B, 1, T, R] of positions [B, T]."""
        cos, sin = rope_tables(positions, self.rotary_dims, self.rope_base, self.rope_scale, self.dtype)
        return cos[:, None], sin[:, None]

    def stream_input(self, x, keep=None):
        del keep
        return x

    @classmethod
    def from_config(cls, config, vocab_size, dtype=tf.float32):
        # its shape is that of its imported weights (sg-import), which this layer does not read
        raise UserError(f"{config.path}: basic_cell {cls.cell_type} models are imported (sg-import), not built from "
                        "a config")

    def run_layers(self, x, state=NO_STATE, keep=None):
        """x [B, T, D] -> per block, the tuple (residual stream after it [B, T, D],); keep: as TransformerLM."""
        del state
        cos, sin = self.rope(self.positions(x, keep))
        h, out = x, []
        for p in self.layers:
            h, _ = self.block(p, h, cos, sin, keep)
            out.append((h,))
        return out


class LlamaLM(RotaryLM, NamedWeights, tf.Module):
    """Variables and maths of a Llama-layout LM (imported: sg-import; no training recipe of its own)."""

    cell_type = CELL_TYPE
    forget_bias = 0.0

    def __init__(self, vocab_size, size, num_layers, num_heads, num_kv_heads, ffn_size, *, head_size=None,
                 max_positions=2048, rope_base=DEFAULT_ROPE_BASE, rope_scale=1.0, norm_epsilon=DEFAULT_EPSILON,
                 init_scale=0.05, dtype=tf.float32, seed=1, output_layer=True, tied=False):
        super().__init__(name="llama")
        head_size = head_size or size // num_heads
        if num_heads % num_kv_heads:
            raise UserError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        if head_size % 2:
            raise UserError(f"the head size ({head_size}) must be even for rotary positions")
        self.vocab_size, self.size, self.embedding_size = vocab_size, size, size
        self.num_layers, self.num_heads, self.num_kv_heads = num_layers, num_heads, num_kv_heads
        self.head_size, self.ffn_size, self.num_steps = head_size, ffn_size, max_positions
        self.rotary_dims = head_size
        self.rope_base, self.rope_scale, self.norm_epsilon = float(rope_base), float(rope_scale), float(norm_epsilon)
        self.init_scale = init_scale
        self.dtype = tf.as_dtype(dtype)
        self.input_kernel = None        # E = D: the engine seeds the identity
        rng = np.random.default_rng(seed)
        np_dtype = self.dtype.as_numpy_dtype
        dims = {"D": size, "F": ffn_size, "Q": num_heads * head_size, "KV": num_kv_heads * head_size,
                "V": vocab_size}

        def var(name, dim_names, how):
            shape = tuple(dims[d] for d in dim_names)
            value = rng.uniform(-init_scale, init_scale, shape) if how == "uniform" else np.full(shape, how)
            return tf.Variable(value.astype(np_dtype), name=name)

        self.embedding = var("embedding", ("V", "D"), "uniform")
        self.layers = [{name: var(f"layer{layer}/{name}", shape, how) for name, (shape, how) in BLOCK_PARAMS.items()}
                       for layer in range(num_layers)]
        self.final_gain = var("final_gain", ("D",), 1.0)
        # the output layer: its own [D, V] variable, or (tied) the embedding read transposed, or none
        self.head = var("softmax_w", ("D", "V"), "uniform") if output_layer and not tied else None
        self.tied = bool(tied and output_layer)
        self.softmax_b = None

    @property
    def block_shape(self):
        return self.num_heads, self.num_kv_heads, self.norm_epsilon

    # ---------------------------------------------------------------- forward maths

    def block(self, p, h, cos, sin, keep=None):
        return layer_forward(p, h, self.block_shape, cos, sin, keep)

    def final_norm(self, h):
        return rms_norm(h, self.final_gain, self.norm_epsilon)

    @property
    def softmax_w(self):
        """The output layer [D, V]: embeddingᵀ when tied, None without one."""
        return tf.transpose(self.embedding) if self.tied else self.head

    # ---------------------------------------------------------------- framework-free weights

    def named_variables(self):
        named = {"embedding": self.embedding}
        for layer, params in enumerate(self.layers):
            named.update({f"layer{layer}/{name}": v for name, v in params.items()})
        named["final_gain"] = self.final_gain
        if self.head is not None:
            named["softmax_w"] = self.head
        return named

    def description(self):
        return {"cell_type": np.array(CELL_TYPE), "forget_bias": np.array(0.0, np.float32),
                "num_layers": np.array(self.num_layers, np.int64), "num_heads": np.array(self.num_heads, np.int64),
                "num_kv_heads": np.array(self.num_kv_heads, np.int64), "head_size": np.array(self.head_size, np.int64),
                "rope_base": np.array(self.rope_base), "rope_scale": np.array(self.rope_scale),
                "norm_epsilon": np.array(self.norm_epsilon), "max_positions": np.array(self.num_steps, np.int64),
                "tied": np.array(self.tied)}

    def weights_numpy(self):
        """The arrays of weights.npz: weights as float32 and the description (a tied head stores no softmax_w)."""
        return {**self.description(), **{name: v.numpy().astype(np.float32) for name, v in self.named_variables().items()}}

    def copy(self, dtype):
        twin = LlamaLM(self.vocab_size, self.size, self.num_layers, self.num_heads, self.num_kv_heads, self.ffn_size,
                       head_size=self.head_size, max_positions=self.num_steps, rope_base=self.rope_base,
                       rope_scale=self.rope_scale, norm_epsilon=self.norm_epsilon, dtype=dtype,
                       output_layer=self.has_output_layer, tied=self.tied)
        return twin.assign_from(self)

    @classmethod
    def from_arrays(cls, arrays, dtype=tf.float32, origin="weights file"):
        """Build a model from the arrays of a weights.npz whose cell_type is Llama."""
        for name in ("embedding", "layer0/gate_kernel", "final_gain") + DESCRIPTION:
            if name not in arrays:
                raise UserError(f"weights file {origin} has no array {name!r}")
        vocab_size, size = arrays["embedding"].shape
        tied = bool(arrays["tied"]) if "tied" in arrays else False
        model = cls(vocab_size, size, int(arrays["num_layers"]), int(arrays["num_heads"]), int(arrays["num_kv_heads"]),
                    arrays["layer0/gate_kernel"].shape[1], head_size=int(arrays["head_size"]),
                    max_positions=int(arrays["max_positions"]), rope_base=float(arrays["rope_base"]),
                    rope_scale=float(arrays["rope_scale"]), norm_epsilon=float(arrays["norm_epsilon"]), dtype=dtype,
                    output_layer=tied or "softmax_w" in arrays, tied=tied)
        model.assign_numpy(arrays)
        return model
