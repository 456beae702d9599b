"""LanguageModel against the plain-numpy model of docs/spec.md §4 (all cells, 1 and 2 layers)."""
import numpy as np
import pytest
import tensorflow as tf

from state_gradients.files.saved_model import SavedModel
from state_gradients.models.lm import LanguageModel
from tests import numpy_reference as ref

CELLS = ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"]


def _model(cell, layers, dtype=tf.float64, seed=1):
    return LanguageModel(vocab_size=11, embedding_size=5, size=4, num_layers=layers, cell_type=cell,
                         forget_bias=0.7, init_scale=0.5, dtype=dtype, seed=seed)


def _random_state(model, batch, rng):
    return tuple(tuple(tf.constant(rng.normal(size=(batch, model.size)), model.dtype)
                       for _ in model.cell.state_names) for _ in range(model.num_layers))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_forward_matches_numpy(cell, layers):
    rng = np.random.default_rng(0)
    model = _model(cell, layers)
    w = ref.float64_weights(model)
    inputs = rng.integers(0, 11, size=(3, 6))
    state = _random_state(model, 3, rng)
    all_states = model.run_layers(model.embed(inputs), state)
    losses = model.token_losses(all_states[-1][-1], tf.constant(np.roll(inputs, -1, 1))).numpy()
    for b in range(3):
        np_state = [tuple(s[b].numpy() for s in layer) for layer in state]
        trace, _ = ref.run(w, model.embedding.numpy()[inputs[b]], np_state)
        for t in range(6):
            for layer in range(layers):
                for comp in range(len(model.cell.state_names)):
                    np.testing.assert_allclose(all_states[layer][comp][b, t].numpy(), trace[t][layer][comp],
                                               rtol=1e-10, atol=1e-12)
            logits = trace[t][-1][-1] @ model.softmax_w.numpy() + model.softmax_b.numpy()
            np.testing.assert_allclose(losses[b, t], -ref.log_softmax(logits)[np.roll(inputs, -1, 1)[b, t]],
                                       rtol=1e-10)


def test_initialisation_follows_tf1_conventions():
    lstm, gru = _model("LSTM", 1), _model("GRU", 1)
    assert np.all(lstm.layers[0]["bias"].numpy() == 0)
    assert np.all(gru.layers[0]["gate_bias"].numpy() == 1.0)
    assert np.all(gru.layers[0]["cand_bias"].numpy() == 0)
    for var in (lstm.embedding, lstm.layers[0]["kernel"], lstm.softmax_w, lstm.softmax_b):
        values = var.numpy()
        assert np.abs(values).max() <= 0.5 and values.std() > 0.1
    # seeded: two models of one config start from the same weights, another seed differs
    np.testing.assert_array_equal(_model("LSTM", 1).layers[0]["kernel"].numpy(), lstm.layers[0]["kernel"].numpy())
    assert not np.array_equal(_model("LSTM", 1, seed=2).embedding.numpy(), lstm.embedding.numpy())


@pytest.mark.parametrize("cell", CELLS)
def test_weights_npz_round_trip_and_layout(cell, tmp_path):
    model = _model(cell, 2, dtype=tf.float32)
    path = tmp_path / "weights.npz"
    np.savez(path, **model.weights_numpy())
    with np.load(path, allow_pickle=False) as f:
        names = set(f.files)
        assert str(f["cell_type"]) == cell and int(f["num_layers"]) == 2
        assert f["embedding"].shape == (11, 5) and f["softmax_w"].shape == (4, 11)
        assert f["embedding"].dtype == np.float32
        if cell.startswith("GRU"):
            assert f["layer0/gate_kernel"].shape == (9, 8) and f["layer1/cand_kernel"].shape == (8, 4)
            assert ("layer1/cand_recurrent_bias" in names) == (cell == "GRU_RESET_AFTER")
        else:
            assert f["layer0/kernel"].shape == (9, (4 if cell == "LSTM" else 1) * 4)
    assert {"forget_bias", "softmax_b"} <= names
    again = SavedModel(path).load()
    for a, b in zip(model.trainable_variables, again.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
