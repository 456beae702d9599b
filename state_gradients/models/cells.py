"""TF1-exact LSTM / GRU / RNN cells as pure functions, each with its forward-mode tangent step."""
# Shape letters: N rows (batch rows, or batch rows x positions), I input size (E for layer 0,
# H above), H state size, M tangent directions per row (E for forward-mode state gradients).
#
# A cell is used in three ways, all on a dict of parameters `p` laid out as TF1 stored them
# (see docs/spec.md §4 and weights.npz):
#
#   xw = project_input(p, x)                  x [N, I] -> xw [N, P]   (x part of the pre-activation + bias)
#   w_h = recurrent_weights(p, H)             the kernel rows that multiply the previous state
#   new_state, aux = step(p, xw, state, w_h)  one time step; aux = activations the tangent step needs
#   d_new_state = tangent(p, aux, dxw, dstate)  the step's Jacobian applied to tangents
#
# Splitting the input projection out of the step lets a whole window's inputs be projected with
# one large matmul (the recurrence then only multiplies by the recurrent weights), and lets the
# tangent of a later layer's input enter as project_tangent(p, dx) = dx @ W_x.
#
# Tangent tensors carry M directions per row: dstate components are [N, M, H], dxw is [N, M, P];
# aux tensors are [N, H] and are broadcast over M.
import tensorflow as tf

def _matmul_rows(t, w):
    """[N, M, K] @ [K, P] -> [N, M, P] as one large matmul."""
    shape = tf.shape(t)
    flat = tf.matmul(tf.reshape(t, [-1, shape[-1]]), w)
    return tf.reshape(flat, tf.concat([shape[:-1], tf.shape(w)[-1:]], 0))


def _project_kernel(p, x):
    """x @ kernel[:I] + bias for the cells whose kernel holds every gate (LSTM, RNN)."""
    return tf.matmul(x, p["kernel"][: tf.shape(x)[-1]]) + p["bias"]


def _b(aux):
    """Broadcast an [N, H] activation over the M tangent directions."""
    return aux[:, None, :]


# The GRU's update-gate term du * (h_prev - cand) takes h_prev - cand from the step (computed in
# the forward pass's float64), not as a float32 difference of the rounded h_prev and cand: a
# trained GRU keeps h_prev close to cand, and the float32 difference lost its digits (on PTB-trained
# 2-layer GRUs the float32 G of layer 1 erred by up to 7.8e-5 of the window's largest entry;
# 8e-7 with the float64 difference).
#
# Derivatives from the pre-activation z, not from the activation: 1 - sigmoid(z) and 1 - tanh(z)^2
# computed as differences cancel when the unit saturates (in float32 the GRU's update-gate term
# 1 - u lost most of its digits), while sigmoid(-z) and 4 sigmoid(2z) sigmoid(-2z) keep them.

def _sigmoid_pair(z):
    """(sigmoid(z), 1 - sigmoid(z)), the second as sigmoid(-z)."""
    return tf.sigmoid(z), tf.sigmoid(-z)


def _tanh_and_slope(z):
    """(tanh(z), 1 - tanh(z)^2), the second as 4 sigmoid(2z) sigmoid(-2z)."""
    return tf.tanh(z), 4.0 * tf.sigmoid(2.0 * z) * tf.sigmoid(-2.0 * z)


def _gru_gates(xw, h, gate_weights):
    """The GRU's gates (shared by both GRU cells): (candidate's input part, (r, 1 - r), (u, 1 - u))."""
    size = tf.shape(h)[-1]
    xg, xc = xw[..., : 2 * size], xw[..., 2 * size:]
    r_pre, u_pre = tf.split(xg + tf.matmul(h, gate_weights), 2, axis=-1)
    return xc, _sigmoid_pair(r_pre), _sigmoid_pair(u_pre)


def _gru_gate_tangents(p, size, r, r_bar, u, u_bar, dxw, dstate):
    """Tangents of the GRU gates: (candidate's input tangent or None, dh_prev or None, dr, du)."""
    dxg = dxc = None
    if dxw is not None:
        dxg, dxc = dxw[..., : 2 * size], dxw[..., 2 * size:]
    dh_prev = None if dstate is None else dstate[0]
    gates = [0, 0] if dxg is None else tf.split(dxg, 2, axis=-1)
    if dh_prev is not None:
        # one matmul per gate, as in the LSTM: no copy to split the products
        gates = [g + _matmul_rows(dh_prev, w) for g, w in zip(gates, tf.split(p["gate_kernel"][-size:], 2, -1))]
    dr_pre, du_pre = gates
    return dxc, dh_prev, r * r_bar * dr_pre, u * u_bar * du_pre


class InputDriven:
    """Shared parts of the cells whose pre-activations read the input only (kernel [I, P] and bias [P], no weight
    on the previous state): models/mingru.py, models/diagonal.py."""

    def __init__(self, forget_bias=0.0):
        del forget_bias     # the LSTM's; these cells have no forget gate

    @staticmethod
    def project_input(p, x):
        return _project_kernel(p, x)

    @staticmethod
    def project_tangent(p, dx):
        return _matmul_rows(dx, p["kernel"])

    @staticmethod
    def recurrent_weights(p, size):
        return None         # nothing multiplies the previous state


class LSTM:
    """tf.contrib.rnn.BasicLSTMCell: z = [x, h] @ kernel + bias, gates i, j, f, o in that order."""

    state_names = ("c", "h")

    def __init__(self, forget_bias=0.0):
        self.forget_bias = forget_bias

    @staticmethod
    def param_shapes(input_size, size):
        # name -> (shape, initialiser): "uniform" = U[-init_scale, init_scale], else a constant
        return {"kernel": ((input_size + size, 4 * size), "uniform"), "bias": ((4 * size,), 0.0)}

    @staticmethod
    def project_input(p, x):
        return _project_kernel(p, x)

    @staticmethod
    def project_tangent(p, dx):
        return _matmul_rows(dx, p["kernel"][: tf.shape(dx)[-1]])

    @staticmethod
    def recurrent_weights(p, size):
        return p["kernel"][-size:]

    def step(self, p, xw, state, w_h):
        c, h = state
        z = xw + tf.matmul(h, w_h)
        i, j, f, o = tf.split(z, 4, axis=-1)
        (si, ci), (tj, slope_j) = _sigmoid_pair(i), _tanh_and_slope(j)
        (sf, cf), (so, co) = _sigmoid_pair(f + self.forget_bias), _sigmoid_pair(o)
        new_c = c * sf + si * tj
        tc, slope_c = _tanh_and_slope(new_c)
        new_h = tc * so
        # The tangent step needs only these products; forming them here, once per position,
        # saves one full-size multiply per term on the [N, E, H] tangents.
        d_i, d_j, d_f = si * ci * tj, si * slope_j, c * sf * cf
        d_o, dh_dc = tc * so * co, slope_c * so
        return (new_c, new_h), (d_i, d_j, d_f, d_o, sf, dh_dc)

    @staticmethod
    def tangent(p, aux, dxw, dstate):
        d_i, d_j, d_f, d_o, sf, dh_dc = (_b(a) for a in aux)
        gates = [0, 0, 0, 0] if dxw is None else tf.split(dxw, 4, axis=-1)
        if dstate is not None:
            dc_prev, dh_prev = dstate
            w_h = p["kernel"][-tf.shape(dh_prev)[-1]:]
            # one matmul per gate: the products come out separate, with no copy to split them
            gates = [g + _matmul_rows(dh_prev, w) for g, w in zip(gates, tf.split(w_h, 4, axis=-1))]
        di, dj, df, do = gates
        dc = d_i * di + d_j * dj + d_f * df
        if dstate is not None:
            dc = dc + sf * dc_prev
        return (dc, dh_dc * dc + d_o * do)


class GRU:
    """tf.contrib.rnn.GRUCell: r, u from gate_kernel (r first); cand from [x, r * h] @ cand_kernel."""

    state_names = ("h",)

    def __init__(self, forget_bias=0.0):
        del forget_bias  # GRU has no forget bias; accepted so all cells build the same way

    @staticmethod
    def param_shapes(input_size, size):
        return {
            "gate_kernel": ((input_size + size, 2 * size), "uniform"),
            "gate_bias": ((2 * size,), 1.0),
            "cand_kernel": ((input_size + size, size), "uniform"),
            "cand_bias": ((size,), 0.0),
        }

    @staticmethod
    def project_input(p, x):
        n_in = tf.shape(x)[-1]
        w = tf.concat([p["gate_kernel"][:n_in], p["cand_kernel"][:n_in]], 1)
        return tf.matmul(x, w) + tf.concat([p["gate_bias"], p["cand_bias"]], 0)

    @staticmethod
    def project_tangent(p, dx):
        n_in = tf.shape(dx)[-1]
        return _matmul_rows(dx, tf.concat([p["gate_kernel"][:n_in], p["cand_kernel"][:n_in]], 1))

    def step(self, p, xw, state, w_h):
        (h,) = state
        xc, (r, r_bar), (u, u_bar) = _gru_gates(xw, h, w_h[0])
        cand, slope_cand = _tanh_and_slope(xc + tf.matmul(r * h, w_h[1]))
        new_h = u * h + u_bar * cand
        return (new_h,), (h, r, r_bar, u, u_bar, h - cand, slope_cand)

    @staticmethod
    def recurrent_weights(p, size):
        return (p["gate_kernel"][-size:], p["cand_kernel"][-size:])

    @staticmethod
    def tangent(p, aux, dxw, dstate):
        h, r, r_bar, u, u_bar, h_minus_cand, slope_cand = (_b(a) for a in aux)
        size = tf.shape(aux[0])[-1]
        dxc, dh_prev, dr, du = _gru_gate_tangents(p, size, r, r_bar, u, u_bar, dxw, dstate)
        # d(r * h_prev) = dr * h_prev + r * dh_prev
        drh = dr * h if dh_prev is None else dr * h + r * dh_prev
        dcand_pre = _matmul_rows(drh, p["cand_kernel"][-size:])
        if dxc is not None:
            dcand_pre = dcand_pre + dxc
        dcand = slope_cand * dcand_pre
        dh = du * h_minus_cand + u_bar * dcand
        if dh_prev is not None:
            dh = dh + u * dh_prev
        return (dh,)


class GRUResetAfter(GRU):
    """GRU with the reset gate after the recurrent matmul (PyTorch GRU, Keras reset_after=True, cuDNN GRU).

    r, u as GRUCell; cand = tanh(x @ C_x + cand_bias + r * (h @ C_h + cand_recurrent_bias)), where
    C_x, C_h are cand_kernel's input and recurrent rows; h = u * h_prev + (1 - u) * cand.
    """

    @staticmethod
    def param_shapes(input_size, size):
        shapes = GRU.param_shapes(input_size, size)
        shapes["cand_recurrent_bias"] = ((size,), "uniform")  # as PyTorch initialises it; non-zero in tests
        return shapes

    def step(self, p, xw, state, w_h):
        (h,) = state
        xc, (r, r_bar), (u, u_bar) = _gru_gates(xw, h, w_h[0])
        hc = tf.matmul(h, w_h[1]) + p["cand_recurrent_bias"]
        cand, slope_cand = _tanh_and_slope(xc + r * hc)
        new_h = u * h + u_bar * cand
        return (new_h,), (h, r, r_bar, u, u_bar, h - cand, slope_cand, hc)

    @staticmethod
    def tangent(p, aux, dxw, dstate):
        h, r, r_bar, u, u_bar, h_minus_cand, slope_cand, hc = (_b(a) for a in aux)
        size = tf.shape(aux[0])[-1]
        dxc, dh_prev, dr, du = _gru_gate_tangents(p, size, r, r_bar, u, u_bar, dxw, dstate)
        # d(r * (h_prev @ C_h + b)) = dr * (h_prev @ C_h + b) + r * (dh_prev @ C_h)
        dcand_pre = dr * hc
        if dh_prev is not None:
            dcand_pre = dcand_pre + r * _matmul_rows(dh_prev, p["cand_kernel"][-size:])
        if dxc is not None:
            dcand_pre = dcand_pre + dxc
        dcand = slope_cand * dcand_pre
        dh = du * h_minus_cand + u_bar * dcand
        if dh_prev is not None:
            dh = dh + u * dh_prev
        return (dh,)


class RNN:
    """tf.contrib.rnn.BasicRNNCell: h = tanh([x, h] @ kernel + bias)."""

    state_names = ("h",)

    def __init__(self, forget_bias=0.0):
        del forget_bias

    @staticmethod
    def param_shapes(input_size, size):
        return {"kernel": ((input_size + size, size), "uniform"), "bias": ((size,), 0.0)}

    project_input = staticmethod(LSTM.project_input)
    project_tangent = staticmethod(LSTM.project_tangent)
    recurrent_weights = staticmethod(LSTM.recurrent_weights)

    def step(self, p, xw, state, w_h):
        (h,) = state
        new_h, slope = _tanh_and_slope(xw + tf.matmul(h, w_h))
        return (new_h,), (slope,)

    @staticmethod
    def tangent(p, aux, dxw, dstate):
        (slope,) = (_b(a) for a in aux)
        dz = dxw
        if dstate is not None:
            rec = _matmul_rows(dstate[0], p["kernel"][-tf.shape(dstate[0])[-1]:])
            dz = rec if dz is None else dz + rec
        return (slope * dz,)


