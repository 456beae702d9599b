"""The gradient pass: the original's files, numbering, averages, resume and the disk guard."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from state_gradients.core import lm_data
from state_gradients.core.configuration import config_from_dict
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis
from state_gradients.models.lm import LanguageModel
from state_gradients.passes import gradient_pass
from tests import numpy_reference as ref

from tests.tiny_corpus import TAGS


@pytest.fixture
def setup(tiny_tagged_corpus):
    tmp_path = tiny_tagged_corpus(valid_lines=12, class_ext=".txt")
    data = tmp_path / "data"

    def make(cell="LSTM", layers=1, **keys):
        values = dict(save_path=str(tmp_path / "model"), log_dir=str(tmp_path / "logs"), data_path=str(data),
                      vocab=False, batch_size=1, num_steps=7, size=4, embedding_size=3, basic_cell=cell,
                      num_layers=layers, init_scale=0.5, softmax="full", forget_bias=0.2,
                      grad_interm="cell", time_step=6, max_delay=5, grad_dir=str(tmp_path / "grads"),
                      grad_dtype="float64")
        values.update(keys)
        config = config_from_dict(values, train=False)
        corpus = lm_data.load_corpus(config, need_train=True, need_valid=True, need_test=False)
        model = LanguageModel.from_config(config, corpus.vocab_size)
        weights = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in model.weights_numpy().items()}
        return config, corpus, model, weights
    return make, tmp_path


def _numpy_gradients(weights, corpus, batch, steps, layer, comp, time_steps, max_delay):
    """{(n, t, k): G} by float64 finite differences, windows in pass order with the state carried."""
    inputs, _ = lm_data.make_windows(corpus.valid, batch, steps)
    emb = weights["embedding"]
    out = {}
    for r in range(batch):
        state = ref.zero_state(weights)
        for i in range(inputs.shape[0]):
            xs = emb[inputs[i, r]]
            for t in time_steps:
                for k, g in ref.tangent_gradients(weights, xs, state, layer, comp, t, max_delay).items():
                    out[(i * batch + r, t, k)] = g
            _, state = ref.run(weights, xs, state)
    return out


def _close(a, b, scale):
    return np.abs(a - b).max() <= 1e-5 * scale


def test_single_time_step_files_match_numpy(setup):
    make, tmp = setup
    config, corpus, model, w = make()
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    grads = tmp / "grads"
    expected = _numpy_gradients(w, corpus, 1, 7, 0, 0, [6], 5)
    inputs, _ = lm_data.make_windows(corpus.valid, 1, 7)
    n_windows = inputs.shape[0]
    assert sorted(os.listdir(grads)) == sorted([f"delay_{k}" for k in range(5)] + ["grad_progress.json"])
    for k in range(5):
        folder = grads / f"delay_{k}"
        assert sorted(os.listdir(folder)) == sorted([f"{n}.npy" for n in range(n_windows)] + ["mapping.txt"])
        lines = (folder / "mapping.txt").read_text().splitlines()
        assert len(lines) == n_windows
        for n in range(n_windows):
            g = np.load(folder / f"{n}.npy")
            assert g.dtype == np.float32 and g.shape == (4, 3)
            assert _close(g, expected[(n, 6, k)], np.abs(expected[(n, 6, 0)]).max())
            words = [corpus.id_to_word[i] for i in inputs[n, 0, 6 - k:7]]
            assert lines[n] == f"{n}\t{words[0]}\t{'-'.join(words)}-"


def test_all_time_steps_batch3_dump_and_averages_match_numpy(setup):
    make, tmp = setup
    config, corpus, model, w = make(cell="GRU", batch_size=3, time_step="all", max_delay=3, grad_average=True,
                                    pos_mapping=str(tmp / "pos_mapping.txt"),
                                    pos_classes=f"{tmp / 'nouns.txt'},{tmp / 'verbs.txt'}")
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    grads = tmp / "grads"
    expected = _numpy_gradients(w, corpus, 3, 7, 0, 0, range(7), 3)
    inputs, _ = lm_data.make_windows(corpus.valid, 3, 7)
    sums = {}
    for (n, t, k), g in expected.items():
        got = np.load(grads / f"timestep_{t}" / f"delay_{k}" / f"{n}.npy")
        assert _close(got, g, np.abs(expected[(n, t, 0)]).max()), (n, t, k)
        word = corpus.id_to_word[inputs[n // 3, n % 3, t - k]]
        for cls, tags in [(None, None), ("nouns", {"NN", "NNS"}), ("verbs", {"VBD"})]:
            if tags is None or TAGS.get(word) in tags:
                sums.setdefault((k, cls), []).append(g)
    for (k, cls), mats in sums.items():
        avg = np.load(analysis.average_path(str(grads), k, cls))
        assert _close(avg, np.mean(mats, axis=0), np.abs(avg).max())
        assert int(open(analysis.count_path(str(grads), k, cls)).read()) == len(mats)
        # the analysis script's average of the dump agrees with the streaming one
        overall, _, _ = analysis.average_gradients(str(grads), k)
        offline, _, _ = analysis.average_gradients(str(grads), k, classes={"nouns": {"NN", "NNS"}},
                                                   pos_mapping=analysis.read_pos_mapping(str(tmp / "pos_mapping.txt")))
        np.testing.assert_allclose(np.load(analysis.average_path(str(grads), k)), overall[None], atol=1e-6)
        np.testing.assert_allclose(np.load(analysis.average_path(str(grads), k, "nouns")), offline["nouns"], atol=1e-6)


def test_streaming_only_equals_dumped_averages(setup):
    make, tmp = setup
    common = dict(batch_size=2, time_step="2-6", max_delay=4, grad_average=True, grad_dtype="float32",
                  pos_mapping=str(tmp / "pos_mapping.txt"), pos_classes=str(tmp / "nouns.txt"))
    config, corpus, model, _ = make(layers=2, **common)
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    config2, corpus2, model2, _ = make(layers=2, grad_dump=False, grad_dir=str(tmp / "grads2"), **common)
    gradient_pass.run_gradient_pass(config2, model2, corpus2, log=lambda s: None)
    assert not any(name.startswith("timestep_") for name in os.listdir(tmp / "grads2"))
    for k in range(4):
        for cls in (None, "nouns"):
            want = np.load(analysis.average_path(str(tmp / "grads"), k, cls))
            # float32 engine: streaming adds a window's <= B*T matrices in float32 first, (B*T - 1) u of the
            # largest entry, and both files round to float32 once
            tol = (2 * config.num_steps + 1) * 2.0 ** -24 * np.abs(want).max()
            np.testing.assert_allclose(np.load(analysis.average_path(str(tmp / "grads2"), k, cls)), want, rtol=0,
                                       atol=tol)


def _snapshot(root):
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if name.endswith(".npy"):
                files[rel] = np.load(path)
            elif name.endswith(".txt"):
                files[rel] = open(path).read()
    return files


def test_interrupted_run_resumes_to_the_same_output(setup, monkeypatch):
    make, tmp = setup
    keys = dict(time_step="3-6", max_delay=3, grad_average=True, grad_dtype="float32",
                pos_mapping=str(tmp / "pos_mapping.txt"), pos_classes=str(tmp / "nouns.txt"))
    config, corpus, model, _ = make(grad_dir=str(tmp / "whole"), **keys)
    ppl = gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)

    config, corpus, model, _ = make(grad_dir=str(tmp / "cut"), **keys)
    real_write, calls = gradient_pass.GradientDump.write, []

    def failing_write(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(self, *args)

    monkeypatch.setattr(gradient_pass.GradientDump, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, checkpoint_seconds=0)
    progress = json.load(open(tmp / "cut" / "grad_progress.json"))
    assert progress["batches_done"] == 2 and not progress["complete"]
    monkeypatch.setattr(gradient_pass.GradientDump, "write", real_write)
    logged = []
    ppl2 = gradient_pass.run_gradient_pass(config, model, corpus, log=logged.append)
    assert any("Resuming" in line for line in logged)
    assert ppl2 == pytest.approx(ppl, rel=1e-6)
    whole, cut = _snapshot(tmp / "whole"), _snapshot(tmp / "cut")
    assert sorted(whole) == sorted(cut)
    for name in whole:
        if isinstance(whole[name], str):
            assert whole[name] == cut[name], name
        else:
            np.testing.assert_allclose(whole[name], cut[name], atol=1e-7, err_msg=name)
    # a different setting in the same grad_dir is refused
    config3, corpus3, model3, _ = make(grad_dir=str(tmp / "cut"), **dict(keys, max_delay=2))
    with pytest.raises(UserError, match="different"):
        gradient_pass.run_gradient_pass(config3, model3, corpus3, log=lambda s: None)


def test_disk_guard_refuses_and_writes_nothing(setup, monkeypatch):
    make, tmp = setup
    config, corpus, model, _ = make(time_step="all")
    monkeypatch.setattr(gradient_pass, "free_bytes", lambda path: 1000)
    with pytest.raises(UserError, match="free"):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    assert not (tmp / "grads").exists()


def test_estimate_matches_bytes_written(setup):
    make, tmp = setup
    config, corpus, model, _ = make(time_step="all", max_delay=4, grad_dtype="float32")
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    written = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp / "grads") for f in fs)
    n = lm_data.make_windows(corpus.valid, 1, 7)[0].shape[0]
    estimate = gradient_pass.estimate_bytes(n, range(7), 4, 4, 3, True, 0)
    assert 0.7 * written <= estimate <= 1.5 * written


def test_valid_batches_and_class_folder(setup):
    """valid_batches N: the first N windows only; a pos_classes folder: each of its .txt class files."""
    make, tmp = setup
    folder = tmp / "classes"
    folder.mkdir()
    (folder / "nouns.txt").write_text("NN\n")
    (folder / "verbs.txt").write_text("VBD\n")
    (folder / "notes.md").write_text("not a class file\n")
    config, corpus, model, weights = make(time_step="all", max_delay=3, grad_average=True, grad_dump=False,
                                          valid_batches=2, pos_mapping=str(tmp / "pos_mapping.txt"),
                                          pos_classes=str(folder))
    assert [os.path.basename(p) for p in config.pos_class_files()] == ["nouns.txt", "verbs.txt"]
    gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    assert int(open(analysis.count_path(str(tmp / "grads"), 0)).read()) == 2 * 7      # 2 windows x T 7
    assert int(open(analysis.count_path(str(tmp / "grads"), 2)).read()) == 2 * 5      # t >= 2
    full = _numpy_gradients(weights, corpus, 1, 7, 0, 0, list(range(7)), 3)   # layer 0, cell state
    want = np.mean([g for (n, t, k), g in full.items() if n < 2 and k == 1], axis=0)
    np.testing.assert_allclose(np.load(analysis.average_path(str(tmp / "grads"), 1)), want, atol=1e-6)
    inputs = lm_data.make_windows(corpus.valid, 1, 7)[0]
    nouns = {w for w, t in TAGS.items() if t == "NN"}
    n_nouns = sum(corpus.id_to_word[w] in nouns for w in inputs[:2, 0].ravel())
    assert int(open(analysis.count_path(str(tmp / "grads"), 0, "nouns")).read()) == n_nouns
    (folder / "nouns.txt").unlink()
    (folder / "verbs.txt").unlink()
    with pytest.raises(UserError, match="holds no .txt class files"):
        config.pos_class_files()


def test_interrupted_pass_of_a_model_without_output_layer_resumes(setup, monkeypatch):
    # such a model records no loss (loss_sum None); resuming must not trip over it
    make, tmp = setup
    config, corpus, model, _ = make(output_layer=False, time_step="3-6", max_delay=3)
    real_write, calls = gradient_pass.GradientDump.write, []

    def failing_write(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(self, *args)

    monkeypatch.setattr(gradient_pass.GradientDump, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None, checkpoint_seconds=0)
    progress = json.load(open(tmp / "grads" / "grad_progress.json"))
    assert progress["batches_done"] == 2 and progress["loss_sum"] is None
    monkeypatch.setattr(gradient_pass.GradientDump, "write", real_write)
    logged = []
    assert gradient_pass.run_gradient_pass(config, model, corpus, log=logged.append) is None
    assert any("Resuming" in line for line in logged) and any("no output layer" in line for line in logged)
    assert json.load(open(tmp / "grads" / "grad_progress.json"))["complete"]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_the_state_is_carried_in_float64_whatever_the_engine_dtype(setup, cell):
    """A float32 pass carries the state (and sums the loss) in float64: the float64 pass's perplexity exactly,
    and the entering states of the numpy float64 reference (a float32-carried state differs by ~1e-7)."""
    make, tmp = setup
    perplexity = {}
    for dtype in ("float32", "float64"):
        config, corpus, model, w = make(cell, layers=2, grad_dtype=dtype, grad_dump=False, grad_average=True,
                                        grad_dir=str(tmp / f"grads_{dtype}"))
        perplexity[dtype] = gradient_pass.run_gradient_pass(config, model, corpus, log=lambda s: None)
    assert perplexity["float32"] == perplexity["float64"]
    inputs, targets = lm_data.make_windows(corpus.valid, 1, 7)
    states = gradient_pass.entering_states(model, inputs, targets)
    weights = ref.float64_weights(model.copy(tf.float64))
    state = ref.zero_state(weights)
    for i in range(inputs.shape[0]):
        for layer in range(2):
            for c, want in enumerate(state[layer]):
                np.testing.assert_allclose(states[f"layer{layer}_{c}"][i, 0], want, rtol=0, atol=1e-14)
        state = ref.run(weights, weights["embedding"][inputs[i, 0]], state)[1]
