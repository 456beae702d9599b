"""Plain-numpy float64 LSTM/GRU/RNN language model with hand-written backpropagation through time."""
# Shape letters: B rows (windows), T time steps, E embedding, H state, V vocabulary, I input size
# of a layer (E for layer 0, H above), P pre-activation size, M cotangent directions per row
# (1 for the loss, H for state gradients), D delays, L layers.
#
# Built from the arrays of weights.npz (docs/spec.md §4) and written from its formulas alone, so
# that it can check the TensorFlow model and the state-gradient engine independently:
#
#   forward:  x_t --layer 0--> s^0_t --layer 1--> ... s^{L-1}_t --softmax--> loss
#             every step keeps the activations its backward step needs (a "cache")
#   backward: one reverse sweep t = T-1 .. 0, top layer first at each t, so that a layer's
#             input cotangent (from the layer above, same t) and its state cotangent (from
#             t+1, same layer) are both complete before its own backward step runs.
#
# Cotangents carry M directions per row ([B, M, H]); cached activations are [B, H] and are
# broadcast over M. With M = H and the identity as the seed at s_t, one sweep gives the whole
# Jacobian d s_t / d x_j for every earlier j (reverse mode, one pass per target step).
#
# The state entering a window is a constant (truncated BPTT), as in training and in docs/spec.md §6.
import numpy as np

from state_gradients.core.errors import UserError

# per cell: parameter name -> its columns in multiples of H (kernels have I + H rows, biases none)
CELL_PARAMS = {"LSTM": {"kernel": 4, "bias": 4}, "RNN": {"kernel": 1, "bias": 1},
               "GRU": {"gate_kernel": 2, "gate_bias": 2, "cand_kernel": 1, "cand_bias": 1},
               "GRU_RESET_AFTER": {"gate_kernel": 2, "gate_bias": 2, "cand_kernel": 1, "cand_bias": 1,
                                   "cand_recurrent_bias": 1}}
STATE_NAMES = {"LSTM": ("c", "h"), "GRU": ("h",), "RNN": ("h",), "GRU_RESET_AFTER": ("h",)}


def sigmoid(z):
    # the tanh form never overflows (np.exp(-z) does for z < -709)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _b(a):
    """Broadcast a cached [B, H] activation over the M cotangent directions."""
    return a[:, None, :]


def _pre_activation_backward(grads, kernel, bias, inputs, d_pre, w):
    """Add d loss / d (kernel, bias) of `pre = inputs @ w + b` to grads; return d inputs [B, M, K].

    inputs [B, K] (cached, shared by the M directions), d_pre [B, M, P]. grads None: the
    weight gradients are not wanted (state gradients), which skips their cost entirely.
    """
    if grads is not None:
        d_rows = d_pre.sum(axis=1)  # the M directions share their row's inputs
        grads[kernel] += inputs.T @ d_rows
        grads[bias] += d_rows.sum(axis=0)
    # one 2-D product instead of B batched ones
    return (d_pre.reshape(-1, d_pre.shape[-1]) @ w.T).reshape(d_pre.shape[:-1] + (w.shape[0],))


# ------------------------------------------------------------------------------------ cells
# step(p, x [B, I], state) -> (new state tuple of [B, H], cache)
# backward(p, prefix, cache, d_new (list of [B, M, H]), grads) -> (dx [B, M, I], d_prev state list)
#   grads: dict of weights.npz name -> gradient to add to (None: no weight gradients needed)

class LSTMCell:
    """BasicLSTMCell: z = [x, h] @ kernel + bias, gates i, j, f, o; forget_bias added to f."""

    def __init__(self, forget_bias):
        self.forget_bias = forget_bias

    def step(self, p, x, state):
        c, h = state
        xh = np.concatenate([x, h], axis=-1)
        i, j, f, o = np.split(xh @ p["kernel"] + p["bias"], 4, axis=-1)
        si, tj, sf, so = sigmoid(i), np.tanh(j), sigmoid(f + self.forget_bias), sigmoid(o)
        new_c = c * sf + si * tj
        tc = np.tanh(new_c)
        return (new_c, tc * so), (xh, c, si, tj, sf, so, tc)

    def backward(self, p, prefix, cache, d_new, grads):
        xh, c, si, tj, sf, so, tc = (_b(a) for a in cache)
        dc_out, dh_out = d_new
        # c_t reaches the loss directly and through h_t = tanh(c_t) * o
        dc = dc_out + dh_out * so * (1 - tc * tc)
        d_pre = np.concatenate([dc * tj * si * (1 - si),        # i
                                dc * si * (1 - tj * tj),        # j
                                dc * c * sf * (1 - sf),         # f (forget_bias is a constant shift)
                                dh_out * tc * so * (1 - so)],   # o
                               axis=-1)
        d_xh = _pre_activation_backward(grads, prefix + "kernel", prefix + "bias", xh[:, 0], d_pre, p["kernel"])
        n_in = d_xh.shape[-1] - dc.shape[-1]
        return d_xh[..., :n_in], [dc * sf, d_xh[..., n_in:]]


class GRUCell:
    """GRUCell: r, u = sigmoid([x, h] @ gate_kernel + gate_bias) (r first); cand from [x, r * h]."""

    def __init__(self, forget_bias=0.0):
        del forget_bias  # no forget bias in a GRU

    @staticmethod
    def step(p, x, state):
        (h,) = state
        xh = np.concatenate([x, h], axis=-1)
        r, u = np.split(sigmoid(xh @ p["gate_kernel"] + p["gate_bias"]), 2, axis=-1)
        xrh = np.concatenate([x, r * h], axis=-1)
        cand = np.tanh(xrh @ p["cand_kernel"] + p["cand_bias"])
        return (u * h + (1 - u) * cand,), (xh, xrh, h, r, u, cand)

    @staticmethod
    def backward(p, prefix, cache, d_new, grads):
        xh, xrh, h, r, u, cand = (_b(a) for a in cache)
        (dh_out,) = d_new
        n_in = xh.shape[-1] - h.shape[-1]
        # h_t = u * h + (1 - u) * cand: three paths back to h_{t-1} (direct, via cand, via the gates)
        dh_prev = dh_out * u
        d_cand_pre = dh_out * (1 - u) * (1 - cand * cand)
        d_xrh = _pre_activation_backward(grads, prefix + "cand_kernel", prefix + "cand_bias", xrh[:, 0],
                                         d_cand_pre, p["cand_kernel"])
        d_rh = d_xrh[..., n_in:]
        dh_prev = dh_prev + d_rh * r
        d_gate_pre = np.concatenate([d_rh * h * r * (1 - r),
                                     dh_out * (h - cand) * u * (1 - u)], axis=-1)
        d_xh = _pre_activation_backward(grads, prefix + "gate_kernel", prefix + "gate_bias", xh[:, 0],
                                        d_gate_pre, p["gate_kernel"])
        return d_xrh[..., :n_in] + d_xh[..., :n_in], [dh_prev + d_xh[..., n_in:]]


class GRUResetAfterCell:
    """GRU, reset gate after the recurrent matmul: cand = tanh(x @ C_x + cand_bias + r * (h @ C_h + cand_recurrent_bias))."""

    def __init__(self, forget_bias=0.0):
        del forget_bias

    @staticmethod
    def step(p, x, state):
        (h,) = state
        n_in = x.shape[-1]
        xh = np.concatenate([x, h], axis=-1)
        r, u = np.split(sigmoid(xh @ p["gate_kernel"] + p["gate_bias"]), 2, axis=-1)
        hc = h @ p["cand_kernel"][n_in:] + p["cand_recurrent_bias"]
        cand = np.tanh(x @ p["cand_kernel"][:n_in] + p["cand_bias"] + r * hc)
        return (u * h + (1 - u) * cand,), (xh, h, r, u, cand, hc)

    @staticmethod
    def backward(p, prefix, cache, d_new, grads):
        xh, h, r, u, cand, hc = (_b(a) for a in cache)
        (dh_out,) = d_new
        n_in = xh.shape[-1] - h.shape[-1]
        d_cand_pre = dh_out * (1 - u) * (1 - cand * cand)
        # the input rows of cand_kernel see d_cand_pre, its recurrent rows and bias see r * d_cand_pre
        d_hc = d_cand_pre * r
        kernel = p["cand_kernel"]
        if grads is not None:
            grads[prefix + "cand_kernel"][:n_in] += xh[:, 0, :n_in].T @ d_cand_pre.sum(axis=1)
            grads[prefix + "cand_kernel"][n_in:] += h[:, 0].T @ d_hc.sum(axis=1)
            grads[prefix + "cand_bias"] += d_cand_pre.sum(axis=(0, 1))
            grads[prefix + "cand_recurrent_bias"] += d_hc.sum(axis=(0, 1))
        dx = d_cand_pre @ kernel[:n_in].T
        dh_prev = dh_out * u + d_hc @ kernel[n_in:].T
        d_gate_pre = np.concatenate([d_cand_pre * hc * r * (1 - r),
                                     dh_out * (h - cand) * u * (1 - u)], axis=-1)
        d_xh = _pre_activation_backward(grads, prefix + "gate_kernel", prefix + "gate_bias", xh[:, 0],
                                        d_gate_pre, p["gate_kernel"])
        return dx + d_xh[..., :n_in], [dh_prev + d_xh[..., n_in:]]


class RNNCell:
    """BasicRNNCell: h = tanh([x, h] @ kernel + bias)."""

    def __init__(self, forget_bias=0.0):
        del forget_bias

    @staticmethod
    def step(p, x, state):
        (h,) = state
        xh = np.concatenate([x, h], axis=-1)
        new_h = np.tanh(xh @ p["kernel"] + p["bias"])
        return (new_h,), (xh, new_h)

    @staticmethod
    def backward(p, prefix, cache, d_new, grads):
        xh, new_h = (_b(a) for a in cache)
        d_pre = d_new[0] * (1 - new_h * new_h)
        d_xh = _pre_activation_backward(grads, prefix + "kernel", prefix + "bias", xh[:, 0], d_pre, p["kernel"])
        n_in = d_xh.shape[-1] - new_h.shape[-1]
        return d_xh[..., :n_in], [d_xh[..., n_in:]]


CELLS = {"LSTM": LSTMCell, "GRU": GRUCell, "RNN": RNNCell, "GRU_RESET_AFTER": GRUResetAfterCell}


# ------------------------------------------------------------------------------------ model

class Trace:
    """A forward pass over a window: the inputs, every layer's states and the backward caches.

    x [B, T, E]; states[l][c] [B, T, H] (component c of layer l's state after step t);
    caches[l][t] the activations of layer l's step t; entering: the state before step 0.
    """

    def __init__(self, x, states, caches, entering):
        self.x, self.states, self.caches, self.entering = x, states, caches, entering

    def final_state(self):
        """The state after the window (the entering state of the next one): per layer, tuple of [B, H]."""
        return [tuple(s[:, -1] for s in layer) for layer in self.states]

    def state_before(self, t):
        """The state entering step t: per layer, tuple of [B, H]."""
        if t == 0:
            return self.entering
        return [tuple(s[:, t - 1] for s in layer) for layer in self.states]


class NumpyRNN:
    """float64 numpy twin of state_gradients.models.lm.LanguageModel, built from a weights.npz dict.

    A state is a list over layers of tuples of [B, H] arrays (LSTM (c, h), GRU and RNN (h,)),
    like LanguageModel's nested tuples.
    """

    def __init__(self, weights, source="weights"):
        def get(name):
            if name not in weights:
                raise UserError(f"{source}: no array {name!r}")
            return np.asarray(weights[name])

        self.cell_type = str(get("cell_type"))
        if self.cell_type not in CELLS:
            raise UserError(f"{source}: cell_type must be one of {', '.join(CELLS)}, got {self.cell_type!r}")
        self.num_layers = int(get("num_layers"))
        self.forget_bias = float(get("forget_bias"))
        self.cell = CELLS[self.cell_type](self.forget_bias)
        self.state_names = STATE_NAMES[self.cell_type]
        params = CELL_PARAMS[self.cell_type]
        # weights.npz name -> float64 array, in the file's order (embedding, layers, softmax)
        # an import with --no-head has no output layer: states and state gradients only
        self.has_output_layer = "softmax_w" in weights
        names = (["embedding"] + [f"layer{layer}/{n}" for layer in range(self.num_layers) for n in params]
                 + (["softmax_w", "softmax_b"] if self.has_output_layer else []))
        self.weights = {name: get(name).astype(np.float64, copy=False) for name in names}
        self.vocab_size, self.embedding_size = self.weights["embedding"].shape
        first_kernel = next(n for n in params if n.endswith("kernel"))
        self.size = self.weights[f"layer0/{first_kernel}"].shape[0] - self.embedding_size
        size = self.size
        expected = {}
        if self.has_output_layer:
            expected = {"softmax_w": (size, self.vocab_size), "softmax_b": (self.vocab_size,)}
        for layer in range(self.num_layers):
            rows = (self.embedding_size if layer == 0 else size) + size
            expected.update({f"layer{layer}/{n}": ((rows, k * size) if n.endswith("kernel") else (k * size,))
                             for n, k in params.items()})
        for name, shape in expected.items():
            if self.weights[name].shape != shape:
                raise UserError(f"{source}: {name} has shape {self.weights[name].shape}, expected {shape} "
                                f"({self.num_layers}-layer {self.cell_type}, E {self.embedding_size}, H {size}, "
                                f"V {self.vocab_size})")
        self.layers = [{n: self.weights[f"layer{layer}/{n}"] for n in params} for layer in range(self.num_layers)]

    @classmethod
    def from_npz(cls, path):
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read weights file {path}: {err}") from None
        return cls(arrays, source=str(path))

    def arrays(self):
        """A weights.npz-style dict (float64 weights plus the cell description)."""
        out = {"cell_type": np.array(self.cell_type), "forget_bias": np.float64(self.forget_bias),
               "num_layers": np.int64(self.num_layers)}
        out.update(self.weights)
        return out

    def perturbed(self, name, index, delta):
        """A copy whose weight `name` has `delta` added at `index` (the other arrays are shared)."""
        arrays = self.arrays()
        arrays[name] = arrays[name].copy()
        arrays[name][index] += delta
        return NumpyRNN(arrays)

    # ---------------------------------------------------------------- forward

    def zero_state(self, rows):
        return [tuple(np.zeros((rows, self.size)) for _ in self.state_names) for _ in range(self.num_layers)]

    def embed(self, inputs):
        """ids [B, T] -> x [B, T, E]."""
        return self.weights["embedding"][np.asarray(inputs)]

    def forward(self, x, state, num_layers=None):
        """Run layers 0 .. num_layers-1 (default all) over x [B, T, E] from `state`: a Trace."""
        num_layers = self.num_layers if num_layers is None else num_layers
        steps = x.shape[1]
        states, caches = [], []
        layer_in = x
        for layer in range(num_layers):
            p, s = self.layers[layer], tuple(state[layer])
            seq, layer_caches = [], []
            for t in range(steps):
                s, cache = self.cell.step(p, layer_in[:, t], s)
                seq.append(s)
                layer_caches.append(cache)
            states.append(tuple(np.stack([s_t[c] for s_t in seq], axis=1) for c in range(len(self.state_names))))
            caches.append(layer_caches)
            layer_in = states[-1][-1]  # the next layer reads this layer's h
        return Trace(x, states, caches, [tuple(s) for s in state[:num_layers]])

    def run_state(self, inputs, state):
        """The state after feeding ids [B, T] from `state`, without keeping activations."""
        x = self.embed(inputs)
        state = [tuple(s) for s in state]
        for t in range(x.shape[1]):
            layer_in = x[:, t]
            for layer in range(self.num_layers):
                state[layer], _ = self.cell.step(self.layers[layer], layer_in, state[layer])
                layer_in = state[layer][-1]
        return state

    def _softmax(self, trace, targets):
        """(token cross entropies [B, T], d loss / d logits [B, T, V]) for loss = their sum / B (docs/spec.md §4)."""
        rows = trace.x.shape[0]
        if not self.has_output_layer:
            raise UserError("the model has no output layer (imported with --no-head): it has no loss")
        logits = trace.states[-1][-1] @ self.weights["softmax_w"] + self.weights["softmax_b"]
        shifted = logits - logits.max(axis=-1, keepdims=True)       # exp cannot overflow
        log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        targets = np.asarray(targets)[..., None]
        d_logits = np.exp(log_p)                                    # softmax - one-hot(target)
        np.put_along_axis(d_logits, targets, np.take_along_axis(d_logits, targets, axis=-1) - 1.0, axis=-1)
        return -np.take_along_axis(log_p, targets, axis=-1)[..., 0], d_logits / rows

    def token_losses(self, inputs, targets, state):
        """Cross entropy of every token [B, T] of ids inputs, targets [B, T] from `state`."""
        return self._softmax(self.forward(self.embed(inputs), state), targets)[0]

    def loss(self, inputs, targets, state):
        """Window loss: sum of the token cross entropies / B (the training loss of docs/spec.md §4)."""
        return self.token_losses(inputs, targets, state).sum() / np.shape(inputs)[0]

    # ---------------------------------------------------------------- backward

    def _sweep(self, trace, seeds, t_last, t_first, top_layer, grads=None):
        """Backpropagate from step t_last down to t_first through layers 0 .. top_layer.

        seeds: {t: {(layer, component): [B, M, H]}}, cotangents entering at the state of step t
        (they add to what flows back from later steps and higher layers). Returns {t: dx [B, M, E]}
        for t = t_last .. t_first; adds the layer weight gradients to `grads` when given.
        The cotangent leaving step t_first's previous state is dropped: the entering state is constant.
        """
        carry = [None] * (top_layer + 1)     # per layer: cotangent of the state leaving step t
        dxs = {}
        for t in range(t_last, t_first - 1, -1):
            step_seeds = seeds.get(t, {})
            from_above = None
            for layer in range(top_layer, -1, -1):
                d = [step_seeds.get((layer, c)) for c in range(len(self.state_names))]
                if carry[layer] is not None:
                    d = [cr if s is None else s + cr for s, cr in zip(d, carry[layer])]
                if from_above is not None:  # the layer above read this layer's h at step t
                    d[-1] = from_above if d[-1] is None else d[-1] + from_above
                if all(s is None for s in d):
                    from_above = None       # nothing reaches this layer at step t yet
                    continue
                shape = next(s.shape for s in d if s is not None)
                d = [np.zeros(shape) if s is None else s for s in d]
                from_above, carry[layer] = self.cell.backward(self.layers[layer], f"layer{layer}/",
                                                               trace.caches[layer][t], d, grads)
            dxs[t] = from_above
        return dxs

    def loss_and_gradients(self, inputs, targets, state):
        """(loss, {weights.npz name: d loss / d weight}) for ids inputs, targets [B, T] from `state`.

        The embedding gradient has rows only for the ids of the window (zeros elsewhere),
        summed where an id occurs several times.
        """
        inputs = np.asarray(inputs)
        trace = self.forward(self.embed(inputs), state)
        token_losses, d_logits = self._softmax(trace, targets)
        loss = token_losses.sum() / inputs.shape[0]
        top_h = trace.states[-1][-1]
        grads = {name: np.zeros_like(w) for name, w in self.weights.items()}
        grads["softmax_w"] = np.einsum("bth,btv->hv", top_h, d_logits)
        grads["softmax_b"] = d_logits.sum(axis=(0, 1))
        d_top = d_logits @ self.weights["softmax_w"].T                        # [B, T, H]
        top, last = self.num_layers - 1, len(self.state_names) - 1
        seeds = {t: {(top, last): d_top[:, t, None, :]} for t in range(inputs.shape[1])}
        dxs = self._sweep(trace, seeds, inputs.shape[1] - 1, 0, top, grads)
        for t, dx in dxs.items():
            np.add.at(grads["embedding"], inputs[:, t], dx[:, 0])
        return loss, grads

    def state_gradients(self, x, state, layer, component, t, max_delay):
        """{k: G [B, H, E]}, G = d s_t / d x_{t-k} for k = 0 .. min(max_delay-1, t) (docs/spec.md §6).

        x [B, T, E] window embeddings; s_t = component `component` (LSTM 0 = c, 1 = h) of layer
        `layer` after step t. One reverse sweep with the H x H identity as the seed at s_t.
        """
        trace = self.forward(x[:, :t + 1], state, num_layers=layer + 1)
        rows = x.shape[0]
        seed = np.broadcast_to(np.eye(self.size), (rows, self.size, self.size))
        first = max(0, t - max_delay + 1)
        dxs = self._sweep(trace, {t: {(layer, component): seed}}, t, first, layer)
        return {t - j: dx for j, dx in dxs.items()}


# ------------------------------------------------------------------------------------ finite differences

def finite_difference_state_gradients(net, x, state, layer, component, t, max_delay, eps=1e-6):
    """{k: G [B, H, E]} like NumpyRNN.state_gradients, by central differences in x_{t-k}.

    For source j the window is rerun from the state entering j (states before j do not depend
    on x_j), with all 2 E perturbed copies of every row as one batch.
    """
    rows, _, emb = x.shape
    trace = net.forward(x[:, :t + 1], state, num_layers=layer + 1)
    out = {}
    for k in range(min(max_delay - 1, t) + 1):
        j = t - k
        xs = np.repeat(x[:, None, j:t + 1], 2 * emb, axis=1)            # [B, 2E, k+1, E]
        steps = np.arange(emb)
        xs[:, steps, 0, steps] += eps
        xs[:, emb + steps, 0, steps] -= eps
        start = [tuple(np.repeat(s, 2 * emb, axis=0) for s in layer_state)
                 for layer_state in trace.state_before(j)]
        run = net.forward(xs.reshape(rows * 2 * emb, k + 1, emb), start, num_layers=layer + 1)
        s_t = run.states[layer][component][:, -1].reshape(rows, 2, emb, -1)     # [B, 2, E, H]
        out[k] = np.transpose((s_t[:, 0] - s_t[:, 1]) / (2 * eps), (0, 2, 1))
    return out


def finite_difference_weight(net, name, index, inputs, targets, state, eps=1e-3):
    """d loss / d weight[index] by the fourth-order central difference (five-point stencil).

    (-L(w+2e) + 8 L(w+e) - 8 L(w-e) + L(w-2e)) / 12e: its truncation error is O(e^4), so e can
    be large enough that the rounding of the loss (about ulp(loss) / e) stays small too; the
    two-point difference needs e ~ 1e-5 and then loses ~1e-8 to rounding on a 200-token window.
    """
    def loss(delta):
        return net.perturbed(name, index, delta).loss(inputs, targets, state)
    return (-loss(2 * eps) + 8 * loss(eps) - 8 * loss(-eps) + loss(-2 * eps)) / (12 * eps)
