"""sg-import: PyTorch, Keras and TF1 models imported and checked against their frameworks' own outputs and Jacobians."""
import json
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from aux_scripts import import_model
from aux_scripts import gradient_check as sg_gradient_check
from state_gradients.engine.recurrent import state_gradients
from state_gradients.files.saved_model import SavedModel
from state_gradients.importing import convert
from state_gradients.models.lm import LanguageModel
from tests import numpy_reference as ref
from tests import source_models as sm
from tf_scripts import main as main_script

V, E, H = 13, 5, 4


def _words(n=V):
    return [f"w{i}" for i in range(n)]


def _import(argv, capsys=None):
    return import_model.main([str(a) for a in argv])


def _model(out):
    return SavedModel(out).load(tf.float64)


def _states(model, ids):
    """Per layer, per component [B, T, H] from a zero state."""
    states = model.run_layers(model.embed(tf.constant(ids)), model.zero_state(ids.shape[0]))
    return [[s.numpy() for s in layer] for layer in states]


def _engine_jacobians(model, ids, layer, t, delays):
    """{k: d h_t / d x_{t-k}} [H, E] of row 0, from this project's engine on the imported model."""
    comp = len(model.cell.state_names) - 1
    out = state_gradients(model, ids[:1], model.zero_state(1), layer=layer, component=comp, time_steps=[t],
                          max_delay=delays)
    return {k: g[0, 0] for k, (_, g) in out.items()}


# ------------------------------------------------------------------------------------ PyTorch

def _write_torch(sd, fmt, path):
    if fmt == "npz":
        np.savez(path, **sd)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file(sd, str(path))
    else:
        sm.write_pt(path, sd)
    return path


def _torch_fd_jacobian(kind, sd, ids, layers, t, k, eps=1e-6):
    """Central differences of PyTorch's equations: d (top h_t) / d x_{t-k} [H, E] (zero state)."""
    emb = sd["encoder.weight"].astype(np.float64)[ids]

    def top(xs):
        for layer in range(layers):
            xs, _ = ref.torch_layer(kind, sd, "rnn.", layer, xs, (np.zeros(H), np.zeros(H)))
        return xs[t]

    cols = []
    for e in range(emb.shape[1]):
        plus, minus = emb.copy(), emb.copy()
        plus[t - k, e] += eps
        minus[t - k, e] -= eps
        cols.append((top(plus) - top(minus)) / (2 * eps))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("kind, fmt", [("LSTM", "npz"), ("LSTM", "safetensors"), ("LSTM", "pt"),
                                       ("GRU", "pt"), ("RNN", "safetensors")])
def test_torch_import_equals_pytorch_equations(kind, fmt, tmp_path):
    sd = sm.torch_lm_state_dict(kind, seed=3)
    source = _write_torch(sd, fmt, tmp_path / f"model.{fmt}")
    vocab = sm.write_vocab_lines(tmp_path / "vocab.txt", _words())
    out = tmp_path / "imported"
    assert _import(["--from", "torch", source, "--vocab", vocab, "--out", out]) == 0
    model = _model(out)
    assert model.cell_type == {"LSTM": "LSTM", "GRU": "GRU_RESET_AFTER", "RNN": "RNN"}[kind]
    ids = np.random.default_rng(0).integers(0, V, (1, 8))
    expected_h, expected_logits = ref.torch_lm(kind, sd, ids[0], 2)
    ours = _states(model, ids)
    np.testing.assert_allclose(ours[-1][-1][0], expected_h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.logits(tf.constant(ours[-1][-1])).numpy()[0], expected_logits, rtol=0, atol=1e-11)
    jac = _engine_jacobians(model, ids, 1, 7, 4)
    for k, g in jac.items():
        np.testing.assert_allclose(g, _torch_fd_jacobian(kind, sd, ids[0], 2, 7, k), rtol=0, atol=1e-8)
    report = json.loads((out / "import_report.json").read_text())
    assert report["passed"] and all(c["error"] <= 1e-10 for c in report["checks"])
    assert {row["target"] for row in report["mapped"]} >= {"embedding", "layer0/*", "layer1/*", "softmax_w, softmax_b"}


def test_torch_gru_through_the_tf1_gru_mapping_fails():
    # PyTorch's GRU resets after the recurrent matmul; mapped onto TF1's GRUCell (reset before,
    # the two candidate biases summed) it computes something else: the test of the GRU can fail
    sd = sm.torch_lm_state_dict("GRU", layers=1, seed=3)
    source = convert.SourceModel("torch", "sd", sd["encoder.weight"], "encoder.weight",
                                      [convert.SourceLayer("GRU", "torch",
                                                                {r: sd[f"rnn.{r}_l0"] for r in
                                                                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
                                                                {})], None)
    arrays = convert.convert(source)
    ids = np.random.default_rng(0).integers(0, V, (1, 8))
    expected, _ = ref.torch_lm("GRU", {**sd, "decoder.weight": np.zeros((V, H))}, ids[0], 1)
    right = LanguageModel(V, E, H, 1, "GRU_RESET_AFTER", dtype=tf.float64, output_layer=False)
    right.assign_numpy(arrays)
    wrong = LanguageModel(V, E, H, 1, "GRU", dtype=tf.float64, output_layer=False)
    tf1_arrays = {k: v for k, v in arrays.items() if k != "layer0/cand_recurrent_bias"}
    tf1_arrays["layer0/cand_bias"] = arrays["layer0/cand_bias"] + arrays["layer0/cand_recurrent_bias"]
    wrong.assign_numpy(tf1_arrays)
    np.testing.assert_allclose(_states(right, ids)[0][0][0], expected, atol=1e-12)
    assert np.abs(_states(wrong, ids)[0][0][0] - expected).max() > 1e-2


def test_torch_prefixes_tied_weights_and_awd_raw_weights(tmp_path):
    # AWD-LSTM / fastai: one nn.LSTM per layer under 0.rnns.N., weight-drop keeps weight_hh_l0_raw
    # beside module.weight_hh_l0 (a dropped copy), the embedding twice, and a tied decoder (bias only)
    base = sm.torch_lm_state_dict("LSTM", emb=H, size=H, seed=5, tied=True)
    sd = {"0.encoder.weight": base["encoder.weight"], "0.encoder_dp.emb.weight": base["encoder.weight"].copy()}
    for layer in range(2):
        for name in ("weight_ih", "bias_ih", "bias_hh"):
            sd[f"0.rnns.{layer}.module.{name}_l0"] = base[f"rnn.{name}_l{layer}"]
        sd[f"0.rnns.{layer}.weight_hh_l0_raw"] = base[f"rnn.weight_hh_l{layer}"]
        sd[f"0.rnns.{layer}.module.weight_hh_l0"] = np.zeros_like(base[f"rnn.weight_hh_l{layer}"])
    sd["1.decoder.bias"] = base["decoder.bias"]
    source = _write_torch(sd, "pt", tmp_path / "awd.pth")
    out = tmp_path / "imported"
    assert _import(["--from", "torch", source, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", out]) == 0
    ids = np.random.default_rng(1).integers(0, V, (1, 6))
    expected_h, expected_logits = ref.torch_lm("LSTM", base, ids[0], 2)
    model = _model(out)
    ours = _states(model, ids)[-1][-1]
    np.testing.assert_allclose(ours[0], expected_h, atol=1e-12)
    np.testing.assert_allclose(model.logits(tf.constant(ours)).numpy()[0], expected_logits, atol=1e-11)
    report = json.loads((out / "import_report.json").read_text())
    assert any("tied" in row["transform"] for row in report["mapped"])
    assert any("0.rnns.0., 0.rnns.1." in note for note in report["assumed"])


def test_torch_unrecognised_keys_are_listed_and_flags_name_them(tmp_path, capsys):
    sd = sm.torch_lm_state_dict("LSTM", layers=1)
    renamed = {"lut.weight" if k == "encoder.weight" else k.replace("decoder.", "proj_out."): v for k, v in sd.items()}
    renamed["extra.weight"] = np.zeros((V, E), np.float32)   # a second embedding-shaped array
    source = _write_torch(renamed, "npz", tmp_path / "m.npz")
    vocab = sm.write_vocab_lines(tmp_path / "v", _words())
    assert _import(["--from", "torch", source, "--vocab", vocab, "--out", tmp_path / "a"]) == 2
    err = capsys.readouterr().err
    assert "--embedding-key" in err and "lut.weight (13, 5)" in err and "rnn.weight_ih_l0 (16, 5)" in err
    assert _import(["--from", "torch", source, "--vocab", vocab, "--out", tmp_path / "b", "--embedding-key",
                    "lut.weight", "--decoder-prefix", "proj_out."]) == 0


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.update({"rnn.weight_ih_l0_reverse": sd["rnn.weight_ih_l0"],
                           "rnn.weight_hh_l0_reverse": sd["rnn.weight_hh_l0"]}), "bidirectional"),
    (lambda sd: sd.update({"rnn.weight_hr_l0": np.zeros((H, H), np.float32)}), "projection"),
    (lambda sd: sd.update({"rnn.weight_ih_l1": np.zeros((12, H), np.float32),
                           "rnn.weight_hh_l1": np.zeros((12, 3), np.float32)}), "per-layer sizes"),
])
def test_torch_structures_that_cannot_be_imported_are_refused(change, message, tmp_path, capsys):
    sd = sm.torch_lm_state_dict("LSTM")
    change(sd)
    source = _write_torch(sd, "npz", tmp_path / "m.npz")
    assert _import(["--from", "torch", source, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", tmp_path / "o"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_relu_rnn_and_too_large_vocabulary_are_refused(tmp_path, capsys):
    source = _write_torch(sm.torch_lm_state_dict("RNN"), "npz", tmp_path / "m.npz")
    vocab = sm.write_vocab_lines(tmp_path / "v", _words())
    assert _import(["--from", "torch", source, "--vocab", vocab, "--out", tmp_path / "o", "--nonlinearity",
                    "relu"]) == 1
    assert "tanh" in capsys.readouterr().err
    big = sm.write_vocab_lines(tmp_path / "big", _words(V + 1))
    assert _import(["--from", "torch", source, "--vocab", big, "--out", tmp_path / "o"]) == 1
    assert "14 tokens but the embedding has only 13 rows" in capsys.readouterr().err


def test_pickles_beyond_a_state_dict_are_refused_without_running_them(tmp_path, capsys):
    class Net:   # stands for a pickled nn.Module: its class would be imported and run by pickle
        pass

    source = sm.write_pt(tmp_path / "model.pt", sm.torch_lm_state_dict("LSTM"), extra={"net": Net()})
    assert _import(["--from", "torch", source, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert "pickles torch.Net" in err and "state_dict" in err


# ------------------------------------------------------------------------------------ vocabulary

def test_vocabulary_formats_placeholders_and_tokens(tmp_path):
    rows = 6
    (tmp_path / "v.json").write_text(json.dumps({"a": 1, " ": 2, "\n": 3, "b c": 4}), encoding="utf-8")
    names, info = convert.read_vocab(str(tmp_path / "v.json"), rows)
    assert names == ["<unused_0>", "a", "<U+0020>", "<U+000A>", "b<U+0020>c", "<unused_5>"]
    assert info["tokens"] == 4 and any("unused" in n for n in info["notes"])
    (tmp_path / "v.tsv").write_text("x\t2\ny\t0\nz\t1\n", encoding="utf-8")
    assert convert.read_vocab(str(tmp_path / "v.tsv"), 3)[0] == ["y", "z", "x"]
    (tmp_path / "v.txt").write_text("<eos>\nthe\n<unk>\n", encoding="utf-8")
    names, _ = convert.read_vocab(str(tmp_path / "v.txt"), 3)
    assert names == ["<eos>", "the", "<unk>"]
    assert convert.resolve_token("\n", ["<U+000A>"], "--eos-token") == "<U+000A>"
    (tmp_path / "dup.tsv").write_text("x\t0\ny\t0\n", encoding="utf-8")
    with pytest.raises(convert.UserError, match=r"dup.tsv:2: id 0 is used twice"):
        convert.read_vocab(str(tmp_path / "dup.tsv"), 3)


# ------------------------------------------------------------------------------------ Keras

def _keras_model(layer, seed=0, activation=None):
    import keras

    keras.utils.set_random_seed(seed)
    options = {"return_sequences": True}
    if layer == "GRU_before":
        cls, options["reset_after"] = keras.layers.GRU, False
    else:
        cls = getattr(keras.layers, layer)
    if activation:
        options.update(activation)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, E),
                              cls(H, **options), cls(H, **options), keras.layers.Dense(V)])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _keras_outputs(model, ids, weights=None):
    """(top layer h [B, T, H], logits [B, T, V], d h_t / d x Jacobian of row 0 [T', H, E]) by Keras and GradientTape.

    Computed by a float64 twin of the model (the same layers and weights in float64): the import keeps
    the float32 weights exactly and computes in float64, so the two agree to float64 rounding on every
    CPU, where Keras's own float32 outputs differ from them by CPU-dependent float32 rounding.
    weights: the twin's weights (default: the model's, in float64).
    """
    import keras

    layers = [type(layer).from_config({**layer.get_config(), "dtype": "float64"}) for layer in model.layers]
    twin = keras.Sequential([keras.Input((None,), dtype="int32"), *layers])
    twin.set_weights([w.astype(np.float64) for w in (weights or model.get_weights())])
    emb, rnn1, rnn2, dense = twin.layers
    x = tf.constant(emb(ids).numpy())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        h = rnn2(rnn1(x))
        h_t = h[0, -1]
    jac = tape.jacobian(h_t, x).numpy()[:, 0]     # [H, T, E]
    return h.numpy(), dense(h).numpy(), jac


@pytest.mark.parametrize("layer, fmt", [("LSTM", ".keras"), ("LSTM", ".h5"), ("LSTM", ".weights.h5"),
                                        ("GRU", ".keras"), ("GRU", ".weights.h5"), ("GRU_before", ".keras"),
                                        ("SimpleRNN", ".h5")])
def test_keras_import_equals_keras_outputs_and_tape_jacobians(layer, fmt, tmp_path):
    model = _keras_model(layer)
    path = tmp_path / f"model{fmt}"
    if fmt == ".weights.h5":
        model.save_weights(path)
    else:
        model.save(path)
    out = tmp_path / "imported"
    assert _import(["--from", "keras", path, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", out]) == 0
    ours = _model(out)
    assert ours.cell_type == {"LSTM": "LSTM", "GRU": "GRU_RESET_AFTER", "GRU_before": "GRU",
                              "SimpleRNN": "RNN"}[layer]
    ids = np.random.default_rng(2).integers(0, V, (2, 7))
    h, logits, jac = _keras_outputs(model, ids)
    states = _states(ours, ids)
    np.testing.assert_allclose(states[-1][-1], h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.logits(tf.constant(states[-1][-1])).numpy(), logits, rtol=0, atol=1e-11)
    scale = np.abs(jac).max()
    for k, g in _engine_jacobians(ours, ids, 1, 6, 5).items():
        np.testing.assert_allclose(g / scale, jac[:, 6 - k] / scale, rtol=0, atol=1e-10)


def _write_cudnn_h5(path, model):
    """A Keras 2 weights-only HDF5 file of `model` (Embedding, 2 LSTM or GRU, Dense) in the CuDNN layout, via h5py.

    Returns the model's weights as the file holds them, in float64: an LSTM bias split into two
    float32 halves sums (in float64, as the import adds them) to the bias up to one float32 rounding.
    """
    emb, rnn1, rnn2, dense = model.layers
    rng = np.random.default_rng(9)
    held = [w.astype(np.float64) for w in model.get_weights()]
    groups = {"embedding": [("embeddings:0", emb.get_weights()[0])],
              "output": [("kernel:0", dense.get_weights()[0]), ("bias:0", dense.get_weights()[1])]}
    for index, (name, layer) in enumerate((("rnn_1", rnn1), ("rnn_2", rnn2))):
        kernel, recurrent, bias = layer.get_weights()
        n_in, n = kernel.shape[0], kernel.shape[1] // H
        # cuDNN reads each gate block in memory order as its [H, I] matrix W = (Keras block)^T
        k_blocks = [blk.T.reshape(n_in, H) for blk in np.split(kernel, n, axis=1)]
        r_blocks = [blk.T for blk in np.split(recurrent, n, axis=1)]
        if bias.ndim == 2:     # GRU reset_after: input and recurrent biases are already apart
            halves = [bias[0], bias[1]]
        else:                  # LSTM: any split of the summed bias
            part = rng.uniform(-0.3, 0.3, bias.shape).astype(np.float32)
            halves = [bias - part, part]
            held[1 + 3 * index + 2] = halves[0].astype(np.float64) + halves[1]
        groups[name] = [("kernel:0", np.concatenate(k_blocks, 1)), ("recurrent_kernel:0", np.concatenate(r_blocks, 1)),
                        ("bias:0", np.concatenate(halves))]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in ("input", "embedding", "rnn_1", "rnn_2", "output")]
        f.attrs["keras_version"] = b"2.1.5"
        f.create_group("input").attrs["weight_names"] = np.array([], dtype=np.float64)
        for name, arrays in groups.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}".encode() for w, _ in arrays]
            for w, value in arrays:
                group.create_dataset(f"{name}/{w}", data=value)
    return held


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_cudnn_layout_hdf5_written_with_h5py(layer, tmp_path):
    model = _keras_model(layer, seed=4)
    path = tmp_path / "cudnn.hdf5"
    held = _write_cudnn_h5(path, model)
    out = tmp_path / "imported"
    assert _import(["--from", "keras", path, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", out]) == 0
    ids = np.random.default_rng(3).integers(0, V, (2, 7))
    h, logits, _ = _keras_outputs(model, ids, held)
    ours = _model(out)
    states = _states(ours, ids)
    np.testing.assert_allclose(states[-1][-1], h, rtol=0, atol=1e-12)
    report = json.loads((out / "import_report.json").read_text())
    assert any("cuDNN" in note for note in report["assumed"]) and any("weights-only" in n for n in report["assumed"])


@pytest.mark.parametrize("options, message", [
    ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation 'hard_sigmoid'"),
    ({"activation": "relu"}, "activation 'relu'"),
    ({"go_backwards": True}, "go_backwards"),
])
def test_keras_activations_and_direction_are_refused(options, message, tmp_path, capsys):
    model = _keras_model("LSTM", activation=options)
    model.save(tmp_path / "m.keras")
    assert _import(["--from", "keras", tmp_path / "m.keras", "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", tmp_path / "o"]) == 1
    assert message in capsys.readouterr().err


def test_keras_mixed_cell_types_are_refused(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, E),
                              keras.layers.LSTM(H, return_sequences=True), keras.layers.GRU(H, return_sequences=True),
                              keras.layers.Dense(V)])
    model.save(tmp_path / "m.keras")
    assert _import(["--from", "keras", tmp_path / "m.keras", "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", tmp_path / "o"]) == 1
    assert "mix cell types (GRU_RESET_AFTER, LSTM)" in capsys.readouterr().err


def test_keras_bidirectional_is_refused(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((None,), dtype="int32"), keras.layers.Embedding(V, E),
                              keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True)),
                              keras.layers.Dense(V)])
    model.save(tmp_path / "m.keras")
    assert _import(["--from", "keras", tmp_path / "m.keras", "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", tmp_path / "o"]) == 1
    assert "bidirectional" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ TF1

def _write_tf1_checkpoint(prefix, cell, seed=0, extra=None):
    """A checkpoint with the original toolkit's variable names (plus Adam slots), written with tf.compat.v1."""
    rng = np.random.default_rng(seed)
    values = {"Model/get_output/embedding": rng.normal(size=(V, E))}
    for layer in range(2):
        scope = f"Model/get_output/lstm/rnn/multi_rnn_cell/cell_{layer}"
        rows = (E if layer == 0 else H) + H
        if cell == "LSTM":
            values[f"{scope}/basic_lstm_cell/kernel"] = rng.uniform(-0.6, 0.6, (rows, 4 * H))
            values[f"{scope}/basic_lstm_cell/bias"] = rng.uniform(-0.4, 0.4, 4 * H)
            values[f"{scope}/basic_lstm_cell/kernel/Adam"] = np.zeros((rows, 4 * H))
            for name, shape in (extra or {}).items():      # e.g. peepholes, a projection
                values[f"{scope}/basic_lstm_cell/{name}"] = np.zeros(shape)
        else:
            values[f"{scope}/gru_cell/gates/kernel"] = rng.uniform(-0.6, 0.6, (rows, 2 * H))
            values[f"{scope}/gru_cell/gates/bias"] = rng.uniform(0.5, 1.5, 2 * H)
            values[f"{scope}/gru_cell/candidate/kernel"] = rng.uniform(-0.6, 0.6, (rows, H))
            values[f"{scope}/gru_cell/candidate/bias"] = rng.uniform(-0.4, 0.4, H)
    values["Model/output_layer_weights/softmax_w"] = rng.normal(size=(H, V))
    values["Model/output_layer_weights/softmax_b"] = rng.normal(size=V)
    values["Model/beta1_power"] = np.float32(0.9)
    values = {k: np.asarray(v, np.float32) for k, v in values.items()}
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(k, initializer=v) for k, v in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix))
    return values


def _original_config(path, cell, forget_bias=0.3):
    path.write_text(f"""save_path x\nlog_dir x\ndata_path x\nvocab False\nbasic_cell {cell}\nnum_layers 2
embedding_size {E}\nsize {H}\nnum_steps 5\ninit_scale 0.05\nbatch_size 1\nforget_bias {forget_bias}
softmax full\n""", encoding="utf-8")
    return path


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_tf1_checkpoint_of_the_original_toolkit(cell, tmp_path):
    values = _write_tf1_checkpoint(tmp_path / "ckpt" / "model", cell)
    out = tmp_path / "imported"
    config = _original_config(tmp_path / "orig.config", cell)
    assert _import(["--from", "tf1", tmp_path / "ckpt", "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", out, "--config", config]) == 0
    # docs/spec.md's TF1 cell maths (tests/numpy_reference) on the checkpoint's own arrays
    scope = "Model/get_output/lstm/rnn/multi_rnn_cell/cell_{}/"
    w = {"cell_type": np.array(cell), "forget_bias": np.float32(0.3 if cell == "LSTM" else 0.0),
         "num_layers": np.int64(2)}
    for layer in range(2):
        s = scope.format(layer)
        if cell == "LSTM":
            w[f"layer{layer}/kernel"], w[f"layer{layer}/bias"] = (values[s + "basic_lstm_cell/" + n] for n in ("kernel", "bias"))
        else:
            for ours, theirs in (("gate_kernel", "gates/kernel"), ("gate_bias", "gates/bias"),
                                 ("cand_kernel", "candidate/kernel"), ("cand_bias", "candidate/bias")):
                w[f"layer{layer}/{ours}"] = values[s + "gru_cell/" + theirs]
    ids = np.random.default_rng(5).integers(0, V, (1, 6))
    trace, _ = ref.run(w, values["Model/get_output/embedding"].astype(np.float64)[ids[0]],
                       [tuple(np.zeros(H) for _ in range(2 if cell == "LSTM" else 1))] * 2)
    model = _model(out)
    states = _states(model, ids)
    np.testing.assert_allclose(states[1][-1][0], np.array([step[1][-1] for step in trace]), atol=1e-12)
    report = json.loads((out / "import_report.json").read_text())
    assert any("optimizer" in note for note in report["assumed"])
    assert "Model/beta1_power" not in json.dumps(report["ignored"])


def test_tf1_peepholes_projections_and_a_missing_forget_bias_are_refused(tmp_path, capsys):
    vocab = sm.write_vocab_lines(tmp_path / "v", _words())
    for folder, extra, message in (("a", {"w_f_diag": H}, "peephole"), ("p", {"projection/kernel": (H, 2)},
                                                                        "projection")):
        _write_tf1_checkpoint(tmp_path / folder / "model", "LSTM", extra=extra)
        assert _import(["--from", "tf1", tmp_path / folder, "--vocab", vocab, "--out", tmp_path / "o",
                        "--forget-bias", "1"]) == 1
        assert message in capsys.readouterr().err
    _write_tf1_checkpoint(tmp_path / "b" / "model", "LSTM")
    assert _import(["--from", "tf1", tmp_path / "b", "--vocab", vocab, "--out", tmp_path / "o"]) == 2
    assert "--config" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ using an import

def _append(config, **keys):
    text = config.read_text(encoding="utf-8") + "".join(f"{k} {v}\n" for k, v in keys.items())
    path = config.parent / "use.config"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_config_runs_main_with_fixed_vocabulary_and_reference(tmp_path, capsys):
    kind = "LSTM"
    sd = sm.torch_lm_state_dict(kind, seed=8)
    words = ["<eos>", "<unk>"] + _words(V - 2)
    source = _write_torch(sd, "pt", tmp_path / "m.pt")
    ids = np.random.default_rng(0).integers(0, V, (2, 9))
    hidden = np.stack([ref.torch_lm(kind, sd, row, 2)[0] for row in ids])
    logits = np.stack([ref.torch_lm(kind, sd, row, 2)[1] for row in ids])
    np.savez(tmp_path / "ref.npz", ids=ids, hidden=hidden.astype(np.float32), logits=logits.astype(np.float32))
    out = tmp_path / "imported"
    assert _import(["--from", "torch", source, "--vocab", sm.write_vocab_lines(tmp_path / "v", words),
                    "--out", out, "--eos-token", "<eos>", "--unk-token", "<unk>", "--reference",
                    tmp_path / "ref.npz"]) == 0
    report = json.loads((out / "import_report.json").read_text())
    assert [c["check"] for c in report["checks"] if c["check"].startswith("reference")] == ["reference hidden",
                                                                                             "reference logits"]
    data = tmp_path / "data"
    data.mkdir()
    # no train.txt: a fixed vocabulary needs none; 'unseen' maps to <unk>
    (data / "valid.txt").write_text(" ".join(words[2:]) + " unseen\n" * 6, encoding="utf-8")
    (data / "test.txt").write_text("w1 w2 w3\n", encoding="utf-8")
    config = _append(out / "import.config", data_path=data, log_dir=tmp_path / "logs", num_steps=5, batch_size=1)
    capsys.readouterr()
    assert main_script.main(["--config", str(config), "--notrain"]) == 0
    text = capsys.readouterr().out
    assert "Restored checkpoint" in text and "Valid Perplexity" in text and "Test Perplexity" in text
    grads = _append(out / "import.config", data_path=data, log_dir=tmp_path / "logs", num_steps=5, batch_size=1,
                    grad_interm="hidden", time_step=4, max_delay=3, grad_dir=tmp_path / "grads",
                    grad_dtype="float64", grad_average=True, grad_dump=False)
    assert main_script.main(["--config", str(grads), "--notrain", "--notest"]) == 0
    assert (tmp_path / "grads" / "delay_2_avg.npy").exists()


def test_no_head_import_gives_gradients_and_refuses_perplexity(tmp_path, capsys):
    sd = sm.torch_lm_state_dict("GRU", seed=2)
    source = _write_torch(sd, "safetensors", tmp_path / "m.safetensors")
    out = tmp_path / "imported"
    assert _import(["--from", "torch", source, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", out, "--no-head"]) == 0
    with np.load(out / "weights.npz") as f:
        assert "softmax_w" not in f.files and "layer1/cand_recurrent_bias" in f.files
    assert "output_layer False" in (out / "import.config").read_text()
    data = tmp_path / "data"
    data.mkdir()
    (data / "valid.txt").write_text((" ".join(_words()) + " ") * 3 + "\n", encoding="utf-8")
    base = dict(data_path=data, log_dir=tmp_path / "logs", num_steps=6, batch_size=1, no_eos=True)
    config = _append(out / "import.config", **base)
    capsys.readouterr()
    assert main_script.main(["--config", str(config), "--notrain", "--notest"]) == 2
    assert "no output layer" in capsys.readouterr().err
    grads = _append(out / "import.config", **base, grad_interm="hidden", time_step="all", max_delay=3,
                    grad_dir=tmp_path / "grads", grad_average=True, grad_dump=False)
    assert main_script.main(["--config", str(grads), "--notrain", "--notest"]) == 0
    assert "no output layer" in capsys.readouterr().out
    assert (tmp_path / "grads" / "delay_2_avg.npy").exists()
    # the measures work on it too: gradient_check's state-gradient part (there is no loss to check)
    assert sg_gradient_check.main(["--config", str(grads), "--windows", "1", "--time-step", "4"]) == 0
    out = capsys.readouterr().out
    assert "(a) state gradients" in out and "(b) skipped: the model has no output layer" in out


def test_failed_check_leaves_only_the_report(tmp_path, monkeypatch):
    sd = sm.torch_lm_state_dict("LSTM", seed=1)
    source = _write_torch(sd, "npz", tmp_path / "m.npz")
    ids = np.random.default_rng(0).integers(0, V, (1, 5))
    h, logits = ref.torch_lm("LSTM", sd, ids[0], 2)
    np.savez(tmp_path / "ref.npz", ids=ids, hidden=h[None] + 0.01)     # not what the model computes
    out = tmp_path / "imported"
    assert _import(["--from", "torch", source, "--vocab", sm.write_vocab_lines(tmp_path / "v", _words()),
                    "--out", out, "--reference", tmp_path / "ref.npz"]) == 1
    assert sorted(os.listdir(out)) == ["import_report.json"]
    report = json.loads((out / "import_report.json").read_text())
    assert report["passed"] is False and [c["passed"] for c in report["checks"]][-1] is False


# ------------------------------------------------------------------------------------ a real file

ENGLISH = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
           "foolishness, it was the epoch of belief, it was the epoch of incredulity. All happy families are "
           "alike; each unhappy family is unhappy in its own way.")


def _lstm(x, kernel, bias):
    """This project's LSTM layer (docs/spec.md §4) in numpy from a zero state: x [T, I] -> h [T, H]."""
    size = kernel.shape[1] // 4
    c, h, out = np.zeros(size), np.zeros(size), []
    for xt in x:
        i, j, f, o = np.split(np.concatenate([xt, h]) @ kernel + bias, 4)
        c = c * ref.sigmoid(f) + ref.sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * ref.sigmoid(o)
        out.append(h)
    return np.array(out)


def _textgenrnn_loss(w, h5_path, ids):
    """Mean next-character loss (nats) of the whole textgenrnn model: the imported LSTM stack in `w`, plus its
    attention head and output layer from the file, on 40-character windows padded in front with id 0."""
    with h5py.File(h5_path, "r") as f:
        att = f["attention/attention/attention_W:0"][()].astype(np.float64)
        out_w, out_b = (f[f"output/output/{n}:0"][()].astype(np.float64) for n in ("kernel", "bias"))
    emb = w["embedding"].astype(np.float64)
    losses = []
    for t in range(10, len(ids)):
        window = ids[max(0, t - 40):t]
        x = emb[[0] * (40 - len(window)) + window]
        h1 = _lstm(x, w["layer0/kernel"], w["layer0/bias"])
        h2 = _lstm(h1, w["layer1/kernel"], w["layer1/bias"])
        seq = np.concatenate([x, h1, h2], axis=1)              # textgenrnn's rnn_concat
        a = np.exp((seq @ att)[:, 0] - (seq @ att).max())
        a = a / (a.sum() + 1e-7)                               # AttentionWeightedAverage (K.epsilon)
        losses.append(-ref.log_softmax((seq * a[:, None]).sum(0) @ out_w + out_b)[ids[t]])
    return float(np.mean(losses))


def test_textgenrnn_real_cudnn_file(textgenrnn_dir, tmp_path, capsys):
    h5_path = textgenrnn_dir / "textgenrnn_weights.hdf5"
    vocab = json.loads((textgenrnn_dir / "textgenrnn_vocab.json").read_text(encoding="utf-8"))
    out = tmp_path / "textgenrnn"
    assert _import(["--from", "keras", h5_path, "--vocab", textgenrnn_dir / "textgenrnn_vocab.json", "--out", out,
                    "--no-head"]) == 0
    with np.load(out / "weights.npz") as f:
        w = {k: f[k] for k in f.files}
    ids = [vocab[ch] for ch in ENGLISH]
    right = _textgenrnn_loss(w, h5_path, ids)
    assert right < 2.0
    # a wrong gate order (f and j swapped) and the plain Keras reading of the cuDNN blocks both fail
    swapped = dict(w)
    for layer in range(2):
        for name in ("kernel", "bias"):
            i, j, f, o = np.split(w[f"layer{layer}/{name}"], 4, axis=-1)
            swapped[f"layer{layer}/{name}"] = np.concatenate([i, f, j, o], axis=-1)
    plain = dict(w)
    with h5py.File(h5_path, "r") as f:
        for layer, name in enumerate(("rnn_1", "rnn_2")):
            kernel, recurrent, bias = (f[f"{name}/{name}/{n}:0"][()] for n in ("kernel", "recurrent_kernel", "bias"))
            bias = bias[:512] + bias[512:]
            blocks = [np.concatenate([k, r], 0) for k, r in zip(np.split(kernel, 4, 1), np.split(recurrent, 4, 1))]
            plain[f"layer{layer}/kernel"] = np.concatenate([blocks[g] for g in (0, 2, 1, 3)], 1)
            plain[f"layer{layer}/bias"] = np.concatenate([np.split(bias, 4)[g] for g in (0, 2, 1, 3)])
    assert _textgenrnn_loss(swapped, h5_path, ids) > 5.0
    assert _textgenrnn_loss(plain, h5_path, ids) > 5.0
    # state gradients of the second layer on a short text, through main.py and the import's config
    data = tmp_path / "data"
    data.mkdir()
    names = [line.split("\t")[0] for line in (out / "dict").read_text(encoding="utf-8").splitlines()]
    tokens = [names[i] for i in ids]
    (data / "valid.txt").write_text(" ".join(tokens), encoding="utf-8")
    config = _append(out / "import.config", data_path=data, log_dir=tmp_path / "logs", num_steps=20, batch_size=1,
                     no_eos=True, valid_batches=1, grad_interm="hidden", grad_layer=1, time_step=19, max_delay=4,
                     grad_dir=tmp_path / "grads", grad_dtype="float64", grad_average=True, grad_dump=False)
    assert main_script.main(["--config", str(config), "--notrain", "--notest"]) == 0
    x = w["embedding"][ids[:20]].astype(np.float64)
    for k in range(4):
        fd = np.zeros((128, 100))
        for e in range(100):
            plus, minus = x.copy(), x.copy()
            plus[19 - k, e] += 1e-6
            minus[19 - k, e] -= 1e-6
            top = [_lstm(_lstm(v, w["layer0/kernel"], w["layer0/bias"]), w["layer1/kernel"], w["layer1/bias"])[19]
                   for v in (plus, minus)]
            fd[:, e] = (top[0] - top[1]) / 2e-6
        got = np.load(tmp_path / "grads" / f"delay_{k}_avg.npy")
        np.testing.assert_allclose(got, fd, rtol=0, atol=1e-7 * max(1.0, np.abs(fd).max()))
