"""State gradients G[t, k] = d h_t / d x_{t-k} of a TransformerLM, exact, in forward mode over a window."""
# Shape letters: R window rows, T window positions, E embedding, D model size (H of the state
# gradients), F feed-forward size, A heads, K head size, P delays (offsets t - j = 0 .. P-1),
# S sources (positions j) in one chunk, N = R * S (row, source) pairs, M = E tangent directions,
# C classes.
#
# The window's forward pass runs once (in float64, as for the recurrent models); the blocks are
# then linearised around it. Every source position j seeds E tangents (the identity on x_j),
# which are pushed through the blocks at the P positions j .. j+P-1 that the delays reach:
#
#   tangent[n, e, p, :] = d h_{j+p} / d x_j[e]      for (row, source) n, direction e, offset p
#
# This is exact because attention is causal: h_t depends on x_j only through positions j .. t,
# so the positions before j carry a zero tangent and those after j+P-1 are never needed. What
# the tangent of block l at offset p reads:
#
#   LayerNorm   dy = g * inv * (dx - mean(dx) - x_hat * mean(dx * x_hat))         position-wise
#   attention   do_t = J_t dq_t + sum_{u in j..t} P_tu (ds_tu (v_u - o_t) + dv_u),  ds_tu = q_t . dk_u / sqrt(K)
#               J_t = (sum_{u <= t} P_tu v_u k_u^T - o_t kbar_t^T) / sqrt(K),  kbar_t = sum_u P_tu k_u
#   MLP         dz * gelu'(z), position-wise
#
# J_t (a [K, K] matrix per head and position, computed once per window) carries the change of
# position t's own query against every key of its context, including the keys before j, whose
# tangent is zero; the sum over u carries the changed keys and values, which start at j.
# Block 0's input tangent is non-zero only at offset 0 (x_j enters only position j), so its
# LayerNorm and query/key/value projections run on one offset instead of P.
#
# The output-level measure (labels given): every block and the final LayerNorm are linearised,
# and d log p(w_{t+1}) / d x_j = v_tᵀ dy_t with y_t the final LayerNorm's output and v_t =
# W[:, w] - W p_t (state_gradients' module comment), whatever state is chosen.
import math

import numpy as np
import tensorflow as tf

from state_gradients.engine.recurrent import NUCLEAR_STRIDE, OCCURRENCE_SCALARS, StateGradients, occurrence_sums
from state_gradients.models import transformer

INTERMS = ("residual", "final")
# elements of the largest tangent tensor of one chunk ([N, M, P, F], the MLP's hidden layer): the
# number of sources per chunk is chosen to stay under this (about 128 MB in float32)
CHUNK_ELEMENTS = 32 * 2 ** 20


def _rows_matmul(t, w):
    """[..., X] @ [X, Y] -> [..., Y] as one large matmul."""
    shape = tf.shape(t)
    flat = tf.matmul(tf.reshape(t, [-1, shape[-1]]), w)
    return tf.reshape(flat, tf.concat([shape[:-1], tf.shape(w)[-1:]], 0))


def layer_norm_tangent(dx, x_hat, inv, gain):
    """Tangent of LayerNorm: dx [N, M, Q, D]; x_hat [N, 1, Q, D], inv [N, 1, Q, 1] at the same positions."""
    centred = dx - tf.reduce_mean(dx, -1, keepdims=True)
    return gain * inv * (centred - x_hat * tf.reduce_mean(dx * x_hat, -1, keepdims=True))


def attention_tangent(probs, q, v, o, jac, dq, dk, dv, *, head_size, queries, keys):
    """Tangent of causal attention at P offsets, per head.

    probs [N, A, P, P] (P_{j+p, j+q}, zero above the diagonal); q, v, o [N, P, A, K] at positions
    j+p; jac [N, P, A, K, K] (J_t); dq [N, M, Pq, A, K] and dk, dv [N, M, Pk, A, K], zero beyond
    offsets Pq = queries and Pk = keys -> do [N, M, P, A, K].
    """
    # a constant of q.dtype: tf.cast of a Python float would round it to float32 first (1/sqrt(8) by 3e-8)
    scale = tf.constant(1.0 / math.sqrt(head_size), q.dtype)
    weights = probs[..., :keys]                                                  # [N, A, P, Pk]
    ds = tf.einsum("nmqak,npak->nmapq", dk, q) * scale
    w = ds * weights[:, None]                                                    # [N, M, A, P, Pk]
    do = (tf.einsum("nmapq,nqak->nmpak", w, v[:, :keys])
          - tf.transpose(tf.reduce_sum(w, -1), [0, 1, 3, 2])[..., None] * o[:, None]
          + tf.einsum("napq,nmqak->nmpak", weights, dv))
    from_queries = tf.einsum("npakl,nmpal->nmpak", jac[:, :queries], dq)
    pad = tf.shape(probs)[2] - queries
    from_queries = tf.pad(from_queries, [[0, 0], [0, 0], [0, pad], [0, 0], [0, 0]])
    return do + from_queries


def split_heads(t, heads):
    """[N, M, Q, heads K] -> [N, M, Q, heads, K]."""
    return tf.reshape(t, tf.concat([tf.shape(t)[:3], [heads, -1]], 0))


def attention_primal(acts, heads, cast):
    """What the attention's tangent reads, from a block's activations q, k, v [R, A, T, K] (keys and values per query
    head, rotated where the layout rotates), probs [R, A, T, T] and o: {q, v, o} heads-last [R, T, A, K], jac
    [R, T, A, K, K] (J_t = (sum_u P_tu v_u k_u^T - o_t kbar_t^T) / sqrt(K)) and probs [R, T*T, A], in cast's dtype."""
    q, k, v, probs, o = (acts[n] for n in ("q", "k", "v", "probs", "o"))
    size = q.shape[-1]
    vk = tf.reshape(v[..., :, None] * k[..., None, :], tf.concat([tf.shape(v)[:3], [size * size]], 0))
    outer = tf.reshape(tf.matmul(probs, vk), tf.concat([tf.shape(v)[:3], [size, size]], 0))
    jac = (outer - o[..., :, None] * tf.matmul(probs, k)[..., None, :]) / math.sqrt(size)
    heads_last = lambda t: tf.transpose(t, [0, 2, 1, 3])  # noqa: E731  [R, A, T, K] -> [R, T, A, K]
    probs_flat = tf.reshape(tf.transpose(probs, [0, 2, 3, 1]), [tf.shape(probs)[0], -1, heads])
    return {"q": cast(heads_last(q)), "v": cast(heads_last(v)), "o": cast(heads_last(o)),
            "jac": cast(tf.transpose(jac, [0, 2, 1, 3, 4])), "probs": cast(probs_flat)}


def output_vectors(model, h, labels, cast):
    """v [R, T, D] = d log p(label) / d (final norm's output) = W[:, w] - W p of the top block's stream h."""
    probs = tf.nn.softmax(model.logits(h))                                           # [R, T, V]
    w_t = tf.transpose(model.softmax_w)                                              # [V, D]
    return cast(tf.gather(w_t, labels) - tf.matmul(probs, w_t))


class Chunk:
    """The positions of one chunk of sources j0 .. j0+S-1 at the P delays: index [S, P] (j + p, clamped to the
    window; a clamped position's weight is 0), n = R S, and at(t, q) gathering [R, T, ...] -> [N, q, ...]."""

    def __init__(self, j0, size, delays, steps, rows):
        self.index = tf.minimum(j0 + tf.range(size)[:, None] + tf.range(delays)[None], steps - 1)
        self.n, self.rows, self.size, self.delays, self.steps = rows * size, rows, size, delays, steps

    def at(self, t, q=None):
        q = self.delays if q is None else q
        g = tf.gather(t, self.index[:, :q], axis=1)
        return tf.reshape(g, tf.concat([[self.n, q], tf.shape(t)[2:]], 0))

    def attention(self, prim, dq, dk, dv, *, heads, head_size, width, tri):
        """The merged heads' output tangent [N, M, P, A K] of dq, dk, dv [N, M, width, A, K] (attention_tangent)."""
        pair = self.index[:, :, None] * self.steps + self.index[:, None, :]          # [S, P, P]: (t, u) flattened
        probs = tf.reshape(tf.gather(prim["probs"], pair, axis=1), [self.n, self.delays, self.delays, heads])
        probs = tf.transpose(probs, [0, 3, 1, 2]) * tri                               # [N, A, P, P]
        do = attention_tangent(probs, self.at(prim["q"]), self.at(prim["v"]), self.at(prim["o"]),
                               self.at(prim["jac"]), dq, dk, dv, head_size=head_size, queries=width, keys=width)
        shape = tf.shape(do)
        return tf.reshape(do, tf.concat([shape[:3], [-1]], 0))

    def finish(self, engine, chosen, dh, final, vectors, norm_tangent):
        """(tangents [R, S, E, P, D] of the chosen state, the output-level Jacobians [R, S, E, P] or None): the final
        norm's tangent (norm_tangent with the model's final gain) of the top block's dh [N, M, P, D], where
        engine.component 1 or vectors ask for it."""
        model, out = engine.model, None
        if final is not None:
            dy = norm_tangent(dh, self.at(final["x_hat"])[:, None], self.at(final["inv"])[:, None], model.final_gain)
            if engine.component == 1:
                chosen = dy
            if vectors is not None:
                out = tf.reshape(tf.einsum("nmpd,npd->nmp", dy, self.at(vectors)),
                                 [self.rows, self.size, model.embedding_size, self.delays])
        return tf.reshape(chosen, [self.rows, self.size, model.embedding_size, self.delays, model.size]), out


class TransformerStateGradients(StateGradients):
    """Jacobians of the residual stream after block `layer` (component 0) or of the final LayerNorm's output
    (component 1, top block only) w.r.t. the input embeddings of the same window; the interface of
    StateGradients (jacobians, class_sums, class_moments), forward mode only."""

    def __init__(self, model, *, layer, component, time_steps, max_delay, num_steps, mode="auto"):
        if mode not in ("auto", "forward"):
            raise ValueError(f"a Transformer's state gradients are computed in forward mode, got mode {mode!r}")
        if component == 1 and layer != model.num_layers - 1:
            raise ValueError("the final LayerNorm follows the top block: component 1 needs the top layer")
        super().__init__(model, layer=layer, component=component, time_steps=time_steps, max_delay=max_delay,
                         num_steps=num_steps, mode="forward")
        steps, delays = num_steps, len(self.delays)
        wanted = np.zeros(steps + delays, bool)
        wanted[self.time_steps] = True
        # valid[j, p]: (source j, delay p) is produced, i.e. j + p is a requested time step
        valid = np.array([[wanted[j + p] for p in range(delays)] for j in range(steps)], np.float64)
        self._valid = tf.constant(valid, model.dtype)                            # [T, P]
        self._tri = tf.constant(np.tril(np.ones((delays, delays))), model.dtype)  # key offset <= query offset
        self._n_sources = self.last + 1 - self.first

    # how many [N, M, P, F] tangents of a chunk are alive at once (the gated MLPs hold three)
    FFN_TANGENTS = 1

    def _chunk_size(self, rows):
        per_source = rows * self.model.embedding_size * len(self.delays) * self.model.ffn_size * self.FFN_TANGENTS
        return int(max(1, min(self._n_sources, CHUNK_ELEMENTS // max(1, per_source))))

    # ---------------------------------------------------------------- the window's forward pass

    def _primal(self, inputs, labels=None):
        """Everything the linearisation reads, per block up to `layer` (every block with labels), the final
        LayerNorm's (for component 1 or labels), and with labels the output vectors v [R, T, D] (else None), in
        the engine's dtype."""
        model, dtype = self.forward_model, self.model.dtype
        cast = lambda t: tf.cast(t, dtype)  # noqa: E731
        steps = tf.shape(inputs)[1]
        h = model.stream_input(model.embed(inputs))
        blocks = []
        for layer in range(self.layer + 1 if labels is None else model.num_layers):
            p = model.layers[layer]
            x_hat1, inv1 = transformer.normalise(h)
            h_next, acts = transformer.layer_forward(p, h, model.num_heads)
            x_hat2, inv2 = transformer.normalise(acts["h_mid"])
            blocks.append({"x_hat1": cast(x_hat1), "inv1": cast(inv1), "x_hat2": cast(x_hat2), "inv2": cast(inv2),
                           **attention_primal(acts, model.num_heads, cast),
                           "slope": cast(transformer.gelu_slope(acts["z"]))})
            h = h_next
        final, vectors = None, None
        if self.component == 1 or labels is not None:
            x_hat, inv = transformer.normalise(h)
            final = {"x_hat": cast(x_hat), "inv": cast(inv)}
        if labels is not None:
            vectors = output_vectors(model, h, labels, cast)
        return blocks, final, steps, vectors

    # ---------------------------------------------------------------- tangents of one chunk of sources

    def _chunk_tangent(self, blocks, final, steps, j0, size, vectors=None):
        """Tangents [R, S, E, P, D] of sources j0 .. j0+S-1 (positions past the window clamped; their weight is 0),
        and with vectors the output-level Jacobians [R, S, E, P] (else None)."""
        model = self.model
        delays, heads = len(self.delays), model.num_heads
        chunk = Chunk(j0, size, delays, steps, tf.shape(blocks[0]["x_hat1"])[0])
        at = chunk.at
        seed = tf.eye(model.embedding_size, dtype=model.dtype) if model.input_kernel is None else model.input_kernel
        dh = tf.tile(seed[None, :, None, :], [chunk.n, 1, 1, 1])                     # [N, M, 1, D]: offset 0 only
        chosen = None
        for layer in range(len(blocks)):
            p, prim = model.layers[layer], blocks[layer]
            width = 1 if layer == 0 else delays                                      # dh's non-zero offsets
            da = layer_norm_tangent(dh, at(prim["x_hat1"], width)[:, None], at(prim["inv1"], width)[:, None],
                                    p["ln1_gain"])
            dq, dk, dv = (split_heads(t, heads) for t in tf.split(_rows_matmul(da, p["qkv_kernel"]), 3, axis=-1))
            do = chunk.attention(prim, dq, dk, dv, heads=heads, head_size=model.size // heads, width=width,
                                 tri=self._tri)                                      # [N, M, P, D]
            if width < delays:
                dh = tf.pad(dh, [[0, 0], [0, 0], [0, delays - width], [0, 0]])
            dh = dh + _rows_matmul(do, p["proj_kernel"])
            dm = layer_norm_tangent(dh, at(prim["x_hat2"])[:, None], at(prim["inv2"])[:, None], p["ln2_gain"])
            dz = _rows_matmul(dm, p["fc_kernel"]) * at(prim["slope"])[:, None]
            dh = dh + _rows_matmul(dz, p["out_kernel"])
            if layer == self.layer:
                chosen = dh
        return chunk.finish(self, chosen, dh, final, vectors, layer_norm_tangent)

    def _chunks(self, rows):
        size = self._chunk_size(rows)
        return size, -(-self._n_sources // size)

    # ---------------------------------------------------------------- traced entry points

    def _jacobians_graph(self, inputs, state, labels=None):
        del state
        blocks, final, steps, vectors = self._primal(inputs, labels)
        size, count = self._chunks(inputs.shape[0])
        parts = [self._chunk_tangent(blocks, final, steps, self.first + i * size, size, vectors) for i in range(count)]
        tangent = tf.concat([t for t, _ in parts], 1)                                # [R, J, E, P, D]
        outputs = tf.concat([o for _, o in parts], 1) if labels is not None else None   # [R, J, E, P]
        out, outs = [], []
        for k in self.delays:
            g = tf.gather(tangent[:, :, :, k], self._select[k], axis=1)             # [R, n_k, E, D]
            out.append(tf.transpose(g, [0, 1, 3, 2]))                                # [R, n_k, D, E]
            outs.append(None if outputs is None else tf.gather(outputs[:, :, :, k], self._select[k], axis=1))
        return out, transformer.NO_STATE, outs

    def _class_sums_graph(self, inputs, state, masks, gram_delays=(), norm=None, labels=None):
        del state
        model = self.model
        blocks, final, steps, vectors = self._primal(inputs, labels)
        size, count = self._chunks(inputs.shape[0])
        masks = tf.cast(masks, model.dtype)
        classes, delays, e, d = masks.shape[0], len(self.delays), model.embedding_size, model.size
        # sources past the window (the last chunk's padding) read as the last position with weight 0
        pad = count * size - self._n_sources
        masks = tf.pad(masks[:, :, self.first:self.last + 1], [[0, 0], [0, 0], [0, pad]])
        valid = tf.pad(self._valid[self.first:self.last + 1], [[0, pad], [0, 0]])

        def body(i, sums, grams, occurrence):
            j = i * size
            tangent, out = self._chunk_tangent(blocks, final, steps, self.first + j, size, vectors)   # [R, S, E, P, D]
            w = masks[:, :, j:j + size, None] * valid[None, None, j:j + size]              # [C, R, S, P]
            sums = sums + tf.einsum("crsp,rsepd->pced", w, tangent)
            # each delay's G^T G once, for the gram sums and the occurrence measures alike
            gram_of = {}
            for p in sorted(set(self.delays.index(k) for k in gram_delays) | (set(range(delays)) if norm is not None
                                                                               else set())):
                g = tangent[:, :, :, p]                                                    # [R, S, E, D]
                gram_of[p] = tf.matmul(g, g, transpose_b=True)
            new = [grams[g_index] + tf.einsum("crs,rsef->cef", w[..., self.delays.index(k)],
                                              gram_of[self.delays.index(k)])
                   for g_index, k in enumerate(gram_delays)]
            if norm is not None:
                # the chunk's sources are first + j + s: those at multiples of NUCLEAR_STRIDE
                sampled = tf.range(tf.math.floormod(-(self.first + j), NUCLEAR_STRIDE), size, NUCLEAR_STRIDE)
                occurrence = occurrence + tf.stack([
                    occurrence_sums(w[..., p], gram_of[p], norm, None if out is None else out[:, :, :, p], sampled)
                    for p in range(delays)])
            return i + 1, sums, tuple(new), occurrence

        sums = tf.zeros([delays, classes, e, d], model.dtype)
        grams = tuple(tf.zeros([classes, e, e], model.dtype) for _ in gram_delays)
        occurrence = tf.zeros([delays, classes, OCCURRENCE_SCALARS + e] if norm is not None else [0], model.dtype)
        _, sums, grams, occurrence = tf.while_loop(lambda i, *_: i < count, body,
                                                   (tf.constant(0), sums, grams, occurrence))
        return tf.unstack(sums), list(grams), tf.unstack(occurrence) if norm is not None else [], transformer.NO_STATE
