"""State gradients G[t, k] = d h_t / d x_{t-k} of a LlamaLM, exact, in forward mode over a window."""
# Shape letters: as engine/transformer.py (R rows, T positions, E = D, F, A query heads, K head
# size, P delays, S sources in a chunk, N = R * S, M = E tangent directions), G key/value heads.
#
# The scheme of engine/transformer.py (one float64 forward pass, then E tangents per source pushed
# through the blocks at the P positions the delays reach), with the Llama block's linearisation:
#
#   RMSNorm     y = g h r, r = (mean(h²) + eps)^-1/2:  dy = g r (dh - x̂ mean(x̂ dh)),  x̂ = h r
#   RoPE        linear per position: the tangent of a rotated query (key) is the rotated tangent
#   GQA         key/value head a // (A / G) serves query head a: the tangents of keys and values are
#               repeated to the query heads as the values are, and attention_tangent runs per query head
#   MLP         d(silu(z_g) z_u) = silu'(z_g) dz_g z_u + silu(z_g) dz_u
#
# The output-level measure: v_t = W[:, w] - W p_t with W the output layer (the embedding
# transposed when tied), as for the other families.
import tensorflow as tf

from state_gradients.engine.transformer import (Chunk, TransformerStateGradients, _rows_matmul, attention_primal,
                                                output_vectors, split_heads)
from state_gradients.models import llama


def rms_norm_tangent(dx, x_hat, inv, gain):
    """Tangent of RMSNorm: dx [N, M, Q, D]; x_hat [N, 1, Q, D], inv [N, 1, Q, 1] at the same positions."""
    return gain * inv * (dx - x_hat * tf.reduce_mean(dx * x_hat, -1, keepdims=True))


def rotary_tables(model, chunk):
    """(cos, sin) [N, 1, P, 1, R] of a Chunk's positions, for tangents [N, M, Q, A, K] (R the rotated components)."""
    cos, sin = model.rope(chunk.index)                                              # [S, 1, P, R]
    return tuple(tf.reshape(tf.tile(t[None], [chunk.rows, 1, 1, 1, 1]), [chunk.n, 1, chunk.delays, 1, -1])
                 for t in (cos, sin))


class LlamaStateGradients(TransformerStateGradients):
    """Jacobians of the residual stream after block `layer` (component 0) or of the final RMSNorm's output
    (component 1, top block only) w.r.t. the input embeddings of the same window (the interface of
    StateGradients: jacobians, class_sums, class_moments), forward mode only."""

    FFN_TANGENTS = 3          # the gate's, the up projection's and their product's

    def _primal(self, inputs, labels=None):
        """Everything the linearisation reads (as TransformerStateGradients._primal), in the engine's dtype."""
        model, dtype = self.forward_model, self.model.dtype
        cast = lambda t: tf.cast(t, dtype)  # noqa: E731
        steps = tf.shape(inputs)[1]
        h = model.embed(inputs)
        cos, sin = model.rope(tf.range(steps)[None])                                  # [1, 1, T, K]
        blocks = []
        for layer in range(self.layer + 1 if labels is None else model.num_layers):
            p = model.layers[layer]
            inv1 = llama.rms_inverse(h, model.norm_epsilon)
            h_next, acts = llama.layer_forward(p, h, model.block_shape, cos, sin)
            inv2 = llama.rms_inverse(acts["h_mid"], model.norm_epsilon)
            blocks.append({"x_hat1": cast(h * inv1), "inv1": cast(inv1), "x_hat2": cast(acts["h_mid"] * inv2),
                           "inv2": cast(inv2), **attention_primal(acts, model.num_heads, cast),
                           "slope": cast(llama.silu_slope(acts["gate"])), "silu": cast(llama.silu(acts["gate"])),
                           "up": cast(acts["up"])})
            h = h_next
        final, vectors = None, None
        if self.component == 1 or labels is not None:
            inv = llama.rms_inverse(h, model.norm_epsilon)
            final = {"x_hat": cast(h * inv), "inv": cast(inv)}
        if labels is not None:
            vectors = output_vectors(model, h, labels, cast)
        return blocks, final, steps, vectors

    def _chunk_tangent(self, blocks, final, steps, j0, size, vectors=None):
        """Tangents [R, S, E, P, D] of sources j0 .. j0+S-1, and with vectors the output-level Jacobians [R, S, E, P]
        (as TransformerStateGradients._chunk_tangent)."""
        model = self.model
        delays, heads, kv_heads = len(self.delays), model.num_heads, model.num_kv_heads
        groups = heads // kv_heads
        chunk = Chunk(j0, size, delays, steps, tf.shape(blocks[0]["x_hat1"])[0])
        at = chunk.at
        cos, sin = rotary_tables(model, chunk)

        def to_queries(t):  # key/value heads -> query heads
            return t if groups == 1 else tf.repeat(t, groups, axis=3)

        dh = tf.tile(tf.eye(model.embedding_size, dtype=model.dtype)[None, :, None, :], [chunk.n, 1, 1, 1])
        chosen = None
        for layer in range(len(blocks)):
            p, prim = model.layers[layer], blocks[layer]
            width = 1 if layer == 0 else delays
            da = rms_norm_tangent(dh, at(prim["x_hat1"], width)[:, None], at(prim["inv1"], width)[:, None],
                                  p["attn_norm"])
            c, s = cos[:, :, :width], sin[:, :, :width]
            dq = llama.rotate(split_heads(_rows_matmul(da, p["q_kernel"]), heads), c, s)
            dk = to_queries(llama.rotate(split_heads(_rows_matmul(da, p["k_kernel"]), kv_heads), c, s))
            dv = to_queries(split_heads(_rows_matmul(da, p["v_kernel"]), kv_heads))
            do = chunk.attention(prim, dq, dk, dv, heads=heads, head_size=model.head_size, width=width, tri=self._tri)
            if width < delays:
                dh = tf.pad(dh, [[0, 0], [0, 0], [0, delays - width], [0, 0]])
            dh = dh + _rows_matmul(do, p["o_kernel"])
            dm = rms_norm_tangent(dh, at(prim["x_hat2"])[:, None], at(prim["inv2"])[:, None], p["mlp_norm"])
            dgate, dup = _rows_matmul(dm, p["gate_kernel"]), _rows_matmul(dm, p["up_kernel"])
            dz = at(prim["slope"])[:, None] * dgate * at(prim["up"])[:, None] + at(prim["silu"])[:, None] * dup
            dh = dh + _rows_matmul(dz, p["down_kernel"])
            if layer == self.layer:
                chosen = dh
        return chunk.finish(self, chosen, dh, final, vectors, rms_norm_tangent)
