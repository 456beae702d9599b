"""freq_classes.py: frequency bins of a hand-made corpus, merging of thin bins, class files and the mapping."""
import pytest

from aux_scripts import freq_classes as sg_freq_classes
from state_gradients.classes import freq_classes
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis

# training counts: a 1, b 5, c 12, d 40, e 150 (+ <eos> 6, never binned); validation below
TRAIN = "a b b b b b\nc c c c c c c c c c c c\n" + "d " * 40 + "\n" + "e " * 150 + "\n" + "\n\n\n"
VALID = "a a b\nc c c c\n" + "d " * 10 + "\ne e e e e e e e\n"


@pytest.fixture
def corpus(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text(TRAIN)
    (data / "valid.txt").write_text(VALID)
    (data / "test.txt").write_text("a b\n")
    (tmp_path / "m.config").write_text(f"save_path {tmp_path}/m\nlog_dir {tmp_path}\ndata_path {data}\nvocab False\n"
                                       "batch_size 1\nnum_steps 2\nsize 2\nbasic_cell RNN\nnum_layers 1\n"
                                       "init_scale 0.1\nsoftmax full\n")
    words = ["e", "<eos>", "d", "c", "b", "a", "<unk>", "<bos>", "unseen"]
    (tmp_path / "dict").write_text("".join(f"{w}\t{i}\n" for i, w in enumerate(words)))
    (tmp_path / "pos.txt").write_text("a ['NN']\nb ['VB', 'NN']\ne not in list\n")
    return tmp_path


def test_decade_bins_by_hand(corpus):
    rows, tag_of, _ = freq_classes.frequency_bins(str(corpus / "m.config"), str(corpus / "dict"),
                                                  min_valid_tokens=0)
    assert [(r["class"], r["words"], r["train_tokens"], r["valid_tokens"]) for r in rows] == [
        ("freq_1-9", 2, 6, 3), ("freq_10-99", 2, 52, 14), ("freq_100+", 1, 150, 8)]
    assert tag_of == {"a": "FREQ_1-9", "b": "FREQ_1-9", "c": "FREQ_10-99", "d": "FREQ_10-99", "e": "FREQ_100+"}


def test_thin_bins_merge_into_the_more_frequent_neighbour(corpus):
    rows, _, _ = freq_classes.frequency_bins(str(corpus / "m.config"), str(corpus / "dict"), min_valid_tokens=5)
    # 1-9 has 3 validation tokens: merged into 10-99; the top bin (8 tokens) stays
    assert [(r["class"], r["valid_tokens"]) for r in rows] == [("freq_1-99", 17), ("freq_100+", 8)]
    rows, _, _ = freq_classes.frequency_bins(str(corpus / "m.config"), str(corpus / "dict"), min_valid_tokens=10)
    # then the top bin (8) is too thin too and joins the one below it
    assert [(r["class"], r["valid_tokens"]) for r in rows] == [("freq_1+", 25)]


def test_quantile_bins_split_the_training_tokens(corpus):
    rows, _, _ = freq_classes.frequency_bins(str(corpus / "m.config"), str(corpus / "dict"), bins="quantiles",
                                             n_bins=2, min_valid_tokens=0)
    # 208 tokens: a, b, c, d hold 58, e alone 150, so the cut falls before e
    assert [(r["lo"], r["hi"], r["train_tokens"]) for r in rows] == [(1, 149, 58), (150, "", 150)]


def test_cli_writes_class_files_and_merged_mapping(corpus, capsys):
    out = corpus / "freq"
    assert sg_freq_classes.main([str(corpus / "m.config"), str(corpus / "dict"), str(out), "--pos-mapping",
                              str(corpus / "pos.txt"), "--out-mapping", str(corpus / "mapping.txt"),
                              "--min-valid-tokens", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["freq_1-9.txt", "freq_10-99.txt", "freq_100+.txt",
                                                     "freq_bins.csv"]
    assert analysis.read_pos_class(str(out / "freq_100+.txt")) == {"FREQ_100+"}
    mapping = analysis.read_pos_mapping(str(corpus / "mapping.txt"))
    assert mapping["b"] == {"VB", "NN", "FREQ_1-9"} and mapping["e"] == {"FREQ_100+"}
    assert mapping["<eos>"] == set() and mapping["unseen"] == set()
    assert "freq_100+\t1 words\t150 training tokens\t8 validation tokens" in capsys.readouterr().out


def test_cli_errors(corpus, capsys):
    args = [str(corpus / "m.config"), str(corpus / "dict"), str(corpus / "freq")]
    assert sg_freq_classes.main(args + ["--out-mapping", str(corpus / "freq" / "m.txt")]) == 2
    assert "inside OUTDIR" in capsys.readouterr().err
    assert sg_freq_classes.main(args + ["--out-mapping", str(corpus / "m.txt"), "--n-bins", "0"]) == 2
    assert "--n-bins" in capsys.readouterr().err
    (corpus / "data" / "valid.txt").unlink()
    assert sg_freq_classes.main(args + ["--out-mapping", str(corpus / "m.txt")]) == 2
    assert "valid file" in capsys.readouterr().err
    with pytest.raises(UserError, match="no vocabulary word"):
        freq_classes.make_bins({}, {}, [1], 0)
