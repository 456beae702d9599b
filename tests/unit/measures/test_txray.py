"""TX-Ray: Hellinger distances, unit-feature mass, identical and unit-permuted models, the CLI end to end."""
import csv
import math

import numpy as np
import pytest
import tensorflow as tf

from aux_scripts import txray as sg_txray
from state_gradients.core import configuration, lm_data
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import txray
from state_gradients.models.lm import LanguageModel
from state_gradients.training import run_epoch

H, E = 6, 4
PERM = np.array([3, 0, 5, 1, 2, 4])   # no fixed point: every unit moves


# ------------------------------------------------------------------------------ numpy functions

def test_hellinger_hand_computed():
    assert txray.hellinger([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert txray.hellinger([0.3, 0.7], [0.3, 0.7]) == 0.0
    assert txray.hellinger([0.5, 0.5], [1.0, 0.0]) == pytest.approx(math.sqrt(1 - math.sqrt(0.5)))
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.4, 0.0])
    assert txray.hellinger(p, q) == pytest.approx(math.sqrt(1 - (math.sqrt(0.12) + math.sqrt(0.12))))
    # row-wise, NaN for a row without a distribution
    rows = txray.hellinger(np.array([[1.0, 0.0], [np.nan, np.nan]]), np.array([[0.0, 1.0], [0.5, 0.5]]))
    assert rows[0] == pytest.approx(1.0) and np.isnan(rows[1])


def test_distance_matrix_and_matching():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    q = p[[2, 0, 1]]
    d = txray.distance_matrix(p, q)
    for i in range(3):
        for j in range(3):
            assert d[i, j] == pytest.approx(txray.hellinger(p[i], q[j]), abs=1e-7)
    np.testing.assert_array_equal(txray.match_units(d), [1, 2, 0])
    np.testing.assert_allclose(txray.unit_distances(p, q, [1, 2, 0]), 0.0, atol=1e-12)
    assert txray.unit_distances(p, q)[0] == pytest.approx(txray.hellinger(p[0], p[2]))


def test_normalise_marks_units_without_mass():
    dist = txray.normalise(np.array([[2.0, 0.0, 6.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(dist[0], [0.25, 0.0, 0.75])
    assert np.isnan(dist[1]).all()


def test_unit_feature_distributions_hand_made():
    activations = np.array([[0.9, 0.1, -0.5],     # unit 0 wins, feature 1
                            [0.2, 0.8, 0.7],      # unit 1 wins (top 2: 1, 2), feature 0
                            [-0.3, -0.1, -0.2],   # maximum <= 0: nobody active (top 2 too)
                            [0.4, 0.4, 0.1],      # tie: the lower unit (0) wins; top 2: 0 and 1
                            [0.0, 0.3, 0.6]])     # unit 2 wins; top 2: 2, 1; feature 1
    features = np.array([1, 0, 2, 0, 1])
    top1 = txray.unit_feature_distributions(activations, features, 3, top_k=1)
    np.testing.assert_allclose(top1, [[0.4, 0.9, 0.0], [0.8, 0.0, 0.0], [0.0, 0.6, 0.0]])
    np.testing.assert_array_equal(txray.unit_token_counts(activations, 1), [2, 1, 1])
    top2 = txray.unit_feature_distributions(activations, features, 3, top_k=2)
    np.testing.assert_allclose(top2, [[0.4, 0.9, 0.0], [1.2, 0.4, 0.0], [0.7, 0.6, 0.0]])
    np.testing.assert_array_equal(txray.unit_token_counts(activations, 2), [2, 4, 2])
    # distributions and the POS spread: word 0 tagged NN and VB, word 1 NN, word 2 untagged
    weights, tags = txray.word_feature_matrix(["a", "b", "c"], {"a": {"NN", "VB"}, "b": {"NN"}, "c": set()})
    assert tags == ["NN", "VB", txray.UNTAGGED]
    np.testing.assert_allclose(top1 @ weights, [[0.2 + 0.9, 0.2, 0.0], [0.4, 0.4, 0.0], [0.6, 0.0, 0.0]])
    np.testing.assert_allclose(txray.normalise(top1)[0], [0.4 / 1.3, 0.9 / 1.3, 0.0])
    with pytest.raises(ValueError):
        txray.unit_feature_distributions(activations, features, 3, top_k=4)


def test_normalised_mutual_information_hand_computed():
    assert txray.normalised_mutual_information([[2.0, 0.0], [0.0, 3.0]]) == pytest.approx(1.0)   # separated
    assert txray.normalised_mutual_information([[1.0, 2.0], [2.0, 4.0]]) == pytest.approx(0.0, abs=1e-12)
    # p(u, f) = [[1/2, 0], [1/4, 1/4]]: p(u) = (1/2, 1/2), p(f) = (3/4, 1/4)
    mi = 0.5 * math.log(0.5 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / (0.5 * 0.75)) + 0.25 * math.log(0.25 / 0.125)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert txray.normalised_mutual_information([[4.0, 0.0], [2.0, 2.0]]) == pytest.approx(mi / entropy)
    assert np.isnan(txray.normalised_mutual_information(np.zeros((3, 2))))      # no mass
    assert np.isnan(txray.normalised_mutual_information([[1.0, 0.0], [2.0, 0.0]]))   # one feature only


def _memory_streams():
    """Two streams of words 0 (tag NN), 1 (NNS), 2 (untagged); unit u wins at t when the word at t-1 is u."""
    ids = np.array([[0, 1, 0, 1, 2, 0], [1, 1, 0, 2, 0, 1]])
    previous = np.concatenate([np.full((2, 1), 2), ids[:, :-1]], axis=1)
    units = previous[..., None].astype(np.int32)                  # [R, L, K = 1]
    values = np.ones(units.shape)
    values[1, 2, 0] = -0.5            # a winner <= 0 adds nothing
    tags = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])        # [V, S]: NN, NNS
    return units, values, ids, tags


def _delayed_joint(units, values, ids, tags, delay, n_units):
    """(joint mass, tokens) of the tokens whose word at t - delay is tagged."""
    kept_units, kept_values, kept_tags = txray.delayed_tokens(units, values, ids, tags, delay)
    return txray.tag_joint(kept_units, kept_values, kept_tags, n_units), len(kept_tags)


def test_delayed_tokens_and_tag_joint_hand_made():
    units, values, ids, tags = _memory_streams()
    # delay 1: (word at t-1, unit at t) = (0, 0) four times, (1, 1) three times plus the inactive
    # (1, 1) at stream 1, t 2; two pairs have the untagged word 2 at t-1
    joint, tokens = _delayed_joint(units, values, ids, tags, 1, 3)
    np.testing.assert_allclose(joint, [[4.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    assert tokens == 8                # 10 (t-1, t) pairs less the 2 untagged
    assert txray.normalised_mutual_information(joint) == pytest.approx(1.0)
    # delay 0, (word at t, unit at t): stream 0 (0,2) (1,0) (0,1) (1,0) (0,2); stream 1 (1,2) (1,1)
    # (0,1 inactive) (0,2) (1,0)
    joint, tokens = _delayed_joint(units, values, ids, tags, 0, 3)
    np.testing.assert_allclose(joint, [[0.0, 3.0], [1.0, 1.0], [3.0, 1.0]])
    assert tokens == 10
    joint, tokens = _delayed_joint(units, values, ids, tags, 6, 3)
    assert tokens == 0 and not joint.any()
    joint, tokens = _delayed_joint(units, values, ids, tags, 9, 3)       # beyond the streams' length
    assert tokens == 0 and not joint.any()
    # a shuffle moves the tags between the kept tokens: with every winner active, each unit keeps
    # its mass and each tag its total, while the pairing (and the separation) changes
    kept_units, ones, kept_tags = txray.delayed_tokens(units, np.ones(values.shape), ids, tags, 1)
    joint = txray.tag_joint(kept_units, ones, kept_tags, 3)
    shuffled = txray.tag_joint(kept_units, ones, kept_tags[np.random.default_rng(0).permutation(len(kept_tags))], 3)
    np.testing.assert_allclose(shuffled.sum(axis=1), joint.sum(axis=1))
    np.testing.assert_allclose(shuffled.sum(axis=0), joint.sum(axis=0))
    assert not np.allclose(shuffled, joint)


def test_separation_rows_and_span():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 2, size=(1, 400))                        # words 0 (NN) and 1 (NNS)
    units = np.concatenate([np.full((1, 2), 2), ids[:, :-2]], axis=1)[..., None]   # unit = the word at t-2
    values = np.ones(units.shape)
    rows = txray.separation_rows(units, values, ids, np.eye(2), ["NN", "NNS"], [["NNS", "NN"]], 4, 3, draws=19)
    assert [r["delay"] for r in rows] == [0, 1, 2, 3] and rows[0]["tags"] == "NNS,NN"
    assert rows[2]["separation"] == pytest.approx(1.0) and rows[2]["p"] == pytest.approx(1 / 20)
    for r in (rows[0], rows[1], rows[3]):      # i.i.d. words: the unit says nothing about them
        assert r["separation"] < 0.05 and r["chance"] < 0.05 and r["p"] > 0.05
    assert rows[2]["tokens"] == 398
    # a tag set with a tag no word has: a zero column, so the other tag alone -> undefined
    rows = txray.separation_rows(units, values, ids, np.eye(2), ["NN", "NNS"], [["NN", "VB"]], 1, 3, draws=3)
    assert np.isnan(rows[0]["separation"]) and np.isnan(rows[0]["p"])
    span = [{"delay": k, "p": p} for k, p in enumerate([0.01, 0.01, 0.2, 0.01])]
    assert txray.separation_span(span) == 1                        # stops at the first miss
    assert txray.separation_span([{"delay": 0, "p": 0.5}]) == -1


# ------------------------------------------------------------------------------ models

def permute_units(arrays, perm):
    """Weights computing the same function with unit i of every layer = old unit perm[i]."""
    out = dict(arrays)
    n_layers, cell = int(arrays["num_layers"]), str(arrays["cell_type"])
    blocks = {"LSTM": {"kernel": 4}, "RNN": {"kernel": 1}, "GRU": {"gate_kernel": 2, "cand_kernel": 1},
              "GRU_RESET_AFTER": {"gate_kernel": 2, "cand_kernel": 1}}[cell]
    for layer in range(n_layers):
        for name, n_blocks in blocks.items():
            cols = np.concatenate([g * H + perm for g in range(n_blocks)])
            kernel = arrays[f"layer{layer}/{name}"][:, cols]
            n_in = kernel.shape[0] - H
            kernel[n_in:] = kernel[n_in + perm]            # recurrent rows follow the state
            if layer > 0:
                kernel[:H] = kernel[perm]                  # input rows follow the layer below
            bias = name.replace("kernel", "bias")
            out[f"layer{layer}/{name}"], out[f"layer{layer}/{bias}"] = kernel, arrays[f"layer{layer}/{bias}"][cols]
        if cell == "GRU_RESET_AFTER":
            out[f"layer{layer}/cand_recurrent_bias"] = arrays[f"layer{layer}/cand_recurrent_bias"][perm]
    out["softmax_w"] = arrays["softmax_w"][perm]
    return out


def _write_corpus(root, rng):
    words = [f"w{i}" for i in range(12)]
    (root / "data").mkdir()
    for name, n_lines in (("train", 60), ("valid", 40), ("test", 10)):
        lines = [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(n_lines)]
        (root / "data" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    mapping = [f"w{i} ['NN']" for i in range(6)] + [f"w{i} VB" for i in (6, 7, 8)] + ["w9 NN|VB", "w10 not in list"]
    (root / "pos.txt").write_text("\n".join(mapping) + "\n")


def _config_text(root, save_path, cell="LSTM", layers=1):
    return "\n".join([f"save_path {save_path}", f"log_dir {root / 'logs'}", f"data_path {root / 'data'}",
                      "vocab False", f"basic_cell {cell}", f"num_layers {layers}", f"size {H}",
                      f"embedding_size {E}", "num_steps 5", "init_scale 0.5", "batch_size 2",
                      "forget_bias 0.0", "softmax full"]) + "\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny corpus, model A (LSTM, 2 layers), its unit-permuted twin and configs; returns paths."""
    root = tmp_path_factory.mktemp("txray")
    _write_corpus(root, np.random.default_rng(3))
    (root / "a.config").write_text(_config_text(root, root / "model_a", layers=2))
    (root / "same.config").write_text(_config_text(root, root / "model_a", layers=2))
    config = configuration.load_config(str(root / "a.config"), train=False)
    corpus = lm_data.load_corpus(config, need_test=False)
    model = LanguageModel(corpus.vocab_size, E, H, 2, "LSTM", init_scale=0.5, seed=7)
    SavedModel(root / "model_a").write_weights(model, corpus.word_to_id)
    permuted = LanguageModel(corpus.vocab_size, E, H, 2, "LSTM")
    permuted.assign_numpy(permute_units(model.weights_numpy(), PERM))
    SavedModel(root / "model_perm").write_weights(permuted, corpus.word_to_id)
    return root


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN", "GRU_RESET_AFTER"])
def test_permuted_units_are_recovered_by_matching(cell):
    rng = np.random.default_rng(11)
    vocab = 10
    ids = rng.integers(0, vocab, size=600).astype(np.int32)
    batches = [x for x, _ in run_epoch.evaluation_batches(ids, 3, 8)]
    lookup = np.arange(vocab, dtype=np.int32)
    # weights where every unit of the top layer is among the top 2 somewhere (matching needs that);
    # the reset-after GRU's seed-5 weights leave units that never win
    seed, scale = (9, 1.0) if cell == "GRU_RESET_AFTER" else (5, 0.6)
    model = LanguageModel(vocab, E, H, 2, cell, forget_bias=0.3, init_scale=scale, seed=seed)
    arrays = model.weights_numpy()
    a = LanguageModel(vocab, E, H, 2, cell, forget_bias=0.3, dtype=tf.float64)
    b = LanguageModel(vocab, E, H, 2, cell, forget_bias=0.3, dtype=tf.float64)
    a.assign_numpy(arrays)
    b.assign_numpy(permute_units(arrays, PERM))
    layer = 1   # the top layer: correct only if layer 0's permutation reached its input rows too
    mass_a, counts_a = txray.collect_unit_mass(a, batches, lookup, layer, 0, top_k=2)
    mass_b, counts_b = txray.collect_unit_mass(b, batches, lookup, layer, 0, top_k=2)
    assert (counts_a > 0).all()                       # every unit has a distribution
    np.testing.assert_array_equal(counts_b, counts_a[PERM])
    np.testing.assert_allclose(mass_b, mass_a[PERM], rtol=1e-10)
    p, q = txray.normalise(mass_a), txray.normalise(mass_b)
    assert (txray.unit_distances(p, q) > 0.01).all()
    partner = txray.match_units(txray.distance_matrix(p, q))
    np.testing.assert_array_equal(partner, np.argsort(PERM))
    np.testing.assert_allclose(txray.unit_distances(p, q, partner), 0.0, atol=1e-7)
    # identical models: distance exactly 0
    same, _ = txray.collect_unit_mass(a, batches, lookup, layer, 0, top_k=2)
    assert (txray.unit_distances(p, txray.normalise(same)) == 0).all()
    # the separation of features k steps back does not depend on how the units are numbered
    streams = np.concatenate(batches, axis=1)
    rows = [txray.separation_rows(*txray.collect_winners(m, batches, lookup, layer, 0, top_k=2), streams,
                                  np.eye(vocab)[:, :3], ["w0", "w1", "w2"], [["w0", "w1", "w2"]], 3, H, draws=5)
            for m in (a, b)]
    for row_a, row_b in zip(*rows):
        assert row_a["separation"] == pytest.approx(row_b["separation"], rel=1e-9)
        assert row_a["p"] == row_b["p"] and row_a["tokens"] == row_b["tokens"]
    assert all(np.isfinite(r["separation"]) and r["tokens"] > 100 for r in rows[0])


# ------------------------------------------------------------------------------ command line

def _run_twice_the_same_model(setup, out, *extra):
    """txray.py on model A against the same weights through a second config; returns its exit code."""
    return sg_txray.main(["--config", str(setup / "a.config"), "--config-b", str(setup / "same.config"),
                       "--out", str(out), "--pos-mapping", str(setup / "pos.txt"), *extra])


def test_cli_identical_models(setup, capsys):
    out = setup / "out" / "same"
    assert _run_twice_the_same_model(setup, out, "--top-k", "2", "--interm", "cell") == 0
    rows = _rows(f"{out}_units.csv")
    assert [int(r["unit"]) for r in rows] == list(range(H))
    assert [int(r["unit_b"]) for r in rows] == list(range(H))
    for r in rows:
        if int(r["n_tokens_a"]):
            assert float(r["hellinger_token"]) == 0 and float(r["hellinger_pos"]) == 0
            assert r["top_tokens_a"] == r["top_tokens_b"] and r["top_pos_a"] == r["top_pos_b"]
        else:
            assert r["hellinger_token"] == "nan"
    # each token adds to at most top-k units; the valid set is batched 2 x 5
    valid = lm_data.read_words(str(setup / "data" / "valid.txt"))
    assert sum(int(r["n_tokens_a"]) for r in rows) <= 2 * 2 * 5 * lm_data.num_batches(len(valid), 2, 5)
    summary = (setup / "out" / "same_summary.txt").read_text()
    assert "state c" in summary and "pairing: by unit index" in summary
    for name in ("top_units.png", "distance_vs_features.png"):
        assert (setup / "out" / f"same_{name}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    # POS only: matched on the POS distributions, which are identical too
    assert _run_twice_the_same_model(setup, str(out) + "_pos", "--features", "pos", "--match") == 0
    rows = _rows(f"{out}_pos_units.csv")
    assert "hellinger_token" not in rows[0] and "top_pos_b" in rows[0]
    assert all(float(r["hellinger_pos"]) == 0 for r in rows if int(r["n_tokens_a"]))


def test_cli_separation(setup, capsys):
    out = setup / "out" / "sep"
    assert _run_twice_the_same_model(setup, out, "--separate", "NN,VB", "--max-delay", "3") == 0   # k = 0..2
    rows = _rows(f"{out}_separation.csv")
    assert list(rows[0]) == ["tags", "delay", "tokens", "separation_a", "chance_a", "p_a", "separation_b",
                             "chance_b", "p_b"]
    assert [(r["tags"], int(r["delay"])) for r in rows] == [("NN,VB", k) for k in range(3)]
    for r in rows:                  # the same model twice: the same figures
        assert r["separation_a"] == r["separation_b"] and r["p_a"] == r["p_b"]
        assert 0 <= float(r["separation_a"]) <= 1 and 0.01 <= float(r["p_a"]) <= 1
    # tokens: the valid set's words whose word k back is tagged NN or VB (w0-w9; w9 has both)
    valid = lm_data.read_words(str(setup / "data" / "valid.txt"))
    fed = 2 * 5 * lm_data.num_batches(len(valid), 2, 5)
    assert fed >= int(rows[0]["tokens"]) > int(rows[2]["tokens"]) > 0
    assert (setup / "out" / "sep_separation.png").read_bytes()[:4] == b"\x89PNG"
    summary = (setup / "out" / "sep_summary.txt").read_text()
    assert "separation NN,VB, model A" in summary and "span" in summary
    assert "sep_separation.csv" in capsys.readouterr().out


def test_cli_permuted_model_with_and_without_match(setup):
    common = ["--config", str(setup / "a.config"), "--weights-b", str(setup / "model_perm"),
              "--pos-mapping", str(setup / "pos.txt"), "--top-k", "2", "--layer", "1"]
    assert sg_txray.main(common + ["--out", str(setup / "out" / "index")]) == 0
    by_index = _rows(setup / "out" / "index_units.csv")
    assert all(int(r["n_tokens_a"]) > 0 for r in by_index)
    assert all(float(r["hellinger_token"]) > 0.01 for r in by_index)
    assert sg_txray.main(common + ["--out", str(setup / "out" / "match"), "--match"]) == 0
    matched = _rows(setup / "out" / "match_units.csv")
    np.testing.assert_array_equal([int(r["unit_b"]) for r in matched], np.argsort(PERM))
    for r in matched:
        assert float(r["hellinger_token"]) < 1e-5 and float(r["hellinger_pos"]) < 1e-5
        assert r["n_tokens_a"] == r["n_tokens_b"] and r["top_tokens_a"] == r["top_tokens_b"]
    summary = (setup / "out" / "match_summary.txt").read_text()
    assert "Hungarian" in summary and "before matching" in summary


def test_cli_single_model_token_features_on_test_set(setup):
    out = setup / "out" / "single"
    assert sg_txray.main(["--config", str(setup / "a.config"), "--out", str(out), "--features", "token",
                       "--data", "test"]) == 0
    rows = _rows(f"{out}_units.csv")
    assert set(rows[0]) == {"unit", "n_tokens_a", "mass_a", "distinct_tokens_a", "top_tokens_a"}
    test_words = lm_data.read_words(str(setup / "data" / "test.txt"))
    # one stream (B = T = 1): every token but the last is fed; top-1 with a positive maximum
    assert sum(int(r["n_tokens_a"]) for r in rows) <= len(test_words) - 1
    assert sum(int(r["n_tokens_a"]) for r in rows) > 0
    assert (setup / "out" / "single_top_units.png").exists()
    assert not (setup / "out" / "single_distance_vs_features.png").exists()


def test_cli_user_errors(setup, tmp_path, capsys):
    base = ["--config", str(setup / "a.config"), "--out", str(tmp_path / "x")]
    assert sg_txray.main(base + ["--match"]) == 2
    assert "--match needs a model B" in capsys.readouterr().err
    assert sg_txray.main(base) == 2                       # pos is a default feature, no mapping given
    assert "--pos-mapping" in capsys.readouterr().err
    assert sg_txray.main(base + ["--features", "token", "--weights-b", str(tmp_path)]) == 2
    assert "train first" in capsys.readouterr().err
    assert sg_txray.main(base + ["--features", "token,colour"]) == 2
    assert sg_txray.main(base + ["--features", "token", "--top-k", str(H + 1)]) == 2
    assert "--top-k" in capsys.readouterr().err
    assert sg_txray.main(base + ["--features", "token", "--layer", "2"]) == 2
    assert "layer" in capsys.readouterr().err
    pos = ["--pos-mapping", str(setup / "pos.txt")]
    for extra, message in ((["--separate", "NN"], "two or more different"),
                           (["--separate", "NN,NN"], "two or more different"),
                           (["--separate", "NN,JJ"], "tag 'JJ' is not in"),
                           (["--max-delay", "2"], "--max-delay needs --separate"),
                           (["--separate", "NN,VB", "--max-delay", "0"], "--max-delay must be >= 1"),
                           (["--separate", "NN,VB"], "has no max_delay: pass --max-delay"),
                           (["--separate", "NN,VB", "--features", "token"], "--separate needs POS features")):
        assert sg_txray.main(base + pos + extra) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not list(tmp_path.iterdir())
