"""Float32 state gradients against float64 on trained models (LSTM, GRU, RNN): within 1e-5 of the window's largest entry."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_scripts import configuration, lm_data
from tf_scripts import main as sg_main
from tf_scripts.lm import LanguageModel
from tf_scripts.state_gradients import StateGradients

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
T, DELAYS, WINDOWS = 25, 12, 40
# Adam on the demo corpus (agreement across fillers) for 15 epochs; the GRU diverges at 0.03
LEARNING_RATE = {"LSTM": 0.03, "GRU": 0.01, "RNN": 0.03, "GRU_RESET_AFTER": 0.01}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("precision")
    models = {}

    def get(cell):
        if cell not in models:
            keys = dict(save_path=tmp / cell, log_dir=tmp / "logs", data_path=DEMO, vocab="False", basic_cell=cell,
                        num_layers=1, embedding_size=32, size=64, num_steps=T, batch_size=10, init_scale=0.1,
                        forget_bias=0, softmax="full", dropout=1, learning_rate=LEARNING_RATE[cell],
                        max_grad_norm=5, optimizer="adam", max_max_epoch=15, trainer="trainer")
            path = tmp / f"{cell}.config"
            path.write_text("".join(f"{k} {v}\n" for k, v in keys.items()))
            assert sg_main.main(["--config", str(path), "--notest"]) == 0
            config = configuration.load_config(str(path), train=False)
            models[cell] = (LanguageModel.from_npz(str(tmp / cell / "weights.npz")),
                            lm_data.load_corpus(config, need_test=False))
        return models[cell]
    return get


def _windows(model, corpus):
    """The first validation windows (B 1) and the float32 model's states entering them, as in the gradient pass."""
    inputs = lm_data.make_windows(corpus.valid, 1, T, max_windows=WINDOWS)[0][:, 0, :]
    entering, state = [], model.zero_state(1)
    for row in inputs:
        entering.append(state)
        state = model.final_state(model.run_layers(model.embed(row[None]), state))
    layer0 = tuple(tf.concat([s[0][c] for s in entering], 0) for c in range(len(entering[0][0])))
    return inputs, (layer0,)


def _relative_error(model32, corpus):
    model64 = model32.copy(tf.float64)
    inputs, state32 = _windows(model32, corpus)
    state64 = tuple(tuple(tf.cast(s, tf.float64) for s in layer) for layer in state32)
    kwargs = dict(layer=0, component=0, time_steps=list(range(T)), max_delay=DELAYS, num_steps=T)
    got, _ = StateGradients(model32, **kwargs).jacobians(inputs, state32)
    want, _ = StateGradients(model64, **kwargs).jacobians(inputs, state64)
    # SPEC 6's scale: the largest entry of the window's matrices at any delay
    scale = np.max([np.abs(g).max(axis=(1, 2, 3)) for _, g in want.values()], axis=0)           # [windows]
    error = np.max([np.abs(got[k][1] - want[k][1]).max(axis=(1, 2, 3)) for k in want], axis=0)
    return float(np.max(error / scale))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"])
def test_float32_jacobians_match_float64_on_a_trained_model(trained, cell):
    assert _relative_error(*trained(cell)) <= 1e-5
