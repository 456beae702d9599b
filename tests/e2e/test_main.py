"""main.py end to end, in process, on tiny generated corpora and a slice of PTB."""
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from state_gradients.core import configuration, lm_data
from state_gradients.models.lm import LanguageModel
from state_gradients.training import trainer
from tests import numpy_reference as ref
from tests.main_runs import BASE, SIZES, WORDS, number, run, write_config, write_corpus

def numpy_perplexity(save_path, data, split, batch_size, num_steps):
    """Perplexity recomputed in numpy from save_path/weights.npz and save_path/dict."""
    w = ref.load_weights(os.path.join(save_path, "weights.npz"))
    word_to_id = lm_data.read_vocab_file(os.path.join(save_path, "dict"))
    ids = lm_data.words_to_ids(lm_data.read_words(os.path.join(data, f"{split}.txt")), word_to_id)
    return ref.perplexity(w, ids, batch_size, num_steps)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"])
def test_train_two_epochs_then_evaluate(tmp_path, capsys, monkeypatch, cell):
    write_corpus(tmp_path / "data")
    monkeypatch.chdir(tmp_path)   # relative paths in a config are relative to the working directory
    config = tmp_path / "rel.config"
    config.write_text("save_path models/rel/\nlog_dir logs\ndata_path data\n"
                      + "".join(f"{k} {v}\n" for k, v in {**BASE, "basic_cell": cell}.items()), encoding="utf-8")
    code, out, err = run(capsys, "--config", "rel.config", "--device", "cpu")
    assert code == 0, err
    save = tmp_path / "models" / "rel"
    log = (tmp_path / "logs" / "rel.log").read_text(encoding="utf-8")
    lines, printed = log.splitlines(), out.splitlines()
    assert set(printed) <= set(lines)   # everything printed is logged
    assert lines[0] == "configuration:" and f"basic_cell\t{cell}" in lines
    # the terminal gets the one-line summary, the log file the full configuration
    assert f"basic_cell\t{cell}" not in printed
    assert any(ln.startswith(f"rel.config: {cell}, 2 layers of 8 (embedding 6)") and ln.endswith("rel.log") for ln in printed)
    for expected in ("Learning rate: 0.5", "Learning rate: 0.25", "Start testing..."):
        assert expected in lines
    assert [ln.split(" Train")[0] for ln in lines if " Train Perplexity: " in ln] == ["Epoch: 1", "Epoch: 2"]
    for name in ("checkpoint", "epoch-1.index", "epoch-2.index", "weights.npz", "dict", "labels.tsv",
                 "config.resolved"):
        assert (save / name).exists(), name
    events = [e for f in os.listdir(save / "train")
              for e in tf.compat.v1.train.summary_iterator(str(save / "train" / f))]   # TensorBoard
    logged = {(v.tag, e.step): float(tf.make_ndarray(v.tensor)) for e in events for v in e.summary.value}
    assert logged[("epoch/valid_perplexity", 2)] == pytest.approx(number(out, "Epoch: 2 Valid Perplexity:"))
    assert logged[("epoch/learning_rate", 2)] == 0.25
    assert (save / "labels.tsv").read_text().splitlines() == lm_data.id_list(lm_data.read_vocab_file(save / "dict"))
    resolved = configuration.load_config(save / "config.resolved")
    assert resolved.items() == configuration.load_config(config).items()

    valid = number(out, "Epoch: 2 Valid Perplexity:")
    test = number(out, "Test Perplexity:")
    assert valid == pytest.approx(numpy_perplexity(save, "data", "valid", 3, 4), rel=1e-5)
    assert test == pytest.approx(numpy_perplexity(save, "data", "test", 1, 1), rel=1e-5)

    code, out, err = run(capsys, "--config", "rel.config", "--notrain")
    assert code == 0, err
    assert "Restored checkpoint models/rel/epoch-2" in out
    assert number(out, "Valid Perplexity:") == pytest.approx(valid, rel=1e-12)
    assert number(out, "Test Perplexity:") == pytest.approx(test, rel=1e-12)
    # a second run never overwrites the first log
    assert (tmp_path / "logs" / "rel.log").read_text(encoding="utf-8") == log
    assert len(os.listdir(tmp_path / "logs")) == 2


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_continues_like_an_uninterrupted_run(tmp_path, capsys, optimizer):
    keys = dict(optimizer=optimizer, learning_rate=0.5 if optimizer == "sgd" else 0.01, dropout=0.8)
    straight = write_config(tmp_path, "straight", **keys)
    code, log, _ = run(capsys, "--config", straight, "--notest")
    assert code == 0

    first = write_config(tmp_path, "resumed", **keys, max_max_epoch=1)
    code, out, _ = run(capsys, "--config", first, "--notest")
    assert code == 0 and "Epoch: 2" not in out
    second = write_config(tmp_path, "resumed", **keys)   # same save_path, max_max_epoch 2
    code, out, _ = run(capsys, "--config", second, "--notest")
    assert code == 0
    assert "Epoch: 1 " not in out and "Restored checkpoint" in out
    lr = "0.25" if optimizer == "sgd" else "0.01"   # sgd: lr_decay 0.5 after max_epoch 1; adam: constant
    assert f"Learning rate: {lr}" in out.splitlines()
    for label in ("Epoch: 2 Train Perplexity:", "Epoch: 2 Valid Perplexity:"):
        assert number(out, label) == number(log, label)   # generator, slots and counters restored
    code, out, _ = run(capsys, "--config", second, "--notest")
    assert code == 0 and "2 epoch(s) done, max_max_epoch is 2: nothing to train" in out


def test_train_without_valid_is_an_error(tmp_path, capsys):
    code, out, err = run(capsys, "--config", write_config(tmp_path), "--novalid")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("main.py: error: ")
    assert "training and validation are always combined" in err


def test_notrain_needs_a_checkpoint_unless_fresh_weights(tmp_path, capsys):
    config = write_config(tmp_path, "fresh")
    for flag in ("--notrain", "--export_weights"):
        code, _, err = run(capsys, "--config", config, flag)
        assert code == 2 and "no checkpoint and no weights.npz in save_path" in err and "--fresh_weights" in err
    assert run(capsys, "--config", config, "--fresh_weights")[0] == 2   # training cannot take it

    code, out, err = run(capsys, "--config", config, "--notrain", "--fresh_weights")
    assert code == 0, err
    labels = (tmp_path / "models" / "fresh" / "labels.tsv").read_text().split()
    word_to_id = {w: i for i, w in enumerate(labels)}
    initial = LanguageModel.from_config(configuration.load_config(config), len(labels))  # seeded weights
    ids = lm_data.words_to_ids(lm_data.read_words(tmp_path / "data" / "valid.txt"), word_to_id)
    assert number(out, "Valid Perplexity:") == pytest.approx(
        ref.perplexity(initial.weights_numpy(), ids, 3, 4), rel=1e-5)


def test_save_embedding_and_export_weights(tmp_path, capsys):
    config = write_config(tmp_path, "emb", max_max_epoch=1)
    assert run(capsys, "--config", config, "--notest")[0] == 0
    save = tmp_path / "models" / "emb"
    with np.load(save / "weights.npz") as f:
        trained = {k: f[k] for k in f.files}

    target = tmp_path / "out" / "deep" / "emb.npy"
    words = tmp_path / "out" / "words.dict"
    emb_config = write_config(tmp_path, "emb", max_max_epoch=1, save_embedding=target, save_dict=words)
    code, out, err = run(capsys, "--config", emb_config, "--notrain", "--novalid")
    assert code == 0, err
    assert words.read_text() == (save / "dict").read_text()   # save_dict: the word->id map
    matrix = np.load(target, allow_pickle=False)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, trained["embedding"])
    assert "Perplexity" not in out   # stops before any pass

    os.remove(save / "weights.npz")
    code, out, err = run(capsys, "--config", config, "--export_weights")
    assert code == 0, err
    with np.load(save / "weights.npz") as f:
        assert set(f.files) == set(trained)
        for k in f.files:
            np.testing.assert_array_equal(f[k], trained[k])
    assert "Perplexity" not in out


@pytest.mark.parametrize("keys", [dict(softmax="sampled", optimizer="adam", learning_rate=0.02),
                                  dict(optimizer="adam", learning_rate=0.02),
                                  dict(optimizer="adagrad", learning_rate=0.5)])
def test_sampled_softmax_adam_and_adagrad_train(tmp_path, capsys, keys):
    """The printed training perplexity decreases (with sampled softmax: exp of the sampled loss),
    and sampled-softmax training also lowers the full-softmax validation perplexity."""
    config = write_config(tmp_path, max_max_epoch=3, lr_decay=None, max_epoch=None, dropout=1, **keys)
    code, out, err = run(capsys, "--config", config, "--notest")
    assert code == 0, err
    train = [number(out, f"Epoch: {i} Train Perplexity:") for i in (1, 2, 3)]
    valid = [number(out, f"Epoch: {i} Valid Perplexity:") for i in (1, 2, 3)]
    assert train[2] < train[1] < train[0]
    if "softmax" in keys:
        assert valid[2] < valid[1] < valid[0]


def test_early_stopping_stops_and_saves_inside_save_path(tmp_path, capsys):
    # max_grad_norm 1e-30: updates far below float32 resolution, so every validation perplexity is
    # equal, i.e. "not lower": early_stop 2 stops after epoch 3 (two comparisons at epoch 3)
    config = write_config(tmp_path, "es", trainer="earlyStopping", early_stop=2, max_max_epoch=6,
                          max_grad_norm=1e-30, dropout=1)
    code, out, err = run(capsys, "--config", config, "--notest")
    assert code == 0, err
    valid = [number(out, f"Epoch: {i} Valid Perplexity:") for i in (1, 2, 3)]
    assert valid[0] == valid[1] == valid[2] and "Epoch: 4" not in out
    save = tmp_path / "models" / "es"
    assert (save / "es.1.index").exists() and (save / "es.2.index").exists()
    assert not (save / "es.3.index").exists()   # the stopping epoch is not saved as a model
    assert not [p for p in os.listdir(tmp_path / "models") if p.startswith("es.")]
    assert "Early stopping after epoch 3" in out
    code, out, _ = run(capsys, "--config", config, "--notest")
    assert code == 0 and "Epoch:" not in out and "Training was stopped by earlyStopping after epoch 3" in out


def test_fixed_pretrained_embeddings_stay_unchanged(tmp_path, capsys):
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    rng = np.random.default_rng(5)
    known = WORDS[:30] + ["not_in_vocab"]
    vectors = rng.normal(size=(len(known), 6)).astype(np.float32)
    np.save(pretrained / "all.npy", vectors)
    (pretrained / "dict").write_text("".join(f"{w}\t{i}\n" for i, w in enumerate(known)))
    config = write_config(tmp_path, "pre", pretrained_embeddings=pretrained, max_max_epoch=1)
    code, out, err = run(capsys, "--config", config, "--notest")
    assert code == 0, err
    save = tmp_path / "models" / "pre"
    word_to_id = lm_data.read_vocab_file(save / "dict")
    assert f"Warning: {len(word_to_id) - 30} of {len(word_to_id)} vocabulary words are not in" in out
    initial = LanguageModel.from_config(configuration.load_config(config), len(word_to_id))
    expected = initial.embedding.numpy()
    for row, word in enumerate(known[:30]):
        expected[word_to_id[word]] = vectors[row]
    w = ref.load_weights(save / "weights.npz")
    np.testing.assert_array_equal(w["embedding"], expected)
    assert not np.array_equal(w["softmax_w"], initial.softmax_w.numpy())   # the rest did train
    assert "embedding" not in re.search(r"Trainable variables: (.*)", out).group(1)


def test_ptb_slice_validation_perplexity_drops(tmp_path, capsys, ptb_dir):
    data = tmp_path / "ptb"
    data.mkdir()
    for split in ("train", "valid", "test"):
        kept, count = [], 0
        for line in (ptb_dir / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            if count >= 20000:
                break
            kept.append(line)
            count += len(line.split()) + 1
        (data / f"{split}.txt").write_text("\n".join(kept) + "\n", encoding="utf-8")
    config = write_config(tmp_path, "ptb", data=data, num_layers=1, embedding_size=16, size=32, num_steps=20,
                          batch_size=20, dropout=1, lr_decay=None, max_epoch=None, init_scale=0.1)
    code, out, err = run(capsys, "--config", config, "--notest")
    assert code == 0, err
    assert number(out, "Epoch: 2 Valid Perplexity:") < number(out, "Epoch: 1 Valid Perplexity:")


def test_notrain_with_grad_interm_runs_the_gradient_pass_instead_of_validation(tmp_path, capsys, monkeypatch):
    from state_gradients.passes import gradient_pass

    calls = []

    def fake_pass(config, model, corpus, log, shard=None):
        calls.append((config.grad_interm, model.vocab_size, corpus.vocab_size, len(corpus.valid)))
        log("Valid Perplexity: 1.5")

    monkeypatch.setattr(gradient_pass, "run_gradient_pass", fake_pass)
    config = write_config(tmp_path, "grad", grad_interm="hidden", time_step=1, max_delay=2,
                          grad_dir=tmp_path / "grads")
    code, out, err = run(capsys, "--config", config, "--notrain", "--notest", "--fresh_weights")
    assert code == 0, err
    assert calls == [("hidden", 43, 43, SIZES["valid"] + SIZES["valid"] // 10)]   # 40 words + <eos> <unk> <bos>
    assert "Start validating..." not in out and "Valid Perplexity: 1.5" in out.splitlines()


def test_random_true_unseeds_dropout(tmp_path, capsys):
    """Without `random` two runs are identical (see the resume test); with `random True` dropout differs."""
    ppls = []
    for name in ("r1", "r2"):
        config = write_config(tmp_path, name, random=True, dropout=0.5, max_max_epoch=1)
        code, out, err = run(capsys, "--config", config, "--notest")
        assert code == 0, err
        ppls.append(number(out, "Epoch: 1 Train Perplexity:"))
    assert ppls[0] != ppls[1]


def test_too_short_data_names_the_file(tmp_path, capsys):
    config = write_config(tmp_path, "short")
    (tmp_path / "data" / "valid.txt").write_text("the\n")
    code, _, err = run(capsys, "--config", config, "--notrain", "--fresh_weights", "--notest")
    assert code == 2 and f"validation data {tmp_path / 'data' / 'valid.txt'} (2 ids) is too short" in err
    (tmp_path / "data" / "train.txt").write_text("")
    code, _, err = run(capsys, "--config", config)
    assert code == 2 and str(tmp_path / "data" / "train.txt") in err


def _trained_weights(save_path):
    with np.load(save_path / "weights.npz") as f:
        return {k: f[k] for k in f.files}


def test_seed_default_reproduces_and_another_seed_changes_weights_and_dropout(tmp_path, capsys):
    """No seed key and `seed 1` train bit-identical weights (every run before the key used 1); seed 2 changes
    the initial weights (--fresh_weights) and the dropout masks (the same initial weights, other updates)."""
    weights = {}
    for name, seed in (("default", None), ("one", 1), ("two", 2)):
        code, _, err = run(capsys, "--config", write_config(tmp_path, name, seed=seed, max_max_epoch=1), "--notest")
        assert code == 0, err
        weights[name] = _trained_weights(tmp_path / "models" / name)
    for key, value in weights["default"].items():
        np.testing.assert_array_equal(weights["one"][key], value, err_msg=key)
    assert not np.array_equal(weights["two"]["embedding"], weights["default"]["embedding"])
    initial = {}
    for name, seed in (("i1", 1), ("i2", 2)):
        config = configuration.load_config(str(write_config(tmp_path, name, seed=seed)), train=False)
        initial[name] = LanguageModel.from_config(config, 40).embedding.numpy()
    assert not np.array_equal(initial["i1"], initial["i2"])
    generators = [trainer.make_generator(configuration.load_config(str(write_config(tmp_path, n, seed=s)),
                                                                   train=False)) for n, s in (("g", None), ("g2", 2))]
    assert not np.array_equal(*(g.make_seeds(1).numpy() for g in generators))     # dropout masks and samples


def test_seed_with_random_is_refused_and_another_seed_does_not_resume(tmp_path, capsys):
    code, _, err = run(capsys, "--config", write_config(tmp_path, "r", seed=3, random=True), "--notest")
    assert code == 2 and "r.config line" in err and "seed and random True exclude each other" in err
    random_config = configuration.load_config(str(write_config(tmp_path, "r", random=True)), train=False)
    random_config.save(str(tmp_path / "resolved.config"))            # a resolved random config reads back
    assert configuration.load_config(str(tmp_path / "resolved.config"), train=False).random
    code, _, err = run(capsys, "--config", write_config(tmp_path, "s", seed=2, max_max_epoch=1), "--notest")
    assert code == 0, err
    code, out, err = run(capsys, "--config", write_config(tmp_path, "s", seed=3, max_max_epoch=2), "--notest")
    assert code == 2 and "holds a model trained with seed 2" in err and "this config says seed 3" in err
    assert "Start training epoch" not in out
    code, out, err = run(capsys, "--config", write_config(tmp_path, "s", seed=2, max_max_epoch=2), "--notest")
    assert code == 0 and "(1 epoch(s) done)" in out, err


def test_a_checkpoint_from_before_the_seed_key_counts_as_seed_1(tmp_path, capsys, ptb_dir):
    """The shared paper model was trained before the key existed: seed 1 resumes it, seed 2 is refused."""
    import shutil

    from tests.conftest import REPO, SHARED_MODELS

    source = SHARED_MODELS / "ptb-norm-wsj_64e_256h_steps200"
    if not (source / "checkpoint").exists():
        pytest.skip(f"no checkpoint in {source}")
    save = tmp_path / "paper"
    save.mkdir()
    for name in os.listdir(source):
        if name == "checkpoint" or name.startswith("epoch-39."):
            shutil.copy(source / name, save / name)
    overrides = dict(save_path=save, log_dir=tmp_path / "logs", data_path=ptb_dir, max_max_epoch=39)
    text = (REPO / "config" / "ptb-norm-wsj_64e_256h_steps200.config").read_text(encoding="utf-8")
    for seed, code_wanted, said in ((2, 2, "trained with seed 1"), (1, 0, "39 epoch(s) done, max_max_epoch is 39")):
        path = tmp_path / f"paper{seed}.config"
        path.write_text(text + "".join(f"\n{k} {v}" for k, v in {**overrides, "seed": seed}.items()) + "\n")
        code, out, err = run(capsys, "--config", path, "--notest")
        assert code == code_wanted and said in out + err, err[-500:]
