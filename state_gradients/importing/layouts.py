"""The recurrent source layouts: one pure conversion per (framework layout, layer kind), registered in LAYOUTS."""
# Shape letters: I layer input size, H state size.
#
# A layer's arrays come in the source's own layout (torch, keras, cudnn, tf1) and kind (LSTM, GRU,
# RNN in the source framework's sense: a torch GRU resets after the recurrent product). LAYOUTS
# maps each pair to three pure parts: its conversion to this project's arrays (models/cells.py),
# its source equations (source_equations.py, written independently, for the self-check) and the
# basic_cell it becomes. Every other module of the import asks this table.
#
# Gate maps (source column/row blocks -> this project's):
#   LSTM  torch rows (i, f, g, o), Keras columns (i, f, c, o)  -> kernel columns (i, j, f, o), j = g = c
#   GRU   torch rows (r, z, n), Keras columns (z, r, h)        -> gate_kernel (r, u = z), cand_kernel (n = h)
#
# Adding a layout: a reader in sources.py that builds SourceLayer(kind, layout, arrays, names,
# options), its conversion functions here, its steps in source_equations.py, and its LAYOUTS lines.
import dataclasses
from collections.abc import Callable

import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.importing import source_equations as eq


@dataclasses.dataclass(frozen=True)
class Kind:
    """A recurrent layer kind as the source frameworks define it.

    Args:
        gates: blocks of its fused weight matrices (torch rows, Keras columns).
        states: its state components: 2 (c, h) or 1 (h,).
        gated: its activations are fixed by the kind (a gated cell); False: a plain RNN, whose
            nonlinearity is a setting of the layer (torch `nonlinearity`, Keras `activation` only).
        forget_bias: it has a forget bias that TF1 checkpoints do not store.
        reset_after: its reset gate acts before or after the recurrent product, a setting of the layer (Keras
            reset_after).
    """
    gates: int
    states: int
    gated: bool = True
    forget_bias: bool = False
    reset_after: bool = False


KINDS = {"LSTM": Kind(4, 2, forget_bias=True), "GRU": Kind(3, 1, reset_after=True), "RNN": Kind(1, 1, gated=False)}


def kind_by_gates(gates):
    """The kind whose fused matrices hold `gates` blocks, or None."""
    return next((name for name, kind in KINDS.items() if kind.gates == gates), None)


@dataclasses.dataclass(frozen=True)
class Layout:
    """One (layout, kind): convert(arrays, size, options) -> this project's arrays of the layer (float64);
    step: its source equations (source_equations.py); cell_type(options) -> this project's basic_cell."""
    convert: Callable
    step: Callable
    cell_type: Callable


# ------------------------------------------------------------------------------------ shared pieces

def _blocks(a, n, axis):
    return np.split(np.asarray(a, dtype=np.float64), n, axis=axis)


def _stacked(kx, kh, b_x, b_h, order, names=("kernel", "bias")):
    """This project's fused [x, h] kernel [I + H, len(order) H] and bias from per-gate blocks, in `order`."""
    return {names[0]: np.concatenate([np.concatenate([kx[g], kh[g]], 0) for g in order], 1),
            names[1]: np.concatenate([b_x[g] + b_h[g] for g in order])}


def _gru(kx, kh, b_x, b_h, gates, recurrent_bias):
    """GRU arrays: gates (r, u) in source blocks `gates`, the candidate in block 2; a reset-after candidate keeps
    its recurrent bias apart (it is multiplied by r)."""
    out = {**_stacked(kx, kh, b_x, b_h, gates, ("gate_kernel", "gate_bias")),
           "cand_kernel": np.concatenate([kx[2], kh[2]], 0), "cand_bias": b_x[2]}
    if recurrent_bias:
        out["cand_recurrent_bias"] = b_h[2]
    return out


LSTM_ORDER = (0, 2, 1, 3)     # torch (i, f, g, o) and Keras (i, f, c, o) -> (i, j, f, o)


# ------------------------------------------------------------------------------------ torch: nn.LSTM/GRU/RNN

def _torch(a, n, size):
    """Per-gate blocks of nn.RNNBase's weight_ih [nH, I], weight_hh [nH, H] (transposed) and its two biases."""
    kx = [w.T for w in _blocks(a["weight_ih"], n, 0)]
    kh = [w.T for w in _blocks(a["weight_hh"], n, 0)]
    b_x = _blocks(a.get("bias_ih", np.zeros(n * size)), n, 0)
    b_h = _blocks(a.get("bias_hh", np.zeros(n * size)), n, 0)
    return kx, kh, b_x, b_h


def torch_lstm(a, size, options):
    return _stacked(*_torch(a, 4, size), LSTM_ORDER)


def torch_gru(a, size, options):
    return _gru(*_torch(a, 3, size), gates=(0, 1), recurrent_bias=True)


def torch_rnn(a, size, options):
    return _stacked(*_torch(a, 1, size), (0,))


# ------------------------------------------------------------------------------------ Keras and cuDNN

def _keras(a, n, size, two_biases):
    """Column blocks of kernel [I, nH] and recurrent_kernel [H, nH]; the bias is one row, or (reset_after GRU) an
    input row and a recurrent row."""
    kx, kh = _blocks(a["kernel"], n, 1), _blocks(a["recurrent_kernel"], n, 1)
    if two_biases:
        bias = np.asarray(a["bias"], dtype=np.float64) if "bias" in a else np.zeros((2, n * size))
        return kx, kh, _blocks(bias[0], n, 0), _blocks(bias[1], n, 0)
    bias = np.asarray(a["bias"], dtype=np.float64) if "bias" in a else np.zeros(n * size)
    return kx, kh, _blocks(bias, n, 0), [np.zeros(size)] * n


def keras_lstm(a, size, options):
    return _stacked(*_keras(a, 4, size, False), LSTM_ORDER)


def keras_gru(a, size, options):
    reset_after = options.get("reset_after", True)
    return _gru(*_keras(a, 3, size, reset_after), gates=(1, 0), recurrent_bias=reset_after)


def keras_rnn(a, size, options):
    return _stacked(*_keras(a, 1, size, False), (0,))


def _cudnn(a, n, size):
    # Keras 2's CuDNN layers hand each gate's block to cuDNN flattened in memory order, which
    # cuDNN reads as its [H, I] matrix W (gate = W x): the Keras kernel is W^T. Keras 2's own
    # conversion (keras/engine/saving.py, _convert_rnn_weights) does the same with
    # kernel.T.reshape(shape, order='F') for inputs and kernel.T for the square recurrent blocks.
    kx = [blk.reshape(-1).reshape(size, -1).T for blk in _blocks(a["kernel"], n, 1)]
    kh = [blk.T for blk in _blocks(a["recurrent_kernel"], n, 1)]
    b_x, b_h = (_blocks(half, n, 0) for half in _blocks(a["bias"], 2, 0))
    return kx, kh, b_x, b_h


def cudnn_lstm(a, size, options):
    return _stacked(*_cudnn(a, 4, size), LSTM_ORDER)


def cudnn_gru(a, size, options):
    return _gru(*_cudnn(a, 3, size), gates=(1, 0), recurrent_bias=True)


# ------------------------------------------------------------------------------------ TF1 cells (this layout)

def tf1_fused(a, size, options):
    return {"kernel": a["kernel"], "bias": a["bias"]}


def tf1_gru(a, size, options):
    return {"gate_kernel": a["gates/kernel"], "gate_bias": a["gates/bias"],
            "cand_kernel": a["candidate/kernel"], "cand_bias": a["candidate/bias"]}


def _always(cell_type):
    return lambda options: cell_type


def _keras_gru_cell(options):
    return "GRU_RESET_AFTER" if options.get("reset_after", True) else "GRU"


LAYOUTS = {
    ("torch", "LSTM"): Layout(torch_lstm, eq.torch_lstm, _always("LSTM")),
    ("torch", "GRU"): Layout(torch_gru, eq.torch_gru, _always("GRU_RESET_AFTER")),
    ("torch", "RNN"): Layout(torch_rnn, eq.torch_rnn, _always("RNN")),
    ("keras", "LSTM"): Layout(keras_lstm, eq.keras_lstm, _always("LSTM")),
    ("keras", "GRU"): Layout(keras_gru, eq.keras_gru, _keras_gru_cell),
    ("keras", "RNN"): Layout(keras_rnn, eq.keras_rnn, _always("RNN")),
    ("cudnn", "LSTM"): Layout(cudnn_lstm, eq.cudnn_lstm, _always("LSTM")),
    ("cudnn", "GRU"): Layout(cudnn_gru, eq.cudnn_gru, _always("GRU_RESET_AFTER")),
    ("tf1", "LSTM"): Layout(tf1_fused, eq.tf1_lstm, _always("LSTM")),
    ("tf1", "GRU"): Layout(tf1_gru, eq.tf1_gru, _always("GRU")),
    ("tf1", "RNN"): Layout(tf1_fused, eq.tf1_rnn, _always("RNN")),
}


def layout(layer):
    """The Layout of a SourceLayer (UserError for a pair no reader should produce)."""
    key = (layer.layout, layer.kind)
    if key not in LAYOUTS:
        raise UserError(f"no conversion for a {layer.kind} layer in the {layer.layout} layout "
                        f"(known: {', '.join(f'{k} {l}' for l, k in LAYOUTS)})")
    return LAYOUTS[key]
