"""Each source framework's documented RNN equations in float64 numpy, on the source's own unconverted arrays."""
# Shape letters: B rows, T time, I input size, H state size, V vocabulary.
#
# The import self-check runs these against this project's forward pass on the converted file.
# They are written from each framework's documentation, in its own layout and gate order, and
# share no code with the conversion (model_import), so a wrong gate order, a missing transpose
# or a dropped bias shows up as a difference:
#
#   torch  nn.LSTM / nn.GRU / nn.RNN   gates = x W_ih^T + b_ih + h W_hh^T + b_hh, rows (i,f,g,o) / (r,z,n)
#   keras  LSTM / GRU / SimpleRNN      z = x K + h R + b, columns (i,f,c,o) / (z,r,h)
#   cudnn  Keras 2 CuDNNLSTM/CuDNNGRU  each gate's block flattened row-major is cuDNN's [H, I] matrix W:
#                                      gate = W x + b_W + R h + b_R (bias = [b_W | b_R])
#   tf1    BasicLSTMCell / GRUCell / BasicRNNCell   [x, h] @ kernel + bias, columns (i,j,f,o) / (r,u)
import numpy as np


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------------- one step
# step(arrays, x [B, I], state) -> new state: LSTM (c, h), the others (h,)

def torch_step(kind, a, x, state, nonlinearity="tanh"):
    w_ih, w_hh = _f64(a["weight_ih"]), _f64(a["weight_hh"])
    b_ih = _f64(a.get("bias_ih", np.zeros(w_ih.shape[0])))
    b_hh = _f64(a.get("bias_hh", np.zeros(w_hh.shape[0])))
    h = state[-1]
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if kind == "LSTM":
        c = state[0]
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return (c, sigmoid(o) * np.tanh(c))
    if kind == "GRU":
        i_r, i_z, i_n = np.split(gi, 3, axis=-1)
        h_r, h_z, h_n = np.split(gh, 3, axis=-1)
        r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return ((1 - z) * n + z * h,)
    act = np.tanh if nonlinearity == "tanh" else (lambda v: np.maximum(v, 0))
    return (act(gi + gh),)


def keras_step(kind, a, x, state, reset_after=True):
    k, r = _f64(a["kernel"]), _f64(a["recurrent_kernel"])
    bias = _f64(a["bias"]) if "bias" in a else None
    h = state[-1]
    if kind == "LSTM":
        c = state[0]
        z = x @ k + h @ r + (0 if bias is None else bias)
        i, f, cc, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
        return (c, sigmoid(o) * np.tanh(c))
    if kind == "GRU":
        size = r.shape[0]
        if reset_after:
            b_in, b_rec = (np.zeros(3 * size), np.zeros(3 * size)) if bias is None else (bias[0], bias[1])
            mx, mh = x @ k + b_in, h @ r + b_rec
            z, rr = sigmoid(mx[:, :size] + mh[:, :size]), sigmoid(mx[:, size:2 * size] + mh[:, size:2 * size])
            hh = np.tanh(mx[:, 2 * size:] + rr * mh[:, 2 * size:])
        else:
            b = np.zeros(3 * size) if bias is None else bias
            mx = x @ k + b
            z = sigmoid(mx[:, :size] + h @ r[:, :size])
            rr = sigmoid(mx[:, size:2 * size] + h @ r[:, size:2 * size])
            hh = np.tanh(mx[:, 2 * size:] + (rr * h) @ r[:, 2 * size:])
        return (z * h + (1 - z) * hh,)
    return (np.tanh(x @ k + (0 if bias is None else bias) + h @ r),)


def cudnn_step(kind, a, x, state):
    k, r, bias = _f64(a["kernel"]), _f64(a["recurrent_kernel"]), _f64(a["bias"])
    size = r.shape[0]
    n_gates = r.shape[1] // size
    # cuDNN's canonical matrices: each gate's column block, read in memory order, is [H, I]
    w = [blk.reshape(-1).reshape(size, -1) for blk in np.split(k, n_gates, axis=1)]
    rw = [blk.reshape(-1).reshape(size, size) for blk in np.split(r, n_gates, axis=1)]
    b_w, b_r = np.split(bias, 2)
    b_w, b_r = np.split(b_w, n_gates), np.split(b_r, n_gates)
    h = state[-1]

    def part(g):  # (input part, recurrent part) of gate g
        return x @ w[g].T + b_w[g], h @ rw[g].T + b_r[g]

    if kind == "LSTM":  # Keras order i, f, c, o
        c = state[0]
        i, f, cc, o = (sum(part(g)) for g in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
        return (c, sigmoid(o) * np.tanh(c))
    z, rr = sigmoid(sum(part(0))), sigmoid(sum(part(1)))   # Keras order z, r, h
    x_h, h_h = part(2)
    hh = np.tanh(x_h + rr * h_h)
    return (z * h + (1 - z) * hh,)


def tf1_step(kind, a, x, state, forget_bias=0.0):
    h = state[-1]
    if kind == "LSTM":
        c = state[0]
        z = np.concatenate([x, h], axis=-1) @ _f64(a["kernel"]) + _f64(a["bias"])
        i, j, f, o = np.split(z, 4, axis=-1)
        c = c * sigmoid(f + forget_bias) + sigmoid(i) * np.tanh(j)
        return (c, np.tanh(c) * sigmoid(o))
    if kind == "GRU":
        g = sigmoid(np.concatenate([x, h], axis=-1) @ _f64(a["gates/kernel"]) + _f64(a["gates/bias"]))
        r, u = np.split(g, 2, axis=-1)
        cand = np.tanh(np.concatenate([x, r * h], axis=-1) @ _f64(a["candidate/kernel"]) + _f64(a["candidate/bias"]))
        return (u * h + (1 - u) * cand,)
    return (np.tanh(np.concatenate([x, h], axis=-1) @ _f64(a["kernel"]) + _f64(a["bias"])),)


# ---------------------------------------------------------------------------------- a model

def run(source, ids, state):
    """The source model on ids [B, T] from `state` (per layer: LSTM (c, h), others (h,), each [B, H]).

    Returns (states: per layer, per component [B, T, H]; logits [B, T, V] or None without a head).
    """
    x_all = _f64(source.embedding)[np.asarray(ids)]
    per_layer = []
    for layer, spec in enumerate(source.layers):
        s = tuple(_f64(v) for v in state[layer])
        trace = []
        for t in range(x_all.shape[1]):
            s = _step(source, spec, x_all[:, t], s)
            trace.append(s)
        comps = tuple(np.stack([st[i] for st in trace], axis=1) for i in range(len(s)))
        per_layer.append(comps)
        x_all = comps[-1]
    logits = None
    if source.head is not None:
        w, b = _f64(source.head["weight"]), _f64(source.head["bias"])
        if source.framework == "torch":
            logits = x_all @ w.T + b          # nn.Linear: weight [V, H]
        else:
            logits = x_all @ w + b            # Keras Dense kernel / TF1 softmax_w: [H, V]
    return per_layer, logits


def _step(source, spec, x, state):
    if spec.layout == "torch":
        return torch_step(spec.kind, spec.arrays, x, state, spec.options.get("nonlinearity", "tanh"))
    if spec.layout == "keras":
        return keras_step(spec.kind, spec.arrays, x, state, spec.options.get("reset_after", True))
    if spec.layout == "cudnn":
        return cudnn_step(spec.kind, spec.arrays, x, state)
    return tf1_step(spec.kind, spec.arrays, x, state, source.forget_bias)
