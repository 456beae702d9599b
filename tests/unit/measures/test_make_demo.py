"""Tests of data/make_demo.py: determinism, grammar, agreement, tags, class files, sizes, committed copy."""
import ast
import collections
import importlib.util
from pathlib import Path

import pytest

from state_gradients.measures.analysis import read_pos_class, read_pos_mapping

REPO = Path(__file__).resolve().parents[3]
_SPEC = importlib.util.spec_from_file_location("make_demo", REPO / "data" / "make_demo.py")
make_demo = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_demo)

SPLITS = ("train", "valid", "test")
FILLER_TAGS = {"JJ", "RB", "UH"}
NUMBER = {"NN": "sg", "NNS": "pl", "VBZ": "sg", "VBP": "pl"}
FILES = ["train.txt", "valid.txt", "test.txt", "pos_mapping.txt", "README.md",
         "classes/nouns.txt", "classes/verbs.txt", "classes/adjectives.txt",
         "classes/adverbs.txt", "classes/determiners.txt"]


def _generate(out, *extra):
    assert make_demo.main(["--out", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def default_dir(tmp_path_factory):
    """The corpus with every default (the committed data/demo should equal it)."""
    return _generate(tmp_path_factory.mktemp("demo") / "demo")


def _mapping(directory):
    """word -> list of tags, parsed here independently of analysis.read_pos_mapping."""
    mapping = {}
    for line in (directory / "pos_mapping.txt").read_text(encoding="utf-8").splitlines():
        word, rest = line.split(" ", 1)
        mapping[word] = [] if rest == "not in list" else ast.literal_eval(rest)
    return mapping


def _parse(words, mapping):
    """Hand parser of DT N F+ V [DT N]: (subject tag, number of fillers, verb tag, has object)."""
    tags = [set(mapping[w]) for w in words]
    assert tags[0] == {"DT"}, words
    assert tags[1] in ({"NN"}, {"NNS"}), words
    i = 2
    while tags[i] <= FILLER_TAGS:
        i += 1
    assert tags[i] in ({"VBZ"}, {"VBP"}), words
    rest = tags[i + 1:]
    assert rest in ([], [{"DT"}, {"NN"}], [{"DT"}, {"NNS"}]), words
    return tags[1].pop(), i - 2, tags[i].pop(), bool(rest)


def _sentences(directory, split):
    return [line.split() for line in (directory / f"{split}.txt").read_text(encoding="utf-8").splitlines()]


def test_same_seed_same_bytes_other_seed_other_text(tmp_path):
    a = _generate(tmp_path / "a", "--train-sentences", "300", "--seed", "7")
    b = _generate(tmp_path / "b", "--train-sentences", "300", "--seed", "7")
    c = _generate(tmp_path / "c", "--train-sentences", "300", "--seed", "8")
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "train.txt").read_bytes() != (c / "train.txt").read_bytes()
    assert not [p.name for p in a.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_splits_are_independent_streams(tmp_path):
    """Changing the training size leaves valid/test unchanged (each split has its own seed)."""
    a = _generate(tmp_path / "a", "--train-sentences", "200")
    b = _generate(tmp_path / "b", "--train-sentences", "300")
    assert (a / "valid.txt").read_bytes() == (b / "valid.txt").read_bytes()
    assert (a / "test.txt").read_bytes() == (b / "test.txt").read_bytes()
    assert _sentences(b, "train")[:200] == _sentences(a, "train")


def test_every_sentence_agrees_and_parses(default_dir):
    mapping = _mapping(default_dir)
    transitive = {}
    for split in SPLITS:
        for words in _sentences(default_dir, split):
            assert words == [w.lower() for w in words]
            subject, _, verb, has_object = _parse(words, mapping)
            assert NUMBER[subject] == NUMBER[verb], words
            verb_word = next(w for w in words if set(mapping[w]) & {"VBZ", "VBP"})
            # transitivity is a property of the verb: the same verb always (or never) has an object
            assert transitive.setdefault(verb_word, has_object) == has_object, words


def test_numbers_balanced_and_filler_counts_cover_1_to_8(default_dir):
    mapping = _mapping(default_dir)
    parsed = [_parse(w, mapping) for w in _sentences(default_dir, "train")]
    counts = collections.Counter(n for _, n, _, _ in parsed)
    assert sorted(counts) == list(range(1, 9))
    n = len(parsed)
    expected = make_demo.filler_count_probabilities(1, 8)
    for k in range(1, 9):  # 5 binomial standard deviations
        p = expected[k - 1]
        assert abs(counts[k] / n - p) < 5 * (p * (1 - p) / n) ** 0.5, (k, counts)
    plural = sum(s == "NNS" for s, _, _, _ in parsed) / n
    assert abs(plural - 0.5) < 5 * (0.25 / n) ** 0.5
    with_object = sum(o for _, _, _, o in parsed) / n
    assert abs(with_object - 0.5) < 5 * (0.25 / n) ** 0.5


def test_fillers_are_independent_of_the_subject(default_dir):
    """The filler words' distribution is the same after singular and after plural subjects."""
    mapping = _mapping(default_dir)
    by_number = {"NN": collections.Counter(), "NNS": collections.Counter()}
    for words in _sentences(default_dir, "train"):
        subject, n, _, _ = _parse(words, mapping)
        by_number[subject].update(words[2:2 + n])
    sg, pl = by_number["NN"], by_number["NNS"]
    n_sg, n_pl = sum(sg.values()), sum(pl.values())
    for word in set(sg) | set(pl):
        p = (sg[word] + pl[word]) / (n_sg + n_pl)
        sd = (p * (1 - p) * (1 / n_sg + 1 / n_pl)) ** 0.5
        assert abs(sg[word] / n_sg - pl[word] / n_pl) < 5 * sd, word


def test_pos_mapping_covers_every_word_once_with_its_tags(default_dir):
    mapping = _mapping(default_dir)
    lines = (default_dir / "pos_mapping.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(mapping)  # no word twice
    assert [line.split(" ", 1)[0] for line in lines] == sorted(mapping)
    used = {w for split in SPLITS for words in _sentences(default_dir, split) for w in words}
    assert used == {w for w, tags in mapping.items() if tags}  # every listed word occurs
    assert {w for w, tags in mapping.items() if not tags} == {"<eos>", "<unk>"}
    assert "<eos> not in list" in lines and "<unk> not in list" in lines
    assert mapping["dog"] == ["NN"] and mapping["dogs"] == ["NNS"]
    assert mapping["children"] == ["NNS"] and mapping["sleeps"] == ["VBZ"]
    assert mapping["sleep"] == ["VBP"] and mapping["the"] == ["DT"]
    assert mapping["quickly"] == ["RB"] and mapping["big"] == ["JJ"]
    assert mapping["um"] == ["UH"] and mapping["well"] == ["RB", "UH"]
    # the project's reader accepts the file and agrees
    assert read_pos_mapping(default_dir / "pos_mapping.txt") == {w: set(t) for w, t in mapping.items()}


def test_singular_and_plural_come_in_pairs(default_dir):
    mapping = _mapping(default_dir)
    tags = collections.Counter(t for ts in mapping.values() for t in ts)
    assert tags["NN"] == tags["NNS"] == 20
    assert tags["VBZ"] == tags["VBP"] == 20
    assert tags["DT"] == 3


def test_class_files(default_dir):
    expected = {"nouns": ["NN", "NNS"], "verbs": ["VBZ", "VBP"], "adjectives": ["JJ"],
                "adverbs": ["RB"], "determiners": ["DT"]}
    names = sorted(p.name for p in (default_dir / "classes").iterdir())
    assert names == sorted(f"{name}.txt" for name in expected)
    for name, tags in expected.items():
        path = default_dir / "classes" / f"{name}.txt"
        assert path.read_text(encoding="utf-8") == "".join(t + "\n" for t in tags)
        assert read_pos_class(path) == set(tags)


def test_default_sizes(default_dir):
    tokens = {s: sum(len(w) + 1 for w in _sentences(default_dir, s)) for s in SPLITS}  # + <eos>
    assert 40_000 <= tokens["train"] <= 60_000, tokens
    assert 4_000 <= tokens["valid"] <= 6_000 and 4_000 <= tokens["test"] <= 6_000, tokens
    readme = (default_dir / "README.md").read_text(encoding="utf-8")
    for split in SPLITS:
        assert f"| {split}.txt | {len(_sentences(default_dir, split))} | {tokens[split]} |" in readme
    assert sum((default_dir / name).stat().st_size for name in FILES) < 1_000_000


def test_committed_demo_matches_the_generator(default_dir):
    """data/demo is the output of the default command: regenerate it when the script changes."""
    committed = REPO / "data" / "demo"
    if not committed.exists():
        pytest.skip("data/demo not generated")
    for name in FILES:
        assert (committed / name).read_bytes() == (default_dir / name).read_bytes(), name


@pytest.mark.parametrize("args, message", [
    (["--train-sentences", "0"], "--train-sentences must be >= 1"),
    (["--min-fillers", "0"], "--min-fillers"),
    (["--min-fillers", "5", "--max-fillers", "4"], "--max-fillers"),
    (["--seed", "-1"], "--seed must be >= 0"),
])
def test_bad_arguments(tmp_path, capsys, args, message):
    assert make_demo.main(["--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("make_demo.py: error: ") and message in err
    assert not (tmp_path / "x").exists()


def test_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    assert make_demo.main(["--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep"
