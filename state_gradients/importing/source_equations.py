"""Each source framework's documented RNN equations in float64 numpy, on the source's own unconverted arrays."""
# Shape letters: B rows, T time, I input size, H state size, V vocabulary.
#
# The import self-check runs these against this project's forward pass on the converted file.
# They are written from each framework's documentation, in its own layout and gate order, and
# share no code with the conversions (layouts.py), so a wrong gate order, a missing transpose
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
# Each is a layout's step (importing/layouts.py registers it): (arrays, x [B, I], state, options) -> new state,
# the state LSTM (c, h), the others (h,).

def _torch_parts(a, x, h):
    """nn.RNNBase's two affine maps: (x W_ih^T + b_ih, h W_hh^T + b_hh), rows in the module's gate order."""
    w_ih, w_hh = _f64(a["weight_ih"]), _f64(a["weight_hh"])
    b_ih = _f64(a.get("bias_ih", np.zeros(w_ih.shape[0])))
    b_hh = _f64(a.get("bias_hh", np.zeros(w_hh.shape[0])))
    return x @ w_ih.T + b_ih, h @ w_hh.T + b_hh


def torch_lstm(a, x, state, options):
    gi, gh = _torch_parts(a, x, state[-1])
    i, f, g, o = np.split(gi + gh, 4, axis=-1)
    c = sigmoid(f) * state[0] + sigmoid(i) * np.tanh(g)
    return (c, sigmoid(o) * np.tanh(c))


def torch_gru(a, x, state, options):
    h = state[-1]
    gi, gh = _torch_parts(a, x, h)
    i_r, i_z, i_n = np.split(gi, 3, axis=-1)
    h_r, h_z, h_n = np.split(gh, 3, axis=-1)
    r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return ((1 - z) * n + z * h,)


def torch_rnn(a, x, state, options):
    gi, gh = _torch_parts(a, x, state[-1])
    act = np.tanh if options.get("nonlinearity", "tanh") == "tanh" else (lambda v: np.maximum(v, 0))
    return (act(gi + gh),)


def _keras_arrays(a):
    return _f64(a["kernel"]), _f64(a["recurrent_kernel"]), (_f64(a["bias"]) if "bias" in a else None)


def keras_lstm(a, x, state, options):
    k, r, bias = _keras_arrays(a)
    z = x @ k + state[-1] @ r + (0 if bias is None else bias)
    i, f, cc, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * state[0] + sigmoid(i) * np.tanh(cc)
    return (c, sigmoid(o) * np.tanh(c))


def keras_gru(a, x, state, options):
    k, r, bias = _keras_arrays(a)
    h = state[-1]
    size = r.shape[0]
    if options.get("reset_after", True):
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


def keras_rnn(a, x, state, options):
    k, r, bias = _keras_arrays(a)
    return (np.tanh(x @ k + (0 if bias is None else bias) + state[-1] @ r),)


def _cudnn_parts(a, x, h):
    """Gate g's (input part, recurrent part), from cuDNN's canonical matrices: each gate's column block, read in
    memory order, is [H, I]."""
    k, r, bias = _f64(a["kernel"]), _f64(a["recurrent_kernel"]), _f64(a["bias"])
    size = r.shape[0]
    n_gates = r.shape[1] // size
    w = [blk.reshape(-1).reshape(size, -1) for blk in np.split(k, n_gates, axis=1)]
    rw = [blk.reshape(-1).reshape(size, size) for blk in np.split(r, n_gates, axis=1)]
    b_w, b_r = np.split(bias, 2)
    b_w, b_r = np.split(b_w, n_gates), np.split(b_r, n_gates)
    return [(x @ w[g].T + b_w[g], h @ rw[g].T + b_r[g]) for g in range(n_gates)]


def cudnn_lstm(a, x, state, options):
    i, f, cc, o = (sum(part) for part in _cudnn_parts(a, x, state[-1]))    # Keras order i, f, c, o
    c = sigmoid(f) * state[0] + sigmoid(i) * np.tanh(cc)
    return (c, sigmoid(o) * np.tanh(c))


def cudnn_gru(a, x, state, options):
    h = state[-1]
    parts = _cudnn_parts(a, x, h)
    z, rr = sigmoid(sum(parts[0])), sigmoid(sum(parts[1]))                # Keras order z, r, h
    x_h, h_h = parts[2]
    return (z * h + (1 - z) * np.tanh(x_h + rr * h_h),)


def tf1_lstm(a, x, state, options):
    c, h = state
    z = np.concatenate([x, h], axis=-1) @ _f64(a["kernel"]) + _f64(a["bias"])
    i, j, f, o = np.split(z, 4, axis=-1)
    c = c * sigmoid(f + options.get("forget_bias", 0.0)) + sigmoid(i) * np.tanh(j)
    return (c, np.tanh(c) * sigmoid(o))


def tf1_gru(a, x, state, options):
    h = state[-1]
    g = sigmoid(np.concatenate([x, h], axis=-1) @ _f64(a["gates/kernel"]) + _f64(a["gates/bias"]))
    r, u = np.split(g, 2, axis=-1)
    cand = np.tanh(np.concatenate([x, r * h], axis=-1) @ _f64(a["candidate/kernel"]) + _f64(a["candidate/bias"]))
    return (u * h + (1 - u) * cand,)


def tf1_rnn(a, x, state, options):
    return (np.tanh(np.concatenate([x, state[-1]], axis=-1) @ _f64(a["kernel"]) + _f64(a["bias"])),)


# ---------------------------------------------------------------------------------- a model

def run(source, ids, state, steps):
    """The source model on ids [B, T] from `state` (per layer: LSTM (c, h), others (h,), each [B, H]).

    steps: each layer's step function of this module (importing/layouts.py picks them by layout and kind).

    Returns (states: per layer, per component [B, T, H]; logits [B, T, V] or None without a head).
    """
    x_all = _f64(source.embedding)[np.asarray(ids)]
    per_layer = []
    for layer, (spec, step) in enumerate(zip(source.layers, steps)):
        s = tuple(_f64(v) for v in state[layer])
        # the model-level forget_bias (a TF1 checkpoint's config) is an option of every layer's step
        options = {"forget_bias": source.forget_bias, **spec.options}
        trace = []
        for t in range(x_all.shape[1]):
            s = step(spec.arrays, x_all[:, t], s, options)
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
