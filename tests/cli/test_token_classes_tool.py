"""sg-token-classes: the pos_tokens fields and class files of classes in context, <unk> and frequency bins."""
import numpy as np

from aux_scripts import token_classes as sg_token_classes
from state_gradients.core import formats


def test_fields_and_class_files_by_hand(tmp_path):
    text, tags = tmp_path / "valid.txt", tmp_path / "valid.tags"
    text.write_text(" the dog <unk> ran \n")
    tags.write_text("DT NN NN VBD <eos>\n")
    formats.write_pos_mapping({"the": {"DT", "FREQ_1000+"}, "dog": {"NN", "VB", "FREQ_10-99"},
                               "ran": {"VBD", "FREQ_10-99"}}, str(tmp_path / "map.txt"))
    (tmp_path / "nouns.txt").write_text("NN\nNNS\n")
    (tmp_path / "verbs.txt").write_text("VBD\n")
    argv = [str(text), str(tags), str(tmp_path / "map.txt"), "--classes", str(tmp_path / "nouns.txt"),
            str(tmp_path / "verbs.txt"), "--with-unk", "nouns", "--by-frequency", "nouns", "verbs",
            "--out", str(tmp_path / "out")]
    assert sg_token_classes.main(argv) == 0
    # <unk> has no bin; its tag is marked so that the plain class holds known words only
    assert (tmp_path / "out" / "valid.tags").read_text() == \
        "DT|DT+FREQ_1000+ NN|NN+FREQ_10-99 UNK_NN VBD|VBD+FREQ_10-99 <eos>\n"
    classes = {p.name: formats.read_pos_class(str(p)) for p in (tmp_path / "out" / "classes").iterdir()}
    assert classes["nouns.txt"] == {"NN", "NNS"} and classes["nouns+unk.txt"] == {"NN", "NNS", "UNK_NN", "UNK_NNS"}
    assert classes["verbs-freq_10-99.txt"] == {"VBD+FREQ_10-99"}
    # the by-frequency cells without a token in the text (nouns and verbs of bin 1000+) get no class file
    assert set(classes) == {"nouns.txt", "nouns+unk.txt", "verbs.txt", "nouns-freq_10-99.txt", "verbs-freq_10-99.txt"}
    # the fields select tokens as stated: nouns-freq_10-99 is 'dog' only
    token_tags = formats.read_token_tags(str(tmp_path / "out" / "valid.tags"), str(text), eos=True)
    table = formats.token_class_masks(token_tags, [str(tmp_path / "out" / "classes" / n) for n in
                                                   ("nouns.txt", "nouns+unk.txt", "nouns-freq_10-99.txt")])
    assert table.tolist() == [[1] * 5, [0, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 0, 0, 0]]


def test_refusals(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("a b\n")
    (tmp_path / "t.tags").write_text("NN <eos>\n")
    (tmp_path / "c.txt").write_text("NN\n")
    formats.write_pos_mapping({"a": {"NN"}}, str(tmp_path / "m.txt"))
    base = [str(tmp_path / "t.txt"), str(tmp_path / "t.tags"), str(tmp_path / "m.txt"), "--classes",
            str(tmp_path / "c.txt"), "--out", str(tmp_path / "o")]
    assert sg_token_classes.main(base) == 2
    assert "t.tags line 1: 2 tags for 2 words and <eos>" in capsys.readouterr().err
    assert sg_token_classes.main(base + ["--with-unk", "verbs"]) == 2
    assert "class 'verbs' is not one of --classes" in capsys.readouterr().err


def test_bins_and_size_matched_subsets(tmp_path):
    rng_words = ["dog", "cat", "ran", "the"] * 30
    text, tags = tmp_path / "valid.txt", tmp_path / "valid.tags"
    tag_of = {"dog": "NN", "cat": "NN", "ran": "VBD", "the": "DT"}
    lines = [rng_words[i:i + 6] for i in range(0, 120, 6)]
    text.write_text("".join(" ".join(line) + "\n" for line in lines))
    tags.write_text("".join(" ".join([tag_of[w] for w in line] + ["<eos>"]) + "\n" for line in lines))
    formats.write_pos_mapping({"dog": {"NN", "FREQ_1-9"}, "cat": {"NN", "FREQ_1-9"}, "ran": {"VBD", "FREQ_10+"},
                               "the": {"DT", "FREQ_10+"}}, str(tmp_path / "map.txt"))
    (tmp_path / "nouns.txt").write_text("NN\n")
    (tmp_path / "verbs.txt").write_text("VBD\n")
    argv = [str(text), str(tags), str(tmp_path / "map.txt"), "--classes", str(tmp_path / "nouns.txt"),
            str(tmp_path / "verbs.txt"), "--bins", "rarest", "commonest", "--size-matched", "nouns:verbs",
            "commonest:rarest", "--draws", "2", "--out", str(tmp_path / "out")]
    assert sg_token_classes.main(argv) == 0
    out = tmp_path / "out" / "classes"
    files = sorted(p.name for p in out.iterdir())
    assert {"freq_1-9.txt", "freq_10+.txt", "nouns-as-verbs-1.txt", "nouns-as-verbs-2.txt"} <= set(files)
    token_tags = formats.read_token_tags(str(tmp_path / "out" / "valid.tags"), str(text), eos=True)
    names = ["nouns.txt", "verbs.txt", "nouns-as-verbs-1.txt", "nouns-as-verbs-2.txt", "freq_1-9.txt", "freq_10+.txt"]
    table = formats.token_class_masks(token_tags, [str(out / n) for n in names])
    nouns, verbs, sub1, sub2, rare, common = table[1:]
    assert nouns.sum() == 60 and verbs.sum() == 30 and sub1.sum() == sub2.sum() == 30
    assert (sub1 <= nouns).all() and (sub2 <= nouns).all() and (sub1 != sub2).any()   # subsets, two draws
    assert rare.sum() == 60 and common.sum() == 60
    # equal sizes: the pair's "larger" is subsampled to its own size, i.e. a permutation of all of it
    assert any(n.startswith("freq_") and "-as-" in n for n in files)


def test_type_weighted_groups_weigh_every_type_once(tmp_path):
    # 9 types of one bin with counts 1..9 in the text (and a tenth type only after the measured tokens)
    words = [f"w{i}" for i in range(1, 10) for _ in range(i)]
    words = [words[i] for i in np.random.default_rng(5).permutation(len(words))] + ["late"] * 4
    text, tags = tmp_path / "valid.txt", tmp_path / "valid.tags"
    lines = [words[i:i + 7] for i in range(0, len(words), 7)]
    text.write_text("".join(" ".join(line) + "\n" for line in lines))
    tags.write_text("".join(" ".join(["NN"] * len(line) + ["<eos>"]) + "\n" for line in lines))
    formats.write_pos_mapping({w: {"NN", "FREQ_1-9"} for w in set(words)}, str(tmp_path / "map.txt"))
    (tmp_path / "nouns.txt").write_text("NN\n")
    measured = len(words) - 4 + sum(1 for line in lines if "late" not in line)    # the <eos> before 'late' too
    argv = [str(text), str(tags), str(tmp_path / "map.txt"), "--classes", str(tmp_path / "nouns.txt"),
            "--type-weighted", "rarest", "--type-groups", "4", "--measured-tokens", str(measured),
            "--out", str(tmp_path / "out")]
    assert sg_token_classes.main(argv) == 0
    out = tmp_path / "out" / "classes"
    groups = [str(out / f"freq_1-9+types-{g}.txt") for g in range(1, 5)]
    assert sorted(p.name for p in out.iterdir() if "+types" in p.name) == [f"freq_1-9+types-{g}.txt" for g in range(1, 5)]
    token_tags = formats.read_token_tags(str(tmp_path / "out" / "valid.tags"), str(text), eos=True)
    table = formats.token_class_masks(token_tags, groups)[1:]                    # [4, tokens]
    stream = [w for line in lines for w in line + ["<eos>"]]
    weight_of = {}
    for g in range(4):
        for i in np.flatnonzero(table[g]):
            weight_of.setdefault(stream[i], set()).add((g, table[g, i]))
    # every measured type is in exactly one group, each of its tokens weighs 1 / its count: a type sums to 1
    assert sorted(weight_of) == [f"w{i}" for i in range(1, 10)]
    for w, found in weight_of.items():
        assert len(found) == 1 and list(found)[0][1] == 1.0 / int(w[1:])
    np.testing.assert_allclose(table.sum(axis=1).sum(), 9.0, rtol=1e-15)
    assert sorted(np.round(table.sum(axis=1)).astype(int)) == [2, 2, 2, 3]     # 9 types dealt into 4 groups
