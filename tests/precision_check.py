"""Float32 state gradients against float64 on a model trained on real text (test_precision and its measuring script)."""
# Shape letters: N windows (B = 1), T window length, H state, E embedding.
#
# The measure is the gradient pass's: the state entering every window carried in float64
# (gradient_pass.entering_states), the engine in float32 against the engine in float64 on the
# same entering states; per window, max over delays and entries of |G32 - G64|, divided by the
# window's largest |G64| at any delay (docs/spec.md §6's scale).
from pathlib import Path

import numpy as np
import tensorflow as tf

from state_gradients.core import lm_data
from state_gradients.engine.recurrent import StateGradients
from state_gradients.files.saved_model import SavedModel
from state_gradients.passes.gradient_pass import entering_states
from state_gradients.training import run_epoch
from tf_scripts import main as sg_main

# The real-text setting: 2 layers, E 8, H 12, T 10, init_scale 0.3, one SGD epoch (lr 1, B 1)
# on the first 1,500 lines of PTB train.
SETTING = dict(num_layers=2, embedding_size=8, size=12, num_steps=10, batch_size=1, init_scale=0.3,
               forget_bias=0, softmax="full", dropout=1, learning_rate=1.0, max_grad_norm=5, optimizer="sgd",
               max_max_epoch=1, trainer="trainer", vocab="False")
TRAIN_LINES = 1500


def ptb_slice(ptb, root, train_lines=TRAIN_LINES, valid_lines=None):
    """root/data with the first train_lines of PTB train (and the first valid_lines of valid, default all)."""
    data = Path(root) / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, lines in (("train", train_lines), ("valid", valid_lines), ("test", 10)):
        text = (Path(ptb) / f"{name}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        (data / f"{name}.txt").write_text("".join(text[:lines]), encoding="utf-8")
    return data


def train(root, cell, data, **keys):
    """Train `cell` in SETTING (keys override) with main.py; (the float32 model, its validation ids)."""
    root = Path(root)
    values = dict(SETTING, save_path=root / cell, log_dir=root / "logs", data_path=data, basic_cell=cell, **keys)
    path = root / f"{cell}.config"
    path.write_text("".join(f"{k} {v}\n" for k, v in values.items()), encoding="utf-8")
    if not (root / cell / "weights.npz").exists():
        assert sg_main.main(["--config", str(path), "--notest"]) == 0
    from state_gradients.core import configuration

    config = configuration.load_config(str(path), train=False)
    corpus = lm_data.load_corpus(config, need_train=False, need_test=False)
    return SavedModel(root / cell).load(), corpus.valid


def windows(ids, num_steps, count=None):
    """The first `count` B = 1 validation windows: (inputs, targets) [N, 1, T]."""
    return lm_data.make_windows(ids, 1, num_steps, max_windows=count)


def _rows_state(states, part, model):
    return tuple(tuple(tf.constant(states[f"layer{l}_{c}"][part, 0], tf.float64)
                       for c in range(len(model.cell.state_names))) for l in range(model.num_layers))


def float32_errors(model32, inputs, states, layer, max_delay, states32=None):
    """Per window, the float32 engine's error against the float64 engine on the entering states: [N].

    inputs [N, 1, T]; states: {f"layer{l}_{c}": [N, 1, H]} (entering_states); states32: other
    entering states for the float32 engine (default: the same).
    """
    num_steps = inputs.shape[2]
    rows = inputs[:, 0, :]                                                   # [N, T]
    errors = np.zeros(len(rows))
    kwargs = dict(layer=layer, component=len(model32.cell.state_names) - 1, time_steps=list(range(num_steps)),
                  max_delay=max_delay, num_steps=num_steps)
    engine32, engine64 = StateGradients(model32, **kwargs), StateGradients(model32.copy(tf.float64), **kwargs)
    for start in range(0, len(rows), 500):                                  # bounded memory
        part = slice(start, start + 500)
        got = engine32.jacobians(rows[part], _rows_state(states if states32 is None else states32, part, model32))[0]
        want = engine64.jacobians(rows[part], _rows_state(states, part, model32))[0]
        scale = np.max([np.abs(g).max(axis=(1, 2, 3)) for _, g in want.values()], axis=0)
        error = np.max([np.abs(got[k][1] - want[k][1]).max(axis=(1, 2, 3)) for k in want], axis=0)
        errors[part] = error / scale
    return errors


def pass_errors(model32, ids, layer, max_delay, count=None, carry_float32=False):
    """float32_errors on the first `count` validation windows with the state the gradient pass carries.

    carry_float32: the float32 engine gets the state carried by the float32 model instead, as
    the pass did before it carried the state in float64 (the measuring script's "before").
    """
    inputs, targets = windows(ids, SETTING["num_steps"], count)
    states = entering_states(model32, inputs, targets)          # what the pass carries
    states32 = None
    if carry_float32:
        step, state, entering = run_epoch.make_eval_step(model32), model32.zero_state(1), []
        for x, y in zip(inputs, targets):
            entering.append([[s.numpy() for s in layer] for layer in state])
            state = step(x, y, state)[1]
        states32 = {f"layer{l}_{c}": np.stack([s[l][c] for s in entering]) for l in range(model32.num_layers)
                    for c in range(len(model32.cell.state_names))}
    return float32_errors(model32, inputs, states, layer, max_delay, states32)
