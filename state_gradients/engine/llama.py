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

from state_gradients.engine.transformer import TransformerStateGradients, _rows_matmul, attention_tangent
from state_gradients.models import llama


def rms_norm_tangent(dx, x_hat, inv, gain):
    """Tangent of RMSNorm: dx [N, M, Q, D]; x_hat [N, 1, Q, D], inv [N, 1, Q, 1] at the same positions."""
    return gain * inv * (dx - x_hat * tf.reduce_mean(dx * x_hat, -1, keepdims=True))


class LlamaStateGradients(TransformerStateGradients):
    """Jacobians of the residual stream after block `layer` (component 0) or of the final RMSNorm's output
    (component 1, top block only) w.r.t. the input embeddings of the same window (the interface of
    StateGradients: jacobians, class_sums, class_moments), forward mode only."""

    def _primal(self, inputs, labels=None):
        """Everything the linearisation reads (as TransformerStateGradients._primal), in the engine's dtype."""
        model, dtype = self.forward_model, self.model.dtype
        cast = lambda t: tf.cast(t, dtype)  # noqa: E731
        steps = tf.shape(inputs)[1]
        h = model.embed(inputs)
        cos, sin = model.rope(tf.range(steps)[None])                                  # [1, 1, T, K]
        blocks = []
        heads_last = lambda t: tf.transpose(t, [0, 2, 1, 3])  # noqa: E731  [R, A, T, K] -> [R, T, A, K]
        for layer in range(self.layer + 1 if labels is None else model.num_layers):
            p = model.layers[layer]
            inv1 = llama.rms_inverse(h, model.norm_epsilon)
            h_next, acts = llama.layer_forward(p, h, model.block_shape, cos, sin)
            inv2 = llama.rms_inverse(acts["h_mid"], model.norm_epsilon)
            q, k, v, probs, o = (acts[n] for n in ("q", "k", "v", "probs", "o"))     # [R, A, T, K], [R, A, T, T]
            size = model.head_size
            # J_t = (sum_u P_tu v_u k_u^T - o_t kbar_t^T) / sqrt(K), k the rotated keys
            vk = tf.reshape(v[..., :, None] * k[..., None, :], tf.concat([tf.shape(v)[:3], [size * size]], 0))
            outer = tf.reshape(tf.matmul(probs, vk), tf.concat([tf.shape(v)[:3], [size, size]], 0))
            k_bar = tf.matmul(probs, k)
            jac = (outer - o[..., :, None] * k_bar[..., None, :]) / size ** 0.5
            probs_flat = tf.reshape(tf.transpose(probs, [0, 2, 3, 1]), [tf.shape(probs)[0], -1, model.num_heads])
            blocks.append({"x_hat1": cast(h * inv1), "inv1": cast(inv1), "x_hat2": cast(acts["h_mid"] * inv2),
                           "inv2": cast(inv2), "q": cast(heads_last(q)), "v": cast(heads_last(v)),
                           "o": cast(heads_last(o)), "jac": cast(tf.transpose(jac, [0, 2, 1, 3, 4])),
                           "probs": cast(probs_flat), "slope": cast(llama.silu_slope(acts["gate"])),
                           "silu": cast(llama.silu(acts["gate"])), "up": cast(acts["up"])})
            h = h_next
        final, vectors = None, None
        if self.component == 1 or labels is not None:
            inv = llama.rms_inverse(h, model.norm_epsilon)
            final = {"x_hat": cast(h * inv), "inv": cast(inv)}
        if labels is not None:
            probs = tf.nn.softmax(model.logits(h))                                    # [R, T, V]
            w_t = tf.transpose(model.softmax_w)                                       # [V, D]
            vectors = cast(tf.gather(w_t, labels) - tf.matmul(probs, w_t))
        return blocks, final, steps, vectors

    def _chunk_tangent(self, blocks, final, steps, j0, size, vectors=None):
        """Tangents [R, S, E, P, D] of sources j0 .. j0+S-1, and with vectors the output-level Jacobians [R, S, E, P]
        (as TransformerStateGradients._chunk_tangent)."""
        model = self.model
        delays, heads, kv_heads = len(self.delays), model.num_heads, model.num_kv_heads
        groups = heads // kv_heads
        rows = tf.shape(blocks[0]["x_hat1"])[0]
        sources = j0 + tf.range(size)
        index = tf.minimum(sources[:, None] + tf.range(delays)[None], steps - 1)      # [S, P] positions j + p
        n = rows * size
        cos, sin = model.rope(index)                                                  # [S, 1, P, K]
        # [N, 1, P, 1, K]: the rotation at each (row, source)'s positions, for tangents [N, M, Q, A, K]
        cos, sin = (tf.tile(t[None], [rows, 1, 1, 1, 1]) for t in (cos, sin))       # [R, S, 1, P, K]
        cos, sin = (tf.reshape(t, [n, 1, delays, 1, model.head_size]) for t in (cos, sin))

        def at(t, q=delays):
            g = tf.gather(t, index[:, :q], axis=1)
            return tf.reshape(g, tf.concat([[n, q], tf.shape(t)[2:]], 0))

        def split(t, count):  # [N, M, Q, count K] -> [N, M, Q, count, K]
            return tf.reshape(t, tf.concat([tf.shape(t)[:3], [count, model.head_size]], 0))

        def to_queries(t):  # key/value heads -> query heads
            return t if groups == 1 else tf.repeat(t, groups, axis=3)

        dh = tf.tile(tf.eye(model.embedding_size, dtype=model.dtype)[None, :, None, :], [n, 1, 1, 1])   # [N, M, 1, D]
        chosen = None
        for layer in range(len(blocks)):
            p, prim = model.layers[layer], blocks[layer]
            width = 1 if layer == 0 else delays
            da = rms_norm_tangent(dh, at(prim["x_hat1"], width)[:, None], at(prim["inv1"], width)[:, None],
                                  p["attn_norm"])
            c, s = cos[:, :, :width], sin[:, :, :width]
            dq = llama.rotate(split(_rows_matmul(da, p["q_kernel"]), heads), c, s)
            dk = to_queries(llama.rotate(split(_rows_matmul(da, p["k_kernel"]), kv_heads), c, s))
            dv = to_queries(split(_rows_matmul(da, p["v_kernel"]), kv_heads))
            pair = index[:, :, None] * steps + index[:, None, :]
            probs = tf.reshape(tf.gather(prim["probs"], pair, axis=1), [n, delays, delays, heads])
            probs = tf.transpose(probs, [0, 3, 1, 2]) * self._tri
            do = attention_tangent(probs, at(prim["q"]), at(prim["v"]), at(prim["o"]), at(prim["jac"]), dq, dk, dv,
                                   head_size=model.head_size, queries=width, keys=width)
            shape = tf.shape(do)
            do = tf.reshape(do, tf.concat([shape[:3], [-1]], 0))                      # [N, M, P, A K]
            if width < delays:
                dh = tf.pad(dh, [[0, 0], [0, 0], [0, delays - width], [0, 0]])
            dh = dh + _rows_matmul(do, p["o_kernel"])
            dm = rms_norm_tangent(dh, at(prim["x_hat2"])[:, None], at(prim["inv2"])[:, None], p["mlp_norm"])
            dgate, dup = _rows_matmul(dm, p["gate_kernel"]), _rows_matmul(dm, p["up_kernel"])
            dz = at(prim["slope"])[:, None] * dgate * at(prim["up"])[:, None] + at(prim["silu"])[:, None] * dup
            dh = dh + _rows_matmul(dz, p["down_kernel"])
            if layer == self.layer:
                chosen = dh
        out = None
        if final is not None:
            dy = rms_norm_tangent(dh, at(final["x_hat"])[:, None], at(final["inv"])[:, None], model.final_gain)
            if self.component == 1:
                chosen = dy
            if vectors is not None:
                out = tf.reshape(tf.einsum("nmpd,npd->nmp", dy, at(vectors)), [rows, size, model.embedding_size, delays])
        return tf.reshape(chosen, [rows, size, model.embedding_size, delays, model.size]), out
