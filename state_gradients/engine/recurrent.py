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
#
# Occurrence measures (class_moments with norm D and labels), per class and delay, summed over
# the occurrences: the per-occurrence nuclear norm ‖G·D‖_* = sum sqrt(eig(Dᵀ GᵀG D)) from each
# occurrence's E x E Gram matrix, on the occurrences whose source position in the window is a
# multiple of NUCLEAR_STRIDE (an eigendecomposition per occurrence at every delay would triple the
# pass; neighbouring positions are strongly correlated, so a quarter of them loses little), with
# their count; and the output-level Jacobian J = d log p(w_{t+1}) / d x_{t-k}
# = v_tᵀ d h_t / d x_{t-k} with v_t = d log p(w_{t+1}) / d h_t = W[:, w] - W p_t (h_t the top
# layer's output, W the softmax weights [H, V], p_t the softmax): the sums of J·D [E], of
# ‖J·D‖ and of ‖J·D‖². The output-level measure needs forward mode (the tangents of the top
# layer's h ride along with the chosen state's).
import numpy as np
import tensorflow as tf

from state_gradients.core import families


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

    def _linearise(self, inputs, state, layers=None, labels=None):
        """Run the window in FORWARD_DTYPE; return the input embeddings, the aux activations of the first
        `layers` layers (default: up to the chosen one), the final state, and with labels [R, T] the output
        vectors v [R, T, H] = d log p(label) / d h_top (else None), in the engine's dtype."""
        model = self.forward_model
        state = tuple(tuple(tf.cast(s, model.dtype) for s in layer) for layer in state)
        x = model.embed(inputs)
        all_states = model.run_layers(x, state)
        layer_in, aux = x, []
        for layer in range(self.layer + 1 if layers is None else layers):
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
        vectors = None
        if labels is not None:
            top = all_states[-1][-1]                                          # [R, T, H]
            probs = tf.nn.softmax(model.logits(top))                          # [R, T, V]
            w_t = tf.transpose(model.softmax_w)                               # [V, H]
            vectors = cast(tf.gather(w_t, labels) - tf.matmul(probs, w_t))    # W[:, w] - W p
        return (cast(x), [tuple(cast(a) for a in layer) for layer in aux],
                tuple(tuple(cast(s) for s in layer) for layer in model.final_state(all_states)), vectors)

    # ---------------------------------------------------------------- forward mode

    def _forward_tangents(self, aux, rows):
        """Yield (k, tangent of the chosen state [R, J_k, E, H], tangent of the last linearised layer's h) for every
        delay k (the layers of aux are propagated)."""
        model, cell = self.model, self.model.cell
        n_pos = self.last + 1 - self.first
        eye = tf.eye(model.embedding_size, dtype=model.dtype)[None]        # [1, E, E]
        tangents = None
        for k in self.delays:
            n_src = n_pos - k
            new = []
            for layer in range(len(aux)):
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
            yield k, _unflat(tangents[self.layer][self.component], rows), _unflat(tangents[-1][-1], rows)

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
            # a state component the step does not read (a read-out such as DiagLinear's y) gets a zero cotangent
            grads = tape.gradient(flat_out, [x_in] + [s for pr in prev for s in pr], output_gradients=flat_seed,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            g_x = tf.reshape(grads[0], [rows, n, size, -1])                 # [R, n, H, E]
            it = iter(grads[1:])
            cot = [[tf.reshape(next(it), [rows, n, size, size]) for _ in pr] for pr in prev]
            yield k, tf.transpose(g_x, [0, 1, 3, 2])                        # [R, n, E, H]

    # ---------------------------------------------------------------- traced entry points

    def _per_delay(self, inputs, state, labels=None):
        """Yield (k, G [R, n_k, E, H], the final state, and with labels the output-level J [R, n_k, E] else None)."""
        rows = tf.shape(inputs)[0]
        x, aux, final, vectors = self._linearise(
            inputs, state, layers=None if labels is None else self.model.num_layers, labels=labels)
        if self.mode == "forward":
            for k, tangent, top in self._forward_tangents(aux, rows):
                out = None
                if vectors is not None:
                    targets = tf.constant(self.targets[k], tf.int32)
                    v = tf.gather(vectors, targets, axis=1)                        # [R, n_k, H]
                    out = tf.einsum("rneh,rnh->rne", tf.gather(top, self._select[k], axis=1), v)
                yield k, tf.gather(tangent, self._select[k], axis=1), final, out
        else:
            if labels is not None:
                raise ValueError("the output-level measure needs forward mode (embedding_size <= size)")
            state = tuple(tuple(tf.cast(s, self.model.dtype) for s in layer) for layer in state)
            for k, g in self._reverse_cotangents(x, aux, state, inputs, rows):
                yield k, g, final, None

    def _jacobians_graph(self, inputs, state, labels=None):
        out, outputs, final = [], [], None
        for _, g, final, j in self._per_delay(inputs, state, labels):
            out.append(tf.transpose(g, [0, 1, 3, 2]))                      # [R, n_k, H, E]
            outputs.append(j)
        return out, final, outputs

    def _class_sums_graph(self, inputs, state, masks, gram_delays=(), norm=None, labels=None):
        # masks [C, R, T]: the weight (1 for a plain class, 0 outside it) of the word at that position in class c
        sums, moments, occurrence, final = [], [], [], None
        for k, g, final, j in self._per_delay(inputs, state, labels):
            src = tf.constant(self.targets[k] - k, tf.int32)
            w = tf.cast(tf.gather(masks, src, axis=2), g.dtype)           # [C, R, n_k]
            # one window's sum (at most R*T terms) in the engine's dtype, in g's own [E, H] layout: a
            # transposed or float64 copy of [D, C, H, E] in the graph cost more than the sum itself at
            # C 41 (the caller transposes while it casts; windows add up in float64)
            sums.append(tf.einsum("crn,rneh->ceh", w, g))
            gram = None
            if k in gram_delays or norm is not None:
                # G^T G of every occurrence [R, n_k, E, E], summed per class: E^2 H per occurrence, an
                # eighth of the tangents' cost per delay
                gram = tf.matmul(g, g, transpose_b=True)                  # (a batched matmul: faster than einsum)
            if k in gram_delays:
                moments.append(tf.einsum("crn,rnef->cef", w, gram))
            if norm is not None:
                sampled = np.nonzero((self.targets[k] - k) % NUCLEAR_STRIDE == 0)[0]
                occurrence.append(occurrence_sums(w, gram, norm, j, tf.constant(sampled, tf.int32)))
        return sums, moments, occurrence, final

    # ---------------------------------------------------------------- public API

    def jacobians(self, inputs, state):
        """{k: (t [n_k], G [R, n_k, H, E] numpy)} and the state after the window.

        state: the state entering the window (per layer, per component [R, H]), in the engine's
        dtype or in FORWARD_DTYPE (the gradient pass carries it in float64).

        G[r, i] = d s_t / d x_{t-k} for t = targets[k][i], window row r.
        """
        out, final, _ = self._jacobians(tf.constant(inputs, tf.int32), state)
        return {k: (self.targets[k], g.numpy()) for k, g in zip(self.delays, out)}, final

    def output_jacobians(self, inputs, state, labels):
        """{k: (t [n_k], J [R, n_k, E] numpy)}: J[r, i] = d log p(labels[r, t]) / d x_{t-k}, t = targets[k][i].

        labels [R, T]: the word predicted at every position (the next word). Needs forward mode.
        """
        _, _, outputs = self._jacobians(tf.constant(inputs, tf.int32), state, tf.constant(labels, tf.int32))
        return {k: (self.targets[k], j.numpy()) for k, j in zip(self.delays, outputs)}

    def class_sums(self, inputs, state, masks):
        """Per-delay, per-class sums of G over the window (float64 [D, C, H, E]), counts [D, C], final state.

        masks [C, R, T] (bool or 0/1): which source words count for which class.
        """
        sums, _, counts, final, _ = self.class_moments(inputs, state, masks)
        return sums, counts, final

    def class_moments(self, inputs, state, masks, gram_delays=(), stacked=True, norm=None, labels=None):
        """class_sums and, at the delays gram_delays, the per-class sums of G^T G; with norm, the occurrence measures.

        (sums [D, C, H, E] float64, grams [len(gram_delays), C, E, E] float64 (None when gram_delays
        is empty), counts [D, C], final state, occurrence [D, C, OCCURRENCE_SCALARS + E] float64 (None
        without norm)). For any E x E matrix M, trace(M^T grams M) is the sum over the class's
        occurrences of ||G M||_F^2, so the magnitude of G.D can be computed after the pass for any
        normalisation D. norm D [E, E]: occurrence_sums at every delay; labels [R, T] add the
        output-level Jacobian's (the module comment). stacked=False gives the sums as a list of D
        [C, H, E] views in the engine's dtype instead (what an accumulator adds into float64
        without a [D, C, H, E] copy per window, which at 41 classes is 275 MB).
        """
        gram_delays = tuple(sorted({int(k) for k in gram_delays}))   # in the order the delays are computed
        if any(k not in self.delays for k in gram_delays):
            raise ValueError(f"gram delays {gram_delays} must be among the delays 0..{self.delays[-1]}")
        masks = np.asarray(masks, dtype=np.float64)
        extra = {}
        if norm is not None:
            extra["norm"] = tf.constant(np.asarray(norm), self.model.dtype)
            if labels is not None:
                extra["labels"] = tf.constant(labels, tf.int32)
        parts, moments, occurrence, final = self._class_sums(tf.constant(inputs, tf.int32), state, tf.constant(masks),
                                                             gram_delays, **extra)
        sums = [np.swapaxes(part.numpy(), 1, 2) for part in parts]           # [C, E, H] -> [C, H, E] views
        if stacked:
            sums = np.array(sums, np.float64)                                # exact: float32 -> float64
        grams = np.stack([m.numpy() for m in moments]).astype(np.float64) if moments else None
        counts = np.stack([masks[:, :, self.targets[k] - k].sum(axis=(1, 2)) for k in self.delays])
        occurrence = np.stack([o.numpy() for o in occurrence]).astype(np.float64) if occurrence else None
        return sums, grams, counts, final, occurrence


OCCURRENCE_SCALARS = 4   # sum ‖G·D‖_* and its count (sampled occurrences), sum ‖J·D‖, sum ‖J·D‖²
NUCLEAR_STRIDE = 4       # the per-occurrence nuclear norm on source positions j with j % NUCLEAR_STRIDE == 0


def occurrence_sums(w, gram, norm, j=None, sampled=None):
    """Per-class sums over occurrences of the occurrence measures at one delay (module comment).

    w [C, R, n] class weights, gram [R, n, E, E] each occurrence's GᵀG, norm D [E, E], j [R, n, E]
    the output-level Jacobians (or None), sampled [n_s] the indices along n of the occurrences
    whose nuclear norm is taken (None: all) -> [C, OCCURRENCE_SCALARS + E]: sum ‖G·D‖_* over the
    sampled occurrences, their count, sum ‖J·D‖, sum ‖J·D‖² over all, then sum J·D (zeros without j).
    """
    w_s = w if sampled is None else tf.gather(w, sampled, axis=2)
    gram_s = gram if sampled is None else tf.gather(gram, sampled, axis=1)
    scaled = tf.matmul(tf.matmul(norm, gram_s, transpose_a=True), norm)   # Dᵀ GᵀG D
    eig = tf.linalg.eigvalsh(scaled)                                       # [R, n_s, E]
    nuclear = tf.reduce_sum(tf.sqrt(tf.maximum(eig, 0.0)), -1)             # rounding may leave eig < 0
    parts = [tf.einsum("crn,rn->c", w_s, nuclear), tf.reduce_sum(w_s, [1, 2])]
    if j is None:
        zeros = tf.zeros_like(parts[0])
        parts += [zeros, zeros]
        vector = tf.zeros([tf.shape(w)[0], tf.shape(norm)[0]], w.dtype)
    else:
        jd = tf.matmul(j, norm)                                            # J·D [R, n, E]
        square = tf.reduce_sum(jd * jd, -1)
        parts += [tf.einsum("crn,rn->c", w, tf.sqrt(square)), tf.einsum("crn,rn->c", w, square)]
        vector = tf.einsum("crn,rne->ce", w, jd)
    return tf.concat([tf.stack(parts, 1), vector], 1)


def state_gradients(model, inputs, state, *, layer, component, time_steps, max_delay, mode="auto"):
    """Pure function form: {k: (t [n_k], G [R, n_k, H, E])} for one batch of windows."""
    engine = StateGradients(model, layer=layer, component=component, time_steps=time_steps,
                            max_delay=max_delay, num_steps=np.shape(inputs)[1], mode=mode)
    return engine.jacobians(inputs, state)[0]


def component_for(cell_type, grad_interm):
    return families.family(cell_type).state_index(grad_interm)
