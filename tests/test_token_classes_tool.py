"""sg-token-classes: the pos_tokens fields and class files of classes in context, <unk> and frequency bins."""
from aux_scripts import token_classes as sg_token_classes
from tf_scripts import formats


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
    assert set(classes) == {"nouns.txt", "nouns+unk.txt", "verbs.txt", "nouns-freq_10-99.txt",
                            "nouns-freq_1000+.txt", "verbs-freq_10-99.txt", "verbs-freq_1000+.txt"}
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
