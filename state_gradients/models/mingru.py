"""minGRU (Feng et al. 2024, "Were RNNs all we needed?"): a GRU whose gate and candidate read the input only."""
# Shape letters and the cell contract: models/cells.py. Per unit,
#
#   z_t = sigmoid(x_t W_z + b_z),  h~_t = x_t W_h + b_h,  h_t = (1 - z_t) h_{t-1} + z_t h~_t,
#
# with kernel = [W_z | W_h] ([I, 2H]) and bias = [b_z | b_h]. No weight multiplies h_{t-1}, so
# the state's Jacobian to its own past is diagonal: d h_t / d h_{t-1} = diag(1 - z_t), and
#
#   d h_t / d x_{t-k} = diag(prod_{i=t-k+1..t} (1 - z_i)) (diag(z) W_h^T + diag(z (1 - z) (h~ - h_prev)) W_z^T)_{t-k}
#
# (tests/unit/models/test_mingru.py checks the engine against this closed form). The candidate is linear, as
# in the paper's minGRU (its log-space variant only changes how a long scan is computed).
import tensorflow as tf

from state_gradients.models.cells import InputDriven, _b, _sigmoid_pair


class MinGRU(InputDriven):
    """h_t = (1 - z_t) h_{t-1} + z_t h~_t with z_t and h~_t from x_t only (module comment)."""

    state_names = ("h",)

    @staticmethod
    def param_shapes(input_size, size):
        return {"kernel": ((input_size, 2 * size), "uniform"), "bias": ((2 * size,), 0.0)}

    @staticmethod
    def step(p, xw, state, w_h):
        (h,) = state
        z_pre, cand = tf.split(xw, 2, axis=-1)
        z, z_bar = _sigmoid_pair(z_pre)
        new_h = z_bar * h + z * cand
        # the gate's term z (1 - z) (h~ - h_prev), its difference taken here in the forward pass's precision
        return (new_h,), (z_bar, z, z * z_bar * (cand - h))

    @staticmethod
    def tangent(p, aux, dxw, dstate):
        z_bar, z, dz = (_b(a) for a in aux)
        dh = None
        if dxw is not None:
            dz_pre, dcand = tf.split(dxw, 2, axis=-1)
            dh = z * dcand + dz * dz_pre
        if dstate is not None:
            carried = z_bar * dstate[0]
            dh = carried if dh is None else dh + carried
        return (dh,)
