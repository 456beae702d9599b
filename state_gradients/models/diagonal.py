"""A diagonal linear recurrence with an output MLP (real-valued LRU / S4D style): memory whose state gradient is exact."""
# Shape letters and the cell contract: models/cells.py. Per unit, with a = sigmoid(decay) in (0, 1),
#
#   h_t = a * h_{t-1} + x_t B + b,   y_t = tanh(h_t W_o + b_o)
#
# kernel = B [I, H], bias = b [H], decay [H], out_kernel = W_o [H, H], out_bias = b_o [H]. The state
# is (h, y): h, the linear memory ("cell", like an LSTM's c), and y, its nonlinear read-out
# ("hidden"), which the next layer and the output layer read. So
#
#   d h_t / d x_{t-k} = diag(a)^k B^T   exactly, whatever the input,
#
# the closed form tests/unit/models/test_diagonal.py checks the engine against; every occurrence of a class has
# the same G at one delay, so the intervals of the cell state's SV sums have zero width.
import tensorflow as tf

from state_gradients.models.cells import InputDriven, _b, _matmul_rows, _tanh_and_slope

DECAY_LOGIT = 2.0     # initial a = sigmoid(2) = 0.88 for every unit: a memory of about 8 steps to start from


class DiagonalLinear(InputDriven):
    """h_t = sigmoid(decay) * h_{t-1} + x_t B + b, y_t = tanh(h_t W_o + b_o) (module comment)."""

    state_names = ("h", "y")

    @staticmethod
    def param_shapes(input_size, size):
        return {"kernel": ((input_size, size), "uniform"), "bias": ((size,), 0.0), "decay": ((size,), DECAY_LOGIT),
                "out_kernel": ((size, size), "uniform"), "out_bias": ((size,), 0.0)}

    @staticmethod
    def step(p, xw, state, w_h):
        h, _ = state
        a = tf.sigmoid(p["decay"])
        new_h = a * h + xw
        y, slope = _tanh_and_slope(tf.matmul(new_h, p["out_kernel"]) + p["out_bias"])
        return (new_h, y), (a + tf.zeros_like(h), slope)

    @staticmethod
    def tangent(p, aux, dxw, dstate):
        a, slope = (_b(x) for x in aux)
        # dxw may be one [1, M, P] tangent shared by every row (the identity at k = 0): give it the rows' shape
        dh = None if dxw is None else dxw + tf.zeros_like(a)
        if dstate is not None:
            carried = a * dstate[0]
            dh = carried if dh is None else dh + carried
        return (dh, slope * _matmul_rows(dh, p["out_kernel"]))
