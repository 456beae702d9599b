"""Plain-numpy model of docs/spec.md §3-4 and 6, the independent oracle the tests compare against."""
# Shape letters: T time, E embedding, H state, V vocabulary, D delay.
# Written from docs/spec.md's formulas only (no TensorFlow, no project code), in float64.
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def load_weights(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def cell_step(w, layer, x, state):
    """One step of layer `layer` on one row: x [I], state tuple of [H] -> new state tuple."""
    kind = str(w["cell_type"])
    if kind == "LSTM":
        c, h = state
        z = np.concatenate([x, h]) @ w[f"layer{layer}/kernel"].astype(np.float64) + w[f"layer{layer}/bias"]
        i, j, f, o = np.split(z, 4)
        c = c * sigmoid(f + float(w["forget_bias"])) + sigmoid(i) * np.tanh(j)
        return (c, np.tanh(c) * sigmoid(o))
    if kind == "GRU":
        (h,) = state
        g = sigmoid(np.concatenate([x, h]) @ w[f"layer{layer}/gate_kernel"].astype(np.float64)
                    + w[f"layer{layer}/gate_bias"])
        r, u = np.split(g, 2)
        cand = np.tanh(np.concatenate([x, r * h]) @ w[f"layer{layer}/cand_kernel"].astype(np.float64)
                       + w[f"layer{layer}/cand_bias"])
        return (u * h + (1 - u) * cand,)
    if kind == "GRU_RESET_AFTER":
        (h,) = state
        g = sigmoid(np.concatenate([x, h]) @ w[f"layer{layer}/gate_kernel"].astype(np.float64)
                    + w[f"layer{layer}/gate_bias"])
        r, u = np.split(g, 2)
        kernel = w[f"layer{layer}/cand_kernel"].astype(np.float64)
        cand = np.tanh(x @ kernel[: len(x)] + w[f"layer{layer}/cand_bias"]
                       + r * (h @ kernel[len(x):] + w[f"layer{layer}/cand_recurrent_bias"]))
        return (u * h + (1 - u) * cand,)
    (h,) = state
    return (np.tanh(np.concatenate([x, h]) @ w[f"layer{layer}/kernel"].astype(np.float64)
                    + w[f"layer{layer}/bias"]),)


def zero_state(w):
    size = w["softmax_w"].shape[0]
    n = 2 if str(w["cell_type"]) == "LSTM" else 1
    return [tuple(np.zeros(size) for _ in range(n)) for _ in range(int(w["num_layers"]))]


def run(w, xs, state):
    """Feed embeddings xs [T, E] from `state`; returns per step the list of per-layer states, and the last state."""
    trace = []
    for x in xs:
        new = []
        inp = x
        for layer in range(int(w["num_layers"])):
            s = cell_step(w, layer, inp, state[layer])
            new.append(s)
            inp = s[-1]
        state = new
        trace.append(new)
    return trace, state


def log_softmax(z):
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def perplexity(w, ids, batch_size, num_steps):
    """docs/spec.md §3 perplexity of one pass: batching, state carried between windows, cost summed / B."""
    ids = np.asarray(ids)
    batch_len = len(ids) // batch_size
    data = ids[: batch_size * batch_len].reshape(batch_size, batch_len)
    n_windows = batch_len // num_steps - 1
    emb = w["embedding"].astype(np.float64)
    total, count = 0.0, 0
    states = [zero_state(w) for _ in range(batch_size)]
    for i in range(n_windows):
        for r in range(batch_size):
            window = data[r, i * num_steps:(i + 1) * num_steps + 1]
            trace, states[r] = run(w, emb[window[:-1]], states[r])
            for t, per_layer in enumerate(trace):
                logits = per_layer[-1][-1] @ w["softmax_w"] + w["softmax_b"]
                total -= log_softmax(logits)[window[t + 1]]
                count += 1
    return float(np.exp(total / count))


def state_of(w, xs, state, layer, component, t):
    """s_t of the given layer/component for window embeddings xs [T, E] (entering state constant)."""
    trace, _ = run(w, xs, state)
    return trace[t][layer][component]


def finite_difference_gradient(w, xs, state, layer, component, t, j, eps=1e-6):
    """Central differences of s_t w.r.t. x_j: [H, E]."""
    cols = []
    for e in range(xs.shape[1]):
        plus, minus = xs.copy(), xs.copy()
        plus[j, e] += eps
        minus[j, e] -= eps
        cols.append((state_of(w, plus, state, layer, component, t)
                     - state_of(w, minus, state, layer, component, t)) / (2 * eps))
    return np.stack(cols, axis=1)


def tangent_gradients(w, xs, state, layer, component, t, max_delay, eps=1e-6):
    """{k: G[t, k]} for k = 0 .. min(max_delay-1, t) by finite differences."""
    return {k: finite_difference_gradient(w, xs, state, layer, component, t, t - k, eps)
            for k in range(min(max_delay - 1, t) + 1)}


def float64_weights(model):
    """The weights.npz arrays of a float64 model, without the float32 rounding of the file."""
    w = model.weights_numpy()
    w["forget_bias"] = np.float64(model.forget_bias)
    w["embedding"], w["softmax_w"], w["softmax_b"] = (v.numpy() for v in
                                                      (model.embedding, model.softmax_w, model.softmax_b))
    for layer, params in enumerate(model.layers):
        w.update({f"layer{layer}/{n}": v.numpy() for n, v in params.items()})
    return w


# ---------------------------------------------------------------- PyTorch's documented equations
# (https://pytorch.org/docs/stable/generated/torch.nn.LSTM.html, ...GRU.html, ...RNN.html), on a
# state dict's own arrays: the oracle for imported PyTorch models.

def torch_layer(kind, sd, prefix, layer, xs, state):
    """One nn.LSTM/GRU/RNN layer over xs [T, I] from state ((h, c) LSTM, (h,) else); returns hs [T, H], cs or None."""
    w_ih, w_hh = (sd[f"{prefix}{n}_l{layer}"].astype(np.float64) for n in ("weight_ih", "weight_hh"))
    b_ih = sd.get(f"{prefix}bias_ih_l{layer}", np.zeros(w_ih.shape[0])).astype(np.float64)
    b_hh = sd.get(f"{prefix}bias_hh_l{layer}", np.zeros(w_hh.shape[0])).astype(np.float64)
    h = state[0]
    c = state[1] if kind == "LSTM" else None
    hs, cs = [], []
    for x in xs:
        if kind == "LSTM":
            i, f, g, o = np.split(w_ih @ x + b_ih + w_hh @ h + b_hh, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            cs.append(c)
        elif kind == "GRU":
            r_i, z_i, n_i = np.split(w_ih @ x + b_ih, 3)
            r_h, z_h, n_h = np.split(w_hh @ h + b_hh, 3)
            r, z = sigmoid(r_i + r_h), sigmoid(z_i + z_h)
            n = np.tanh(n_i + r * n_h)
            h = (1 - z) * n + z * h
        else:
            h = np.tanh(w_ih @ x + b_ih + w_hh @ h + b_hh)
        hs.append(h)
    return np.array(hs), (np.array(cs) if kind == "LSTM" else None)


def torch_lm(kind, sd, ids, layers, prefix="rnn."):
    """Top-layer outputs [T, H] and logits [T, V] of encoder -> layers -> decoder, from a zero state."""
    xs = sd["encoder.weight"].astype(np.float64)[ids]
    size = sd[f"{prefix}weight_hh_l0"].shape[1]
    for layer in range(layers):
        xs, _ = torch_layer(kind, sd, prefix, layer, xs, (np.zeros(size), np.zeros(size)))
    weight = sd.get("decoder.weight", sd["encoder.weight"]).astype(np.float64)
    return xs, xs @ weight.T + sd["decoder.bias"]
