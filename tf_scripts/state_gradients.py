"""State gradients G[t, k] = d s_t / d x_{t-k} of a LanguageModel, vectorised over a whole window."""
# Shape letters: R window rows (batch rows), T window positions, E embedding, H state, P
# pre-activation size, D delays, J source positions (t - k) handled at one delay, C classes.
#
# Forward mode (E <= H, the papers' case): every source position j of the window seeds E
# tangents (the identity on x_j), which are pushed through the linearised cells for delays
# k = 0 .. D-1; after k steps the tangent of the chosen state is d s_{j+k} / d x_j. All
# sources are pushed at once, so each delay step is one [R*J*E, H] x [H, P] matmul:
#
#   delay 0:  sources j = 0 .. T-1     tangent[r, j] = d s_j / d x_j          [R, T,   E, H]
#   delay 1:  sources j = 0 .. T-2     tangent[r, j] = d s_{j+1} / d x_j      [R, T-1, E, H]
#   ...       (the last source drops out at every step: s_{j+k} must lie inside the window)
#
# Reverse mode (H < E): every target position t seeds H cotangents that are pulled back
# through the cells, one position per delay; each step is a vector-Jacobian product of the
# hand-written cell step, taken with tf.GradientTape on rows replicated H times.
#
# The state entering the window is a constant (truncated BPTT), and dropout is off.
import numpy as np
import tensorflow as tf

from tf_scripts import cells


def _flat(t):
    """[R, J, ...] -> [R*J, ...]."""
    return tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))


def _unflat(t, rows):
    """[R*J, ...] -> [R, J, ...]."""
    return tf.reshape(t, tf.concat([[rows, -1], tf.shape(t)[1:]], 0))


class StateGradients:
    """Jacobians of one layer's state (c or h) w.r.t. the input embeddings of the same window.

    The requested time steps fix which (t, k) pairs are produced: for delay k, the targets
    t in `time_steps` with t >= k; the sources are t - k. Everything is traced once into a
    tf.function per row count.
    """

    FORWARD_DTYPE = tf.float64   # of the window's forward pass (see __init__)

    def __init__(self, model, *, layer, component, time_steps, max_delay, num_steps, mode="auto"):
        self.model, self.layer, self.component = model, layer, component
        # The window's forward pass (states and activations of the linearisation) always runs in
        # float64: in float32 its rounding, amplified along the recurrence, was the largest error
        # of the float32 Jacobians (RNN 9.6e-5, GRU 8.6e-6 of the window's largest entry on
        # trained demo models; 2.6e-7 and 7.8e-7 with a float64 forward pass). It costs
        # O(T H^2) per window next to the tangents' O(T D E H^2). The weights are copied here.
        self.forward_model = model if model.dtype == self.FORWARD_DTYPE else model.copy(self.FORWARD_DTYPE)
        self.time_steps = sorted(set(int(t) for t in time_steps))
        if not self.time_steps or self.time_steps[0] < 0 or self.time_steps[-1] >= num_steps:
            raise ValueError(f"time steps must lie in 0..{num_steps - 1}")
        self.num_steps = num_steps
        self.delays = list(range(min(max_delay, self.time_steps[-1] + 1)))
        if mode == "auto":
            mode = "forward" if model.embedding_size <= model.size else "reverse"
        if mode not in ("forward", "reverse"):
            raise ValueError(f"mode must be forward, reverse or auto, got {mode!r}")
        self.mode = mode
        # Only positions first..last matter: sources start max_delay-1 before the first target.
        self.first = max(0, self.time_steps[0] - (len(self.delays) - 1))
        self.last = self.time_steps[-1]
        # targets[k]: the absolute time steps t (ascending) whose G[t, k] is produced
        self.targets = {k: np.array([t for t in self.time_steps if t >= k], dtype=np.int64) for k in self.delays}
        # for forward mode: at delay k, source index jj (relative to `first`) -> t = first + jj + k
        self._select = {k: tf.constant([t - k - self.first for t in self.targets[k]], tf.int32)
                        for k in self.delays}
        # (XLA's jit_compile was measured 10x slower on this graph on CPU, so it stays off.)
        self._jacobians = tf.function(self._jacobians_graph)
        self._class_sums = tf.function(self._class_sums_graph)

    # ---------------------------------------------------------------- forward pass and linearisation

    def _linearise(self, inputs, state):
        """Run the window in FORWARD_DTYPE; return the input embeddings, every layer's aux activations and
        the final state, in the engine's dtype."""
        model = self.forward_model
        state = tuple(tuple(tf.cast(s, model.dtype) for s in layer) for layer in state)
        x = model.embed(inputs)
        all_states = model.run_layers(x, state)
        layer_in, aux = x, []
        for layer in range(self.layer + 1):
            p = model.layers[layer]
            seq = all_states[layer]
            # previous state at position t: the entering state at t = 0, else the state at t - 1
            prev = tuple(tf.concat([s0[:, None], s[:, :-1]], 1) for s0, s in zip(state[layer], seq))
            sl = slice(self.first, self.last + 1)
            xw = model.cell.project_input(p, _flat(layer_in[:, sl]))
            w_h = model.cell.recurrent_weights(p, model.size)
            _, a = model.cell.step(p, xw, tuple(_flat(s[:, sl]) for s in prev), w_h)
            aux.append(a)
            layer_in = seq[-1]
        dtype = self.model.dtype
        cast = lambda t: tf.cast(t, dtype)  # noqa: E731
        return (cast(x), [tuple(cast(a) for a in layer) for layer in aux],
                tuple(tuple(cast(s) for s in layer) for layer in model.final_state(all_states)))

    # ---------------------------------------------------------------- forward mode

    def _forward_tangents(self, aux, rows):
        """Yield (k, tangent of the chosen state [R, J_k, E, H]) for every delay k."""
        model, cell = self.model, self.model.cell
        n_pos = self.last + 1 - self.first
        eye = tf.eye(model.embedding_size, dtype=model.dtype)[None]        # [1, E, E]
        tangents = None
        for k in self.delays:
            n_src = n_pos - k
            new = []
            for layer in range(self.layer + 1):
                p = model.layers[layer]
                # aux at positions t = j + k for sources j = 0 .. n_src-1, flattened over rows
                a = tuple(_flat(_unflat(c, rows)[:, k:]) for c in aux[layer])
                if layer == 0:
                    dxw = cell.project_tangent(p, eye) if k == 0 else None
                else:
                    dxw = cell.project_tangent(p, new[layer - 1][-1])
                dstate = None if k == 0 else tuple(
                    _flat(_unflat(d, rows)[:, :n_src]) for d in tangents[layer])
                new.append(cell.tangent(p, a, dxw, dstate))
            tangents = new
            yield k, _unflat(tangents[self.layer][self.component], rows)

    # ---------------------------------------------------------------- reverse mode

    def _reverse_cotangents(self, x, aux, state, inputs, rows):
        """Yield (k, G [R, n_k, E, H]) for every delay by pulling H cotangents back per target."""
        del aux  # reverse mode recomputes each step under a tape instead
        model, cell = self.model, self.model.cell
        size = model.size
        all_states = model.run_layers(x, state)
        eye = tf.eye(size, dtype=model.dtype)                               # [H, H]
        targets = self.time_steps
        cot = None  # per layer, per state component: [R, n, H(cotangent), H]
        for k in self.delays:
            tk = [t for t in targets if t >= k]
            pos = tf.constant([t - k for t in tk], tf.int32)               # the step being pulled back
            n = len(tk)

            def rep(t):  # [R, n, ...] -> [R*n*H, ...]: one row per cotangent direction
                t = tf.repeat(t[:, :, None], size, axis=2)
                return tf.reshape(t, tf.concat([[-1], tf.shape(t)[3:]], 0))

            x_in = rep(tf.gather(x, pos, axis=1))
            prev = []
            for layer in range(self.layer + 1):
                seq = all_states[layer]
                full = tuple(tf.concat([s0[:, None], s[:, :-1]], 1) for s0, s in zip(state[layer], seq))
                prev.append(tuple(rep(tf.gather(s, pos, axis=1)) for s in full))
            with tf.GradientTape() as tape:
                tape.watch(x_in)
                tape.watch(prev)
                layer_in, outs = x_in, []
                for layer in range(self.layer + 1):
                    p = model.layers[layer]
                    new, _ = cell.step(p, cell.project_input(p, layer_in), prev[layer],
                                       cell.recurrent_weights(p, size))
                    outs.append(new)
                    layer_in = new[-1]
            if k == 0:
                seed = [[tf.zeros_like(s) for s in o] for o in outs]
                seed[self.layer][self.component] = tf.reshape(
                    tf.tile(eye[None, None], [rows, n, 1, 1]), [-1, size])
            else:
                # the cotangents of step t-k+1's previous states are those of step t-k's outputs;
                # targets are ascending, so the ones that no longer reach back (t = k-1) come first
                drop = cot[0][0].shape[1] - n
                seed = [[tf.reshape(c[:, drop:], [-1, size]) for c in layer_cot] for layer_cot in cot]
            flat_out = [s for o in outs for s in o]
            flat_seed = [s for o in seed for s in o]
            grads = tape.gradient(flat_out, [x_in] + [s for pr in prev for s in pr], output_gradients=flat_seed)
            g_x = tf.reshape(grads[0], [rows, n, size, -1])                 # [R, n, H, E]
            it = iter(grads[1:])
            cot = [[tf.reshape(next(it), [rows, n, size, size]) for _ in pr] for pr in prev]
            yield k, tf.transpose(g_x, [0, 1, 3, 2])                        # [R, n, E, H]

    # ---------------------------------------------------------------- traced entry points

    def _per_delay(self, inputs, state):
        rows = tf.shape(inputs)[0]
        x, aux, final = self._linearise(inputs, state)
        if self.mode == "forward":
            for k, tangent in self._forward_tangents(aux, rows):
                yield k, tf.gather(tangent, self._select[k], axis=1), final
        else:
            state = tuple(tuple(tf.cast(s, self.model.dtype) for s in layer) for layer in state)
            for k, g in self._reverse_cotangents(x, aux, state, inputs, rows):
                yield k, g, final

    def _jacobians_graph(self, inputs, state):
        out, final = [], None
        for _, g, final in self._per_delay(inputs, state):
            out.append(tf.transpose(g, [0, 1, 3, 2]))                      # [R, n_k, H, E]
        return out, final

    def _class_sums_graph(self, inputs, state, masks, gram_delays=()):
        # masks [C, R, T]: 1 where the word at that position counts for class c
        sums, moments, final = [], [], None
        for k, g, final in self._per_delay(inputs, state):
            src = tf.constant(self.targets[k] - k, tf.int32)
            w = tf.cast(tf.gather(masks, src, axis=2), g.dtype)           # [C, R, n_k]
            # one window's sum (at most R*T terms) in the engine's dtype, in g's own [E, H] layout: a
            # transposed or float64 copy of [D, C, H, E] in the graph cost more than the sum itself at
            # C 41 (the caller transposes while it casts; windows add up in float64)
            sums.append(tf.einsum("crn,rneh->ceh", w, g))
            if k in gram_delays:
                # G^T G of every occurrence [R, n_k, E, E], summed per class: E^2 H per occurrence, an
                # eighth of the tangents' cost per delay, hence only at a few delays
                gram = tf.matmul(g, g, transpose_b=True)                  # (a batched matmul: faster than einsum)
                moments.append(tf.einsum("crn,rnef->cef", w, gram))
        return sums, moments, final

    # ---------------------------------------------------------------- public API

    def jacobians(self, inputs, state):
        """{k: (t [n_k], G [R, n_k, H, E] numpy)} and the state after the window.

        state: the state entering the window (per layer, per component [R, H]), in the engine's
        dtype or in FORWARD_DTYPE (the gradient pass carries it in float64).

        G[r, i] = d s_t / d x_{t-k} for t = targets[k][i], window row r.
        """
        out, final = self._jacobians(tf.constant(inputs, tf.int32), state)
        return {k: (self.targets[k], g.numpy()) for k, g in zip(self.delays, out)}, final

    def class_sums(self, inputs, state, masks):
        """Per-delay, per-class sums of G over the window (float64 [D, C, H, E]), counts [D, C], final state.

        masks [C, R, T] (bool or 0/1): which source words count for which class.
        """
        sums, _, counts, final = self.class_moments(inputs, state, masks)
        return sums, counts, final

    def class_moments(self, inputs, state, masks, gram_delays=(), stacked=True):
        """class_sums and, at the delays gram_delays, the per-class sums of G^T G.

        (sums [D, C, H, E] float64, grams [len(gram_delays), C, E, E] float64 (None when gram_delays
        is empty), counts [D, C], final state). For any E x E matrix M, trace(M^T grams M) is the
        sum over the class's occurrences of ||G M||_F^2, so the magnitude of G.D can be computed
        after the pass for any normalisation D. stacked=False gives the sums as a list of D
        [C, H, E] views in the engine's dtype instead (what an accumulator adds into float64
        without a [D, C, H, E] copy per window, which at 41 classes is 275 MB).
        """
        gram_delays = tuple(sorted({int(k) for k in gram_delays}))   # in the order the delays are computed
        if any(k not in self.delays for k in gram_delays):
            raise ValueError(f"gram delays {gram_delays} must be among the delays 0..{self.delays[-1]}")
        masks = np.asarray(masks, dtype=np.float64)
        parts, moments, final = self._class_sums(tf.constant(inputs, tf.int32), state, tf.constant(masks),
                                                 gram_delays)
        sums = [np.swapaxes(part.numpy(), 1, 2) for part in parts]           # [C, E, H] -> [C, H, E] views
        if stacked:
            sums = np.array(sums, np.float64)                                # exact: float32 -> float64
        grams = np.stack([m.numpy() for m in moments]).astype(np.float64) if moments else None
        counts = np.stack([masks[:, :, self.targets[k] - k].sum(axis=(1, 2)) for k in self.delays])
        return sums, grams, counts.astype(np.int64), final


def state_gradients(model, inputs, state, *, layer, component, time_steps, max_delay, mode="auto"):
    """Pure function form: {k: (t [n_k], G [R, n_k, H, E])} for one batch of windows."""
    engine = StateGradients(model, layer=layer, component=component, time_steps=time_steps,
                            max_delay=max_delay, num_steps=np.shape(inputs)[1], mode=mode)
    return engine.jacobians(inputs, state)[0]


def component_for(cell_type, grad_interm):
    return cells.state_index(cell_type, grad_interm)
