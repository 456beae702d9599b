"""Tests of sg-build-pos-mapping (state_gradients/classes/pos_mapping.py): corpus readers, word normalisation, mapping file, coverage."""
import collections

import pytest

from aux_scripts import build_pos_mapping
from state_gradients.classes import pos_mapping as bpm
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis

CONLL = """Confidence NN B-NP
in IN B-PP
the DT B-NP
Bank NNP I-NP

The DT B-NP
bank NN I-NP
rose VBD B-VP
3.5 CD B-NP
% NN I-NP
to TO B-PP
1,000 CD B-NP
"""

TREEBANK = """

[ Pierre/NNP Vinken/NNP ]
,/,
[ 61/CD years/NNS ]
old/JJ ,/, will/MD bank/VB
======================================

[ a/DT 30-year/JJ bond/NN ]
in/IN the/DT 1980s/NNS rose/VBD|NN 5\\/8/CD ./.
[ Hotel\\/Casino/NNP N/NNP ]
"""


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def write_dict(path, words):
    return write(path, "".join(f"{w}\t{i}\n" for i, w in enumerate(words)))


@pytest.mark.parametrize("token, expected", [
    ("3.5", "N"), ("1,000", "N"), ("61", "N"), ("10:30", "N"), ("1987-88", "N"), ("1\\/2", "N"),
    ("30-year", "30-year"), ("1980s", "1980s"), ("N", "n"), ("Bank", "bank"), ("-", "-"), ("...", "..."),
    ("Hotel\\/Casino", "hotel\\/casino"), ("1\\/2-year", "1\\/2-year"),
])
def test_normalise_word(token, expected):
    assert bpm.normalise_word(token) == expected


@pytest.mark.parametrize("token, expected", [
    ("bank/NN", ("bank", "NN")),
    ("1\\/2/CD", ("1\\/2", "CD")),
    ("summer\\/winter/JJ", ("summer\\/winter", "JJ")),
    ("./.", (".", ".")),
    ("rose/VBD|NN", ("rose", "VBD|NN")),
    ("bank", None), ("bank/", None), ("/NN", None), ("1\\/2", None),
])
def test_split_treebank_token(token, expected):
    assert bpm.split_treebank_token(token) == expected


def test_read_treebank(tmp_path):
    pairs = bpm.read_treebank(write(tmp_path / "t.pos", TREEBANK))
    assert pairs[:4] == [("Pierre", "NNP"), ("Vinken", "NNP"), (",", ","), ("61", "CD")]
    # the ambiguous tag counts as both tags; the escaped slash stays in the word
    assert ("rose", "VBD") in pairs and ("rose", "NN") in pairs
    assert ("5\\/8", "CD") in pairs and ("Hotel\\/Casino", "NNP") in pairs
    assert not any(w.startswith("=") or w in ("[", "]") for w, _ in pairs)
    assert len(pairs) == 21  # 20 tokens, one with two tags


def test_read_treebank_bad_token(tmp_path):
    path = write(tmp_path / "t.pos", "[ a/DT ]\nfoo/NN bar\n")
    with pytest.raises(UserError, match=r"line 2: token 'bar'"):
        bpm.read_treebank(path)


def test_read_conll(tmp_path):
    pairs = bpm.read_conll(write(tmp_path / "c.txt", CONLL))
    assert len(pairs) == 11
    assert pairs[0] == ("Confidence", "NN") and pairs[-1] == ("1,000", "CD")
    bad = write(tmp_path / "bad.txt", "a DT B-NP\nb NN\n")
    with pytest.raises(UserError, match=r"bad.txt line 2"):
        bpm.read_conll(bad)


def test_collect_tags_merges_and_normalises():
    pairs = [("Bank", "NNP"), ("bank", "NN"), ("bank", "VB"), ("3.5", "CD"), ("1,000", "CD"),
             ("N", "NNP"), ("30-year", "JJ"), ("1980s", "NNS")]
    mapping = bpm.collect_tags(["bank", "N", "n", "30-year", "1980s", "zebra"], pairs)
    assert mapping == {"bank": {"NN", "NNP", "VB"}, "N": {"CD"}, "n": {"NNP"},
                       "30-year": {"JJ"}, "1980s": {"NNS"}, "zebra": set()}
    assert list(mapping) == ["bank", "N", "n", "30-year", "1980s", "zebra"]


def test_cli_writes_mapping_and_coverage(tmp_path, capsys):
    words = ["the", "bank", "N", "rose", "30-year", "1980s", "hotel\\/casino", "zebra", "<unk>"]
    dict_path = write_dict(tmp_path / "dict", words)
    text = write(tmp_path / "text.txt", "the bank rose N <unk>\nzebra the 1980s\n")
    out = tmp_path / "map.txt"
    rc = build_pos_mapping.main([dict_path, str(out), "--conll", write(tmp_path / "c.txt", CONLL),
                   "--treebank", write(tmp_path / "t.pos", TREEBANK), "--coverage", text])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "the ['DT']"
    assert lines[1] == "bank ['NN', 'NNP', 'VB']"
    assert lines[2] == "N ['CD']"
    assert "zebra not in list" in lines and "<unk> not in list" in lines
    assert analysis.read_pos_mapping(str(out)) == {
        "the": {"DT"}, "bank": {"NN", "NNP", "VB"}, "N": {"CD"}, "rose": {"NN", "VBD"}, "30-year": {"JJ"},
        "1980s": {"NNS"}, "hotel\\/casino": {"NNP"}, "zebra": set(), "<unk>": set()}
    # 8 tokens, <unk> and zebra untagged -> 6 / 8
    assert "75.00% (6 of 8 tokens" in capsys.readouterr().out


def test_cli_needs_a_corpus(tmp_path, capsys):
    dict_path = write_dict(tmp_path / "dict", ["a"])
    assert build_pos_mapping.main([dict_path, str(tmp_path / "out")]) == 2
    assert "no tagged corpus given" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_to_overwrite_input(tmp_path, capsys):
    dict_path = write_dict(tmp_path / "dict", ["a"])
    conll = write(tmp_path / "c.txt", CONLL)
    assert build_pos_mapping.main([dict_path, conll, "--conll", conll]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "c.txt").read_text() == CONLL


def test_coverage_counts_tokens_without_eos(tmp_path):
    path = write(tmp_path / "t.txt", "a b <eos> c\n\nb b\n")
    assert bpm.coverage({"a": {"DT"}, "b": set(), "c": {"NN"}}, path) == (2, 5)
    with pytest.raises(UserError, match="no tokens"):
        bpm.coverage({}, write(tmp_path / "e.txt", "\n<eos>\n"))


def test_real_data_coverage(tmp_path, pos_tagged_dir, ptb_dir):
    # PTB vocabulary as docs/spec.md §3 builds it: count desc, word asc, <unk> if absent, <bos> last.
    text = (ptb_dir / "train.txt").read_text(encoding="utf-8").replace("\n", " <eos> ")
    counts = collections.Counter(text.split())
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    words += [w for w in ("<unk>", "<bos>") if w not in counts]
    pairs = (bpm.read_conll(pos_tagged_dir / "conll2000" / "train.txt")
             + bpm.read_conll(pos_tagged_dir / "conll2000" / "test.txt")
             + bpm.read_treebank(pos_tagged_dir / "treebank_sample" / "wsj_0001-0199.pos"))
    mapping = bpm.collect_tags(words, pairs)
    covered, total = bpm.coverage(mapping, ptb_dir / "valid.txt")
    assert total == 70390
    assert covered / total >= 0.90
    assert mapping["N"] >= {"CD"} and "NN" in mapping["bank"] and mapping["<unk>"] == set()
    out = tmp_path / "ptb_pos.txt"
    analysis.write_pos_mapping(mapping, out)
    assert analysis.read_pos_mapping(out) == mapping
