"""A decoder-only, causal, pre-LayerNorm (GPT-2-style) Transformer LM with the LanguageModel interface."""
# Shape letters: B batch rows, T positions of a window, V vocabulary, E embedding size, D model
# size (config `size`), F feed-forward size, A heads, K head size (D / A).
#
#   inputs [B, T] --embedding--> x [B, T, E] --x @ input_kernel (when E != D) + positions--> h [B, T, D]
#   block l:  h <- h + attention(LN1(h));  h <- h + MLP(LN2(h))       the residual stream after block l
#   head:     logits [B, T, V] = LN_final(h_top) @ softmax_w + softmax_b
#
# A window carries no state: every window is read from its first token, so the model's "state"
# is the empty tuple, and run_layers returns, per block, the one-component tuple (h,) [B, T, D]
# of the residual stream after it (what grad_interm residual differentiates).
#
# The block's maths lives in pure functions of a parameter dict (layer_forward, layer_norm,
# attention), shared by the model and the state-gradient engine (transformer_gradients.py),
# which linearises them around a window's forward pass.
import math

import numpy as np
import tensorflow as tf

from state_gradients.core.errors import UserError
from state_gradients.models.base import NO_OUTPUT_LAYER
from state_gradients.models.weights import NamedWeights

CELL_TYPE = "Transformer"
LAYER_NORM_EPSILON = 1e-5          # GPT-2's, so that imported GPT-2 blocks compute the same
GELU_C = math.sqrt(2.0 / math.pi)  # GELU in its tanh form (GPT-2's)
GELU_A = 0.044715
NO_STATE = ()

# weights.npz name -> (shape in terms of E, D, F, V, T; initialiser): "uniform" U[-init_scale, init_scale]
# or a constant (LayerNorm gains start at 1, every bias at 0)
BLOCK_PARAMS = {
    "ln1_gain": (("D",), 1.0), "ln1_bias": (("D",), 0.0),
    "qkv_kernel": (("D", "3D"), "uniform"), "qkv_bias": (("3D",), 0.0),
    "proj_kernel": (("D", "D"), "uniform"), "proj_bias": (("D",), 0.0),
    "ln2_gain": (("D",), 1.0), "ln2_bias": (("D",), 0.0),
    "fc_kernel": (("D", "F"), "uniform"), "fc_bias": (("F",), 0.0),
    "out_kernel": (("F", "D"), "uniform"), "out_bias": (("D",), 0.0),
}


def gelu(z):
    """GELU, tanh form: 0.5 z (1 + tanh(c (z + a z^3)))."""
    return 0.5 * z * (1.0 + tf.tanh(GELU_C * (z + GELU_A * z ** 3)))


def gelu_slope(z):
    """d gelu / dz (what the tangent of the MLP multiplies by)."""
    u = GELU_C * (z + GELU_A * z ** 3)
    th = tf.tanh(u)
    # 1 - tanh(u)^2 as 4 sigmoid(2u) sigmoid(-2u): no cancellation where the unit saturates
    sech2 = 4.0 * tf.sigmoid(2.0 * u) * tf.sigmoid(-2.0 * u)
    return 0.5 * (1.0 + th) + 0.5 * z * sech2 * GELU_C * (1.0 + 3.0 * GELU_A * z ** 2)


def normalise(h):
    """(x_hat, 1 / sigma) of LayerNorm over the last axis: x_hat = (h - mean) / sigma, sigma = sqrt(var + eps)."""
    mean, var = tf.nn.moments(h, axes=[-1], keepdims=True)
    inv = tf.math.rsqrt(var + LAYER_NORM_EPSILON)
    return (h - mean) * inv, inv


def layer_norm(h, gain, bias):
    return normalise(h)[0] * gain + bias


def split_heads(t, heads):
    """[B, T, D] -> [B, A, T, K]."""
    shape = tf.shape(t)
    return tf.transpose(tf.reshape(t, [shape[0], shape[1], heads, -1]), [0, 2, 1, 3])


def merge_heads(t):
    """[B, A, T, K] -> [B, T, D]."""
    shape = tf.shape(t)
    return tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [shape[0], shape[2], -1])


def causal_probs(q, k, keep=None):
    """Attention probabilities [B, A, T, T] of q, k [B, A, T, K]: softmax over u <= t of q_t . k_u / sqrt(K).

    keep [B, T] bool (None: all): no position attends to a u where keep is False but to itself, so that the kept
    positions compute what they would without the dropped words, and a dropped one stays finite (it is not read).
    """
    size = tf.cast(tf.shape(q)[-1], q.dtype)
    scores = tf.matmul(q, k, transpose_b=True) / tf.sqrt(size)
    steps = tf.shape(q)[2]
    future = tf.linalg.band_part(tf.ones([steps, steps], tf.bool), 0, -1) & ~tf.eye(steps, dtype=tf.bool)
    if keep is not None:
        future = future[None, None] | (~keep[:, None, None, :] & ~tf.eye(steps, dtype=tf.bool))
    scores = tf.where(future, tf.constant(-np.inf, scores.dtype), scores)
    return tf.nn.softmax(scores, axis=-1)


def layer_forward(p, h, heads, keep=None):
    """One block on the residual stream h [B, T, D] -> (new h, the activations its linearisation needs); keep: as
    causal_probs."""
    a = layer_norm(h, p["ln1_gain"], p["ln1_bias"])
    qkv = tf.einsum("btd,de->bte", a, p["qkv_kernel"]) + p["qkv_bias"]
    q, k, v = (split_heads(t, heads) for t in tf.split(qkv, 3, axis=-1))
    probs = causal_probs(q, k, keep)
    o = tf.matmul(probs, v)                                                      # [B, A, T, K]
    h = h + tf.einsum("btd,de->bte", merge_heads(o), p["proj_kernel"]) + p["proj_bias"]
    m = layer_norm(h, p["ln2_gain"], p["ln2_bias"])
    z = tf.einsum("btd,df->btf", m, p["fc_kernel"]) + p["fc_bias"]
    out = h + tf.einsum("btf,fd->btd", gelu(z), p["out_kernel"]) + p["out_bias"]
    return out, {"h_mid": h, "q": q, "k": k, "v": v, "probs": probs, "o": o, "z": z}


class WindowLM:
    """What every model whose windows carry no state shares (the GPT-2 and Llama layouts): the empty state, the
    embedding lookup, the logits of final_norm's output through softmax_w (and softmax_b when it has one), and the
    per-token losses. A subclass has embedding, size, vocab_size, softmax_w, softmax_b and final_norm."""

    def zero_state(self, batch_size):
        del batch_size
        return NO_STATE

    def embed(self, inputs):
        return tf.nn.embedding_lookup(self.embedding, inputs)

    @staticmethod
    def final_state(all_states):
        del all_states
        return NO_STATE

    def logits(self, outputs):
        """outputs: the top block's residual stream [..., D] -> logits [..., V] (after the final norm)."""
        if not self.has_output_layer:
            raise UserError(NO_OUTPUT_LAYER)
        shape = tf.shape(outputs)
        flat = tf.matmul(tf.reshape(self.final_norm(outputs), [-1, self.size]), self.softmax_w)
        if self.softmax_b is not None:
            flat = flat + self.softmax_b
        return tf.reshape(flat, tf.concat([shape[:-1], [self.vocab_size]], 0))

    def token_losses(self, outputs, targets):
        """Cross entropy per token [B, T], full softmax (as LanguageModel.token_losses)."""
        logits = self.logits(outputs)
        return tf.reduce_logsumexp(logits, -1) - tf.gather(logits, targets, batch_dims=2)


class TransformerLM(WindowLM, NamedWeights, tf.Module):
    """Variables and maths of the Transformer LM; training, evaluation and gradients live elsewhere."""

    cell_type = CELL_TYPE
    forget_bias = 0.0

    def __init__(self, vocab_size, embedding_size, size, num_layers, num_heads, ffn_size, num_steps,
                 init_scale=0.05, dtype=tf.float32, seed=1, train_embedding=True, output_layer=True):
        super().__init__(name="transformer")
        if size % num_heads:
            raise UserError(f"size ({size}) must be a multiple of num_heads ({num_heads})")
        self.vocab_size, self.embedding_size, self.size = vocab_size, embedding_size, size
        self.num_layers, self.num_heads, self.ffn_size = num_layers, num_heads, ffn_size
        self.num_steps = num_steps            # the learned positions (config max_positions): windows of at most this
        self.init_scale = init_scale
        self.dtype = tf.as_dtype(dtype)
        rng = np.random.default_rng(seed)     # numpy's generator in a fixed variable order, as lm.py
        np_dtype = self.dtype.as_numpy_dtype
        dims = {"E": embedding_size, "D": size, "3D": 3 * size, "F": ffn_size, "V": vocab_size, "T": num_steps}

        def var(name, dim_names, how, trainable=True):
            shape = tuple(dims[d] for d in dim_names)
            value = (rng.uniform(-init_scale, init_scale, shape) if how == "uniform" else np.full(shape, how))
            return tf.Variable(value.astype(np_dtype), name=name, trainable=trainable)

        self.embedding = var("embedding", ("V", "E"), "uniform", trainable=train_embedding)
        # E = D needs no projection (a GPT-2 layout); E != D keeps G's [D, E] shape of the recurrent models
        self.input_kernel = var("input_kernel", ("E", "D"), "uniform") if embedding_size != size else None
        self.positions = var("positions", ("T", "D"), "uniform")
        self.layers = [{name: var(f"layer{layer}/{name}", shape, how) for name, (shape, how) in BLOCK_PARAMS.items()}
                       for layer in range(num_layers)]
        self.final_gain = var("final_gain", ("D",), 1.0)
        self.final_bias = var("final_bias", ("D",), 0.0)
        self.softmax_w = self.softmax_b = None
        if output_layer:
            self.softmax_w = var("softmax_w", ("D", "V"), "uniform")
            self.softmax_b = var("softmax_b", ("V",), 0.0)

    @classmethod
    def from_config(cls, config, vocab_size, dtype=tf.float32):
        train_embedding = not (config.pretrained_embeddings and config.fixed_embeddings)
        return cls(vocab_size, config.embedding_size, config.size, config.num_layers, config.num_heads,
                   config.ffn_size, config.max_positions, init_scale=config.init_scale, dtype=dtype, seed=config.seed,
                   train_embedding=train_embedding, output_layer=config.output_layer)

    # ---------------------------------------------------------------- forward maths

    def stream_input(self, x, keep=None):
        """The residual stream entering block 0: x [B, T, E] (projected to D when E != D) + positions[:T]; with keep
        [B, T] bool, each kept word at the position it has among the kept ones (a dropped word's is not read)."""
        steps = tf.shape(x)[1]   # at most num_steps: a longer window fails to broadcast against the positions
        h = x if self.input_kernel is None else tf.einsum("bte,ed->btd", x, self.input_kernel)
        if keep is None:
            return h + self.positions[:steps]
        index = tf.maximum(tf.cumsum(tf.cast(keep, tf.int32), axis=1) - 1, 0)
        return h + tf.gather(self.positions, index)

    def run_layers(self, x, state=NO_STATE, keep=None):
        """x [B, T, E] -> per block, the tuple (residual stream after it [B, T, D],). keep [B, T] bool (None: every
        word): the words where keep is False are left out, as if the input were the kept words alone (their own
        outputs are not that and are not to be read)."""
        del state  # windows carry no state
        h, out = self.stream_input(x, keep), []
        for p in self.layers:
            h, _ = layer_forward(p, h, self.num_heads, keep)
            out.append((h,))
        return out

    def final_norm(self, h):
        """The final LayerNorm: what the output layer (and grad_interm final) sees."""
        return layer_norm(h, self.final_gain, self.final_bias)

    # ---------------------------------------------------------------- framework-free weights

    def named_variables(self):
        """weights.npz name -> variable, in file order."""
        named = {"embedding": self.embedding}
        if self.input_kernel is not None:
            named["input_kernel"] = self.input_kernel
        named["positions"] = self.positions
        for layer, params in enumerate(self.layers):
            named.update({f"layer{layer}/{name}": v for name, v in params.items()})
        named.update({"final_gain": self.final_gain, "final_bias": self.final_bias})
        if self.has_output_layer:
            named.update({"softmax_w": self.softmax_w, "softmax_b": self.softmax_b})
        return named

    def weights_numpy(self):
        """The arrays of weights.npz: weights as float32, plus the model description (docs/file-formats.md)."""
        arrays = {"cell_type": np.array(CELL_TYPE), "forget_bias": np.array(0.0, dtype=np.float32),
                  "num_layers": np.array(self.num_layers, dtype=np.int64),
                  "num_heads": np.array(self.num_heads, dtype=np.int64)}
        arrays.update({name: v.numpy().astype(np.float32) for name, v in self.named_variables().items()})
        return arrays

    def copy(self, dtype):
        """The same model (exact weights) computing in another dtype."""
        twin = TransformerLM(self.vocab_size, self.embedding_size, self.size, self.num_layers, self.num_heads,
                             self.ffn_size, self.num_steps, init_scale=self.init_scale, dtype=dtype,
                             output_layer=self.has_output_layer)
        return twin.assign_from(self)

    @classmethod
    def from_arrays(cls, arrays, dtype=tf.float32, origin="weights file"):
        """Build a model from the arrays of a weights.npz whose cell_type is Transformer."""
        for name in ("embedding", "positions", "num_layers", "num_heads", "layer0/fc_kernel"):
            if name not in arrays:
                raise UserError(f"weights file {origin} has no array {name!r}")
        vocab_size, embedding_size = arrays["embedding"].shape
        num_steps, size = arrays["positions"].shape
        model = cls(vocab_size, embedding_size, size, int(arrays["num_layers"]), int(arrays["num_heads"]),
                    arrays["layer0/fc_kernel"].shape[1], num_steps, dtype=dtype, output_layer="softmax_w" in arrays)
        model.assign_numpy(arrays)
        return model
