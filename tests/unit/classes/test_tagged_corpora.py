"""Tagged corpora normalised as the PTB LM text (checked against its lines), and the POS tagger in context."""
from aux_scripts import pos_tagger as sg_pos_tagger
from state_gradients.classes import pos_tagger
from state_gradients.classes import tagged_corpora

VOCAB = {"u.s.", "n.j", "n.j.", "p.m", "the", "in", "sold", "<unk>", "$", "N", "mrs."}


def test_normalisation_rules_by_hand():
    tokens = [("Sold", "VBN"), ("in", "IN"), ("the", "DT"), ("U.S", "NNP"), (".", ".")]
    assert tagged_corpora.normalise(tokens, VOCAB) == [("sold", "VBN"), ("in", "IN"), ("the", "DT"), ("u.s.", "NNP")]
    # both forms known: the treebank's own (n.j); p.m. unknown but p.m known; Mrs before a stray period: no
    # internal period, so it stays unknown; numbers, % and escaped fractions are N; punctuation is dropped
    tokens = [("N.J", "NNP"), (".", "."), ("p.m.", "RB"), ("Mrs", "NNP"), (".", "."), ("8.45", "CD"), ("%", "NN"),
              ("1\\/2", "CD"), ("``", "``"), ("$", "$"), ("-LRB-", "-LRB-"), ("Zyx", "NNP")]
    assert [w for w, _ in tagged_corpora.normalise(tokens, VOCAB)] == ["n.j", "p.m", "<unk>", "N", "N", "N", "$",
                                                                        "<unk>"]


def test_treebank_sample_normalises_to_the_ptb_lines(pos_tagged_dir, ptb_dir):
    # PTB train lines 2-3,911 are the treebank sample's sentences (line 1 is a list of words): every one must
    # be found, in order, and equal the normalised sample word for word, <unk>s included
    lines = [line.split() for line in open(ptb_dir / "train.txt", encoding="utf-8")]
    vocab = {w for line in lines for w in line}
    tokens = tagged_corpora.read_treebank_tokens(str(pos_tagged_dir / "treebank_sample" / "wsj_0001-0199.pos"))
    words = [w for w, _ in tagged_corpora.normalise(tokens, vocab)]
    equal, starts = tagged_corpora.align_to_lines(words, lines[1:3911])
    assert None not in starts and starts == sorted(starts)
    assert equal == 3910
    # the next line is not from the sample: it is not found after the sample's last sentence
    assert tagged_corpora.align_to_lines(words, lines[3911:3912])[1] == [None]


def test_tagger_beats_the_majority_tag_and_writes_aligned_tags(pos_tagged_dir, tmp_path):
    # a quick tagger (600 training sentences, 2 iterations) on held-out CoNLL test sentences; the full one
    # (sg-reproduce) is trained on all 12,800 sentences with 5 iterations
    train, held_out = pos_tagger.training_sentences(str(pos_tagged_dir), _Everything())
    tagger = pos_tagger.train_tagger(train[:600], seed=0, iterations=2)
    again = pos_tagger.train_tagger(train[:600], seed=0, iterations=2)
    report = pos_tagger.evaluate(tagger, held_out[:300], {"NN", "NNS", "VBD"})
    assert report["accuracy"] > 0.8 > 3 * report["majority_baseline"]
    low, high = report["accuracy_wilson95"]
    assert low < report["accuracy"] < high
    assert pos_tagger.evaluate(again, held_out[:300], set())["accuracy"] == report["accuracy"]   # seeded
    assert all(c["gold"] in {"NN", "NNS", "VBD"} or c["tagged"] in {"NN", "NNS", "VBD"} for c in report["confusion"])
    text = tmp_path / "valid.txt"
    text.write_text(" the dog ran <unk> \n\n N dogs ran \n")
    tags = pos_tagger.tag_lines(tagger, str(text))
    assert [len(t) for t in tags] == [5, 1, 4] and all(t[-1] == pos_tagger.EOS for t in tags)


class _Everything:
    """A vocabulary that holds every word (the tagger test needs no LM vocabulary)."""

    def __contains__(self, word):
        return True


def test_cli_writes_the_report_and_refuses_a_missing_corpus(tmp_path, capsys):
    assert sg_pos_tagger.main(["--pos-data", str(tmp_path), "--vocab-text", __file__, "--out", str(tmp_path / "o")]) == 2
    assert "not found: fill" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
