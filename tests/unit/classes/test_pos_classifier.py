"""Tests of aux_scripts/pos_classifier_sklearn.py on synthetic embeddings whose tags are separable by construction."""
import joblib
import numpy as np
import pytest

from aux_scripts import pos_classifier_sklearn as sg_clf
from state_gradients.classes import pos_classifier as clf
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis

TAGS = ["JJ", "NN", "RB", "VB"]
PER_TAG = 12
E = 6
PNG = b"\x89PNG\r\n\x1a\n"


def make_data(tmp_path, *, noise=0.3, extra_mapping=None, seed=0):
    """Words w000.. with one tag each (tag k: embedding near 4*e_k), plus two words without tags.

    Returns (emb path, dict path, mapping path, emb array, word_to_id, mapping).
    """
    rng = np.random.default_rng(seed)
    words, mapping, rows = [], {}, []
    for k, tag in enumerate(TAGS):
        for _ in range(PER_TAG):
            word = f"w{len(words):03d}"
            words.append(word)
            mapping[word] = {tag}
            centre = np.zeros(E)
            centre[k] = 4.0
            rows.append(centre + noise * rng.standard_normal(E))
    for word in ("<unk>", "<eos>"):
        words.append(word)
        mapping[word] = set()
        rows.append(rng.standard_normal(E))
    mapping.update(extra_mapping or {})
    emb = np.array(rows, dtype=np.float32)
    word_to_id = {w: i for i, w in enumerate(words)}
    np.save(tmp_path / "emb.npy", emb)
    (tmp_path / "dict").write_text("".join(f"{w}\t{i}\n" for w, i in word_to_id.items()))
    analysis.write_pos_mapping(mapping, tmp_path / "pos.txt")
    return str(tmp_path / "emb.npy"), str(tmp_path / "dict"), str(tmp_path / "pos.txt"), emb, word_to_id, mapping


def scores(out):
    """{'Validation': x, 'Test': y} from the printed lines."""
    found = {}
    for line in out.splitlines():
        for title in ("Validation", "Test"):
            if line.startswith(f"{title} score: "):
                found[title] = float(line.split(": ")[1])
    return found


def test_separable_tags_give_perfect_accuracy(tmp_path, capsys):
    emb, dic, pos, *_ = make_data(tmp_path)
    name = str(tmp_path / "model")
    assert sg_clf.main([emb, dic, pos, name, "--grid", "small", "--grid_search"]) == 0
    out = capsys.readouterr().out
    assert scores(out) == {"Validation": 1.0, "Test": 1.0}
    assert "48 examples (collapsed): train 38, valid 4, test 6" in out
    assert "mean_test_score" in out  # --grid_search printed NAME.results
    assert float((tmp_path / "model.score").read_text()) == 1.0
    params = joblib.load(tmp_path / "model.params")
    assert params["solver"] == "lbfgs" and params["C"] in (0.1, 1.0)
    results = joblib.load(tmp_path / "model.results")
    assert len(results["params"]) == 2  # the small grid
    estimator = joblib.load(tmp_path / "model.estimator")
    assert list(estimator.classes_) == TAGS


def test_no_train_reloads_the_estimator(tmp_path, capsys):
    # Noisy embeddings, so the scores are not trivially 1.0.
    emb, dic, pos, *_ = make_data(tmp_path, noise=3.0)
    name = str(tmp_path / "m")
    assert sg_clf.main([emb, dic, pos, name, "--grid", "small", "--seed", "3"]) == 0
    first = scores(capsys.readouterr().out)
    assert 0.0 < first["Test"] < 1.0 or 0.0 < first["Validation"] < 1.0
    saved = (tmp_path / "m.estimator").read_bytes()
    assert sg_clf.main([emb, dic, pos, name, "--no_train", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "Train classifier" not in out
    assert scores(out) == first
    assert (tmp_path / "m.estimator").read_bytes() == saved
    assert sg_clf.main([emb, dic, pos, str(tmp_path / "missing"), "--no_train"]) == 2
    assert "missing.estimator does not exist" in capsys.readouterr().err


def test_split_is_seeded_and_complete():
    train, valid, test = clf.split_indices(50, seed=7)
    assert (len(train), len(valid), len(test)) == (40, 5, 5)
    assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(50))
    again = clf.split_indices(50, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again))
    assert not np.array_equal(train, clf.split_indices(50, seed=8)[0])
    assert [len(p) for p in clf.split_indices(9, seed=0)] == [7, 0, 2]


def test_dataset_does_not_depend_on_example_order():
    emb = np.arange(20, dtype=float).reshape(10, 2)
    word_to_id = {f"w{i}": i for i in range(10)}
    examples = [(f"w{i}", "NN" if i % 2 else "VB") for i in range(10)] + [("w3", "VB")]
    a = clf.make_dataset(examples, emb, word_to_id, seed=1)
    b = clf.make_dataset(examples[::-1], emb, word_to_id, seed=1)
    assert a.words == b.words == sorted(w for w, _ in examples)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.x[a.words.index("w3")], [6.0, 7.0])


def write(path, text):
    path.write_text(text)
    return str(path)


def test_read_pos_classes_three_formats(tmp_path):
    plain = clf.read_pos_classes(write(tmp_path / "nouns.txt", "NN\nNNS\n\n"))
    assert plain == clf.PosClasses({"NN": {"NN"}, "NNS": {"NNS"}}, by_word=False)
    classes = clf.read_pos_classes(write(tmp_path / "c.txt", "nominal\tNN JJ\nverbal\tVB RB\n"))
    assert classes == clf.PosClasses({"nominal": {"NN", "JJ"}, "verbal": {"VB", "RB"}}, by_word=False)
    assert classes.label_of() == {"NN": "nominal", "JJ": "nominal", "VB": "verbal", "RB": "verbal"}
    tokens = clf.read_pos_classes(write(tmp_path / "t.txt", "token\nlow\tw000 w001\nhigh\tw047\n"))
    assert tokens == clf.PosClasses({"low": {"w000", "w001"}, "high": {"w047"}}, by_word=True)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("a\tNN\nb\tNN VB\n", r"line 2: tag 'NN' is already in a class on line 1"),
    ("a\tNN\na\tVB\n", "class 'a' already defined on line 1"),
    ("a\tNN\nb\n", "line 2: expected `class<TAB>tag"),
    ("token\n", "defines no classes"),
    ("token\nx\tw1\ny\tw1\n", "word 'w1' is already in a class"),
    ("NN\nVB JJ\n", "is not a single POS tag"),
])
def test_read_pos_classes_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        clf.read_pos_classes(write(tmp_path / "bad.txt", text))


def test_collapsed_examples_one_per_tag():
    mapping = {"bank": {"VB", "NN"}, "the": {"DT"}, "none": set(), "other": {"NN"}}
    word_to_id = {"bank": 0, "the": 1, "none": 2}
    pairs, skipped = clf.collapsed_pairs(mapping, word_to_id)
    assert pairs == [("bank", "NN"), ("bank", "VB"), ("the", "DT")] and skipped == 1
    classes = clf.PosClasses({"content": {"NN", "VB"}})
    assert clf.assign_labels(pairs, classes) == [("bank", "content"), ("bank", "content")]
    assert clf.assign_labels(pairs, None) == pairs
    examples = [("a", "X"), ("b", "X"), ("c", "Y")]
    assert clf.apply_cutoff(examples, 2) == ([("a", "X"), ("b", "X")], ["Y"])


def expected_means(emb, word_to_id, pairs):
    """label -> numpy mean of the embeddings of the (word, label) pairs."""
    labels = sorted({label for _, label in pairs})
    return {label: np.mean([emb[word_to_id[w]] for w, l in pairs if l == label], axis=0) for label in labels}


def test_avg_emb_over_all_examples_with_multi_tag_words(tmp_path, capsys):
    extra = {"w000": {"JJ", "NN"}, "w013": {"NN", "VB"}}  # w000 is otherwise JJ, w013 NN
    emb, dic, pos, array, word_to_id, mapping = make_data(tmp_path, extra_mapping=extra)
    name = str(tmp_path / "m")
    assert sg_clf.main([emb, dic, pos, name, "--grid", "small", "--avg_emb", "--no_valid", "--no_test"]) == 0
    assert "50 examples" in capsys.readouterr().out
    pairs = [(w, t) for w, tags in mapping.items() for t in tags]
    for tag, mean in expected_means(array, word_to_id, pairs).items():
        np.testing.assert_allclose(np.load(f"{name}_avg_{tag}.npy"), mean, rtol=1e-6)
    assert sorted(p.name for p in tmp_path.glob("m_avg_*.npy")) == [f"m_avg_{t}.npy" for t in TAGS]


def test_pos_classes_formats_end_to_end(tmp_path, capsys):
    emb, dic, pos, array, word_to_id, mapping = make_data(tmp_path)
    tagged = [(w, t) for w, tags in mapping.items() for t in tags]

    plain = write(tmp_path / "plain.txt", "NN\nVB\nPRP\n")
    assert sg_clf.main([emb, dic, pos, str(tmp_path / "p"), "--grid", "small", "--pos_classes", plain,
                     "--avg_emb"]) == 0
    out = capsys.readouterr().out
    assert "no examples for PRP; skipped" in out and "24 examples" in out
    assert scores(out) == {"Validation": 1.0, "Test": 1.0}
    assert sorted(p.name for p in tmp_path.glob("p_avg_*")) == ["p_avg_NN.npy", "p_avg_VB.npy"]

    grouped = write(tmp_path / "grouped.txt", "nominal\tNN JJ\nverbal\tVB RB\n")
    assert sg_clf.main([emb, dic, pos, str(tmp_path / "g"), "--grid", "small", "--pos_classes", grouped,
                     "--avg_emb"]) == 0
    assert scores(capsys.readouterr().out) == {"Validation": 1.0, "Test": 1.0}
    group_of = {"NN": "nominal", "JJ": "nominal", "VB": "verbal", "RB": "verbal"}
    for label, mean in expected_means(array, word_to_id, [(w, group_of[t]) for w, t in tagged]).items():
        np.testing.assert_allclose(np.load(tmp_path / f"g_avg_{label}.npy"), mean, rtol=1e-6)

    low = [f"w{i:03d}" for i in range(0, 10)]
    high = [f"w{i:03d}" for i in range(30, 40)]
    token = write(tmp_path / "token.txt", f"token\nlow\t{' '.join(low)}\nhigh\t{' '.join(high)}\n")
    assert sg_clf.main([emb, dic, pos, str(tmp_path / "t"), "--grid", "small", "--pos_classes", token,
                     "--avg_emb"]) == 0
    assert "20 examples" in capsys.readouterr().out
    np.testing.assert_allclose(np.load(tmp_path / "t_avg_low.npy"),
                               array[[word_to_id[w] for w in low]].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "t_avg_high.npy"),
                               array[[word_to_id[w] for w in high]].mean(axis=0), rtol=1e-6)

    unknown = write(tmp_path / "unknown.txt", "token\nlow\tw000 zebra\nhigh\tw047\n")
    assert sg_clf.main([emb, dic, pos, str(tmp_path / "u"), "--pos_classes", unknown]) == 2
    err = capsys.readouterr().err
    assert "word(s) not in the dictionary" in err and "zebra" in err


def test_plots_are_written(tmp_path, capsys):
    emb, dic, pos, *_ = make_data(tmp_path)
    name = str(tmp_path / "m")
    assert sg_clf.main([emb, dic, pos, name, "--grid", "small", "--confusion_matrix", "--pca", "--tsne", "--lda",
                     "--plot_coef", "--results_dataset", "full"]) == 0
    for suffix in ("confusion_matrix_norm_all", "pca", "tsne", "lda", "coef"):
        assert (tmp_path / f"m_{suffix}.png").read_bytes()[:8] == PNG
    # two labels: LDA has a single component, the binary model a single weight row
    two = write(tmp_path / "two.txt", "NN\nVB\n")
    assert sg_clf.main([emb, dic, pos, str(tmp_path / "b"), "--grid", "small", "--pos_classes", two, "--lda",
                     "--plot_coef", "--confusion_matrix"]) == 0
    for suffix in ("lda", "coef", "confusion_matrix_norm_all"):
        assert (tmp_path / f"b_{suffix}.png").read_bytes()[:8] == PNG


def test_running_text(tmp_path, capsys):
    emb, dic, pos, array, word_to_id, _ = make_data(tmp_path)
    # w000 is JJ in context four times, NN once; w012 (an NN word) twice.
    tokens = [("w000", "JJ")] * 4 + [("w000", "NN")] + [("w012", "NN")] * 2 + [("w024", "RB")] * 3
    text = write(tmp_path / "text.txt", "".join(f"{w} {t} B-NP\n" for w, t in tokens) + "\n")
    pairs = clf.read_running_text(text, word_to_id)
    assert pairs == tokens
    assert sg_clf.main([emb, dic, text, str(tmp_path / "r"), "--type_data", "running_text", "--grid", "small",
                     "--avg_emb", "--no_valid", "--no_test"]) == 0
    assert "10 examples (running_text)" in capsys.readouterr().out
    for label, mean in expected_means(array, word_to_id, tokens).items():
        np.testing.assert_allclose(np.load(tmp_path / f"r_avg_{label}.npy"), mean, rtol=1e-6)
    bad = write(tmp_path / "bad.txt", "w000 JJ\nzebra NN\n")
    with pytest.raises(UserError, match=r"bad.txt line 2: word 'zebra' is not in the dictionary"):
        clf.read_running_text(bad, word_to_id)
    ambiguous = write(tmp_path / "amb.txt", "w000 JJ|NN\n")
    with pytest.raises(UserError, match="line 1: expected `word TAG` with one tag"):
        clf.read_running_text(ambiguous, word_to_id)


def test_user_errors(tmp_path, capsys):
    emb, dic, pos, array, word_to_id, mapping = make_data(tmp_path)
    name = str(tmp_path / "m")

    np.save(tmp_path / "short.npy", array[:-1])
    assert sg_clf.main([str(tmp_path / "short.npy"), dic, pos, name]) == 2
    assert "has 49 rows but dictionary" in capsys.readouterr().err

    rare = dict(mapping, w000={"UH"})
    analysis.write_pos_mapping(rare, tmp_path / "rare.txt")
    rare_pos = str(tmp_path / "rare.txt")
    assert sg_clf.main([emb, dic, rare_pos, name, "--grid", "small"]) == 2
    assert "UH have only 1 example" in capsys.readouterr().err
    assert sg_clf.main([emb, dic, rare_pos, name, "--grid", "small", "--freq_cutoff", "2", "--no_valid"]) == 0
    out = capsys.readouterr().out
    assert "fewer than 2 examples dropped: UH" in out and "47 examples" in out

    one = write(tmp_path / "one.txt", "NN\n")
    assert sg_clf.main([emb, dic, pos, name, "--pos_classes", one]) == 2
    assert "at least 2 labels" in capsys.readouterr().err

    clash = write(tmp_path / "m.score", (tmp_path / "pos.txt").read_text())
    assert sg_clf.main([emb, dic, clash, name]) == 2
    assert "refusing to overwrite input file" in capsys.readouterr().err
    assert sg_clf.main([emb, dic, str(tmp_path / "nothere.txt"), name]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nothere.txt.estimator").exists()
