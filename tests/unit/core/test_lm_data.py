"""Tests for state_gradients/core/lm_data.py: reading rules, vocabulary, batching, pretrained embeddings, real PTB."""
import hashlib

import numpy as np
import pytest

from state_gradients.core import configuration, lm_data
from state_gradients.core.errors import UserError


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def config(data_path, **keys):
    """A checked config (the key table's defaults) for load_corpus; the model keys are placeholders."""
    values = dict(save_path="unused", log_dir="unused", data_path=str(data_path), vocab=False, batch_size=1,
                  num_steps=1, size=1, basic_cell="RNN", num_layers=1, init_scale=0.1, softmax="full")
    values.update({k: v for k, v in keys.items() if v is not None})
    return configuration.config_from_dict(values, train=False)


# ---- reading ---------------------------------------------------------------------------------

def test_read_words_eos(tmp_path):
    f = write(tmp_path / "a.txt", "a b\nc\n")
    assert lm_data.read_words(f) == ["a", "b", "<eos>", "c", "<eos>"]
    assert lm_data.read_words(f, eos=False) == ["a", "b", "c"]


def test_read_words_only_newline_ends_a_line(tmp_path):
    # '\r\n' gives one <eos>; a lone '\r' is whitespace, not a line end (as the original's byte read)
    f = write(tmp_path / "a.txt", "a\r\nb\rc\n")
    assert lm_data.read_words(f) == ["a", "<eos>", "b", "c", "<eos>"]


def test_read_words_wikitext(tmp_path):
    # newline first, then non-overlapping ' . ': in "x . . y" only the first '.' is preceded by a space
    # that is not already consumed; "z .\n" -> "z . <eos> " -> "z <eos> <eos> "
    f = write(tmp_path / "w.txt", "x . . y\nz .\n")
    expected = ["x", "<eos>", ".", "y", "<eos>", "z", "<eos>", "<eos>"]
    assert lm_data.read_words(f, wikitext=True) == expected
    assert lm_data.read_words(f, wikitext=True, eos=False) == expected  # no_eos ignored for WikiText


def test_read_words_unk_mapping(tmp_path):
    f = write(tmp_path / "u.txt", "<UNK> x <unk>")
    assert lm_data.read_words(f) == ["<unk>", "x", "<unk>"]
    assert lm_data.read_words(f, cgn=True) == ["<UNK>", "x", "<UNK>"]


def test_read_words_encoding(tmp_path):
    f = write(tmp_path / "l.txt", "caf\u00e9 na\u00efve", encoding="latin-1")
    assert lm_data.read_words(f, encoding="latin-1", eos=False) == ["caf\u00e9", "na\u00efve"]
    with pytest.raises(UserError, match="cannot be decoded as utf-8"):
        lm_data.read_words(f)
    with pytest.raises(UserError, match="unknown encoding 'nope'"):
        lm_data.read_words(f, encoding="nope")
    with pytest.raises(UserError, match="does not exist"):
        lm_data.read_words(tmp_path / "missing.txt")


# ---- vocabulary ------------------------------------------------------------------------------

def test_build_vocab_order():
    # counts a:3, b:2, c:2, <eos>:1, d:1; ties by ascending word ('<' sorts before letters)
    words = "b a c a b a <eos> c d".split()
    assert list(lm_data.build_vocab(words).items()) == [
        ("a", 0), ("b", 1), ("c", 2), ("<eos>", 3), ("d", 4), ("<unk>", 5), ("<bos>", 6)]


def test_build_vocab_unk_present_and_empty_dropped():
    vocab = lm_data.build_vocab(["x", "<unk>", "<unk>", "", "", ""])
    assert vocab == {"<unk>": 0, "x": 1, "<bos>": 2}
    assert lm_data.build_vocab(["x", "<UNK>"], unk="<UNK>") == {"<UNK>": 0, "x": 1, "<bos>": 2}


def test_build_vocab_bos_in_data_keeps_its_id():
    assert lm_data.build_vocab(["<bos>", "a", "a"]) == {"a": 0, "<bos>": 1, "<unk>": 2}


def test_extend_vocab_order_of_first_occurrence():
    base = {"a": 0, "b": 1}
    extended = lm_data.extend_vocab(base, ["c", "a", "e", "d", "c", "e"])
    assert list(extended.items()) == [("a", 0), ("b", 1), ("<unk>", 2), ("c", 3), ("e", 4), ("d", 5)]
    assert base == {"a": 0, "b": 1}
    assert lm_data.extend_vocab({"<unk>": 0}, ["x"]) == {"<unk>": 0, "x": 1}


def test_words_to_ids():
    vocab = {"a": 0, "<unk>": 1, "b": 2}
    ids = lm_data.words_to_ids(["b", "zz", "a", "<unk>"], vocab)
    assert ids.dtype == np.int32 and ids.tolist() == [2, 1, 0, 1]
    with pytest.raises(UserError, match="'zz' is not in the vocabulary"):
        lm_data.words_to_ids(["zz"], {"a": 0})


def test_vocab_file_round_trip(tmp_path):
    vocab = {"b": 1, "<bos>": 3, "a": 0, "caf\u00e9": 2}
    path = tmp_path / "sub" / "vocab.dict"
    lm_data.write_vocab_file(vocab, path)
    assert path.read_text(encoding="utf-8") == "a\t0\nb\t1\ncaf\u00e9\t2\n<bos>\t3\n"
    assert lm_data.read_vocab_file(path) == vocab
    assert [p.name for p in path.parent.iterdir()] == ["vocab.dict"]  # no temporary file left


def test_write_labels_file(tmp_path):
    lm_data.write_labels_file(["the", "<unk>", "<bos>"], tmp_path / "labels.tsv")
    assert (tmp_path / "labels.tsv").read_text() == "the\n<unk>\n<bos>\n"


@pytest.mark.parametrize("text, message", [
    ("a\t0\nb 1 2\n", r"v.txt:2: expected 'word<TAB>id'"),
    ("a\tx\n", r"v.txt:1: id 'x' is not an integer"),
    ("a\t-1\n", r"v.txt:1: id -1 is negative"),
    ("a\t0\nb\t1\na\t2\n", r"v.txt:3: word 'a' already listed on line 1"),
    ("a\t0\nb\t0\n", r"v.txt:2: id 0 already used on line 1"),
    ("a\t0\nb\t2\n", r"ids must be 0..1 without gaps, id 1 is missing"),
    ("\n\n", r"no entries"),
])
def test_read_vocab_file_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        lm_data.read_vocab_file(write(tmp_path / "v.txt", text))


# ---- load_corpus -----------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    d = tmp_path / "tiny"
    write(d / "train.txt", "a b a\nc\n")
    write(d / "valid.txt", "a d\n")
    write(d / "test.txt", "b\n")
    return d


# counts in "a b a <eos> c <eos>": <eos>:2, a:2, b:1, c:1 ('<eos>' < 'a'); then <unk>, <bos>
TINY_VOCAB = {"<eos>": 0, "a": 1, "b": 2, "c": 3, "<unk>": 4, "<bos>": 5}


def test_load_corpus_tiny(tiny):
    corpus = lm_data.load_corpus(config(tiny))
    assert corpus.word_to_id == TINY_VOCAB
    assert corpus.id_to_word == ["<eos>", "a", "b", "c", "<unk>", "<bos>"]
    assert corpus.vocab_size == 6
    assert corpus.train.tolist() == [1, 2, 1, 0, 3, 0]
    assert corpus.valid.tolist() == [1, 4, 0]  # 'd' is not in the training data
    assert corpus.test.tolist() == [2, 0]
    assert corpus.train.dtype == corpus.valid.dtype == np.int32


def test_load_corpus_only_some_sets(tiny):
    corpus = lm_data.load_corpus(config(tiny), need_train=False, need_valid=False)
    assert corpus.word_to_id == TINY_VOCAB  # vocabulary still from the training file
    assert corpus.train is None and corpus.valid is None
    assert corpus.test.tolist() == [2, 0]


def test_load_corpus_no_eos(tiny):
    corpus = lm_data.load_corpus(config(tiny, no_eos=True))
    assert corpus.word_to_id == {"a": 0, "b": 1, "c": 2, "<unk>": 3, "<bos>": 4}
    assert corpus.train.tolist() == [0, 1, 0, 2]


def test_load_corpus_vocab_file_names(tmp_path):
    d = tmp_path / "d"
    write(d / "train_5k-unk.txt", "x\n")
    write(d / "valid_5k-unk.txt", "x x\n")
    write(d / "test_5k-unk.txt", "y\n")
    corpus = lm_data.load_corpus(config(d, vocab=5))
    assert corpus.word_to_id == {"<eos>": 0, "x": 1, "<unk>": 2, "<bos>": 3}
    assert corpus.valid.tolist() == [1, 1, 0] and corpus.test.tolist() == [2, 0]


def test_load_corpus_other_test_and_valid_as_test(tiny, tmp_path):
    other = write(tmp_path / "other.txt", "c c\n")
    assert lm_data.load_corpus(config(tiny, other_test=str(other))).test.tolist() == [3, 3, 0]
    corpus = lm_data.load_corpus(config(tiny, valid_as_test=True))
    assert corpus.test.tolist() == [1, 4, 0]
    corpus = lm_data.load_corpus(config(tiny, valid_as_test=True), need_valid=False)
    assert corpus.valid is None and corpus.test.tolist() == [1, 4, 0]
    with pytest.raises(UserError, match="other_test and valid_as_test True exclude each other"):
        config(tiny, other_test=str(other), valid_as_test=True)   # the config check comes first


def test_load_corpus_wikitext_and_cgn(tmp_path):
    wiki = tmp_path / "WikiText2"
    write(wiki / "train.txt", "p . q\n")
    for name in ("valid.txt", "test.txt"):
        write(wiki / name, "q\n")
    corpus = lm_data.load_corpus(config(wiki, no_eos=True))
    assert corpus.id_to_word == ["<eos>", "p", "q", "<unk>", "<bos>"]
    assert corpus.train.tolist() == [1, 0, 2, 0]

    cgn = tmp_path / "CGN"
    write(cgn / "train.txt", "<unk> w\n")
    write(cgn / "valid.txt", "v <UNK>\n")
    write(cgn / "test.txt", "w\n")
    corpus = lm_data.load_corpus(config(cgn))
    # '<unk>' became '<UNK>' (counts <UNK>:1, <eos>:1, w:1; '<U' < '<e'); no lower-case <unk> added
    assert corpus.word_to_id == {"<UNK>": 0, "<eos>": 1, "w": 2, "<bos>": 3}
    assert corpus.valid.tolist() == [0, 0, 1]


def test_load_corpus_read_vocab_from_file_and_save_dict(tiny, tmp_path):
    given = write(tmp_path / "given.dict", "b\t0\n<eos>\t1\n")
    saved = tmp_path / "out" / "saved.dict"
    corpus = lm_data.load_corpus(config(tiny, read_vocab_from_file=str(given), save_dict=str(saved)))
    # <unk> added first, then unseen training words in order of first occurrence: a, c
    assert corpus.word_to_id == {"b": 0, "<eos>": 1, "<unk>": 2, "a": 3, "c": 4}
    assert corpus.train.tolist() == [3, 0, 3, 1, 4, 1]
    assert saved.read_text() == "b\t0\n<eos>\t1\n<unk>\t2\na\t3\nc\t4\n"
    assert given.read_text() == "b\t0\n<eos>\t1\n"
    with pytest.raises(UserError, match="would overwrite the read_vocab_from_file input"):
        lm_data.load_corpus(config(tiny, read_vocab_from_file=str(given), save_dict=str(given)))


def test_load_corpus_fixed_vocab_eos_and_unk_tokens(tiny, tmp_path):
    # an imported model's vocabulary: used as it is, no train.txt needed without training
    given = write(tmp_path / "given.dict", "b\t0\n</s>\t1\n<oov>\t2\n")
    (tiny / "train.txt").unlink()
    corpus = lm_data.load_corpus(config(tiny, read_vocab_from_file=str(given), fixed_vocab=True, eos_token="</s>",
                                        unk_token="<oov>"), need_train=False)
    assert corpus.word_to_id == {"b": 0, "</s>": 1, "<oov>": 2} and corpus.train is None
    assert corpus.valid.tolist() == [2, 2, 1]      # "a d\n": unseen words -> <oov>, the line end -> </s>
    assert corpus.test.tolist() == [0, 1]          # "b\n"
    with pytest.raises(UserError, match="train file .* not found"):
        lm_data.load_corpus(config(tiny, read_vocab_from_file=str(given), fixed_vocab=True))
    with pytest.raises(UserError, match=r"fixed_vocab True needs read_vocab_from_file"):
        config(tiny, fixed_vocab=True)


def test_load_corpus_save_dict_built_vocab(tiny, tmp_path):
    saved = tmp_path / "v.dict"
    lm_data.load_corpus(config(tiny, save_dict=str(saved)))
    assert lm_data.read_vocab_file(saved) == TINY_VOCAB


def test_load_corpus_missing_files(tiny, tmp_path):
    (tiny / "test.txt").unlink()
    with pytest.raises(UserError, match=r"test file .*test.txt not found \(from data_path"):
        lm_data.load_corpus(config(tiny))
    lm_data.load_corpus(config(tiny), need_test=False)  # test file not needed
    with pytest.raises(UserError, match=r"train file .*train_3k-unk.txt not found \(from data_path .* and vocab 3\)"):
        lm_data.load_corpus(config(tiny, vocab=3))
    with pytest.raises(UserError, match=r"nope.txt not found \(from other_test\)"):
        lm_data.load_corpus(config(tiny, other_test=str(tmp_path / "nope.txt")))
    with pytest.raises(UserError, match=r"vocabulary file .*v.dict not found \(from read_vocab_from_file\)"):
        lm_data.load_corpus(config(tiny, read_vocab_from_file=str(tmp_path / "v.dict")), need_test=False)


# ---- batching --------------------------------------------------------------------------------

def test_make_windows_by_hand():
    # 25 ids, B=2: batch_len 12, id 24 dropped; rows [0..11] and [12..23]; N = 12 // 3 - 1 = 3
    inputs, targets = lm_data.make_windows(np.arange(25), 2, 3)
    assert inputs.dtype == targets.dtype == np.int32
    assert inputs.shape == targets.shape == (3, 2, 3)
    assert inputs.tolist() == [[[0, 1, 2], [12, 13, 14]],
                               [[3, 4, 5], [15, 16, 17]],
                               [[6, 7, 8], [18, 19, 20]]]
    assert targets.tolist() == [[[1, 2, 3], [13, 14, 15]],
                                [[4, 5, 6], [16, 17, 18]],
                                [[7, 8, 9], [19, 20, 21]]]
    assert lm_data.num_batches(25, 2, 3) == 3


def original_windows(ids, batch_size, num_steps):
    """The original's iterator: batches 0..num_samples, the last one thrown away."""
    batch_len = len(ids) // batch_size
    data = np.array(ids[:batch_size * batch_len]).reshape(batch_size, batch_len)
    num_samples = batch_len // num_steps - 1
    xs, ys = [], []
    for i in range(num_samples):
        xs.append(data[:, i * num_steps:(i + 1) * num_steps])
        ys.append(data[:, i * num_steps + 1:(i + 1) * num_steps + 1])
    return np.stack(xs), np.stack(ys)


@pytest.mark.parametrize("n, b, t", [(1000, 7, 5), (64, 4, 8), (70, 1, 1), (36, 3, 6)])
def test_make_windows_matches_original_iterator(n, b, t):
    ids = np.random.default_rng(0).integers(0, 50, n)
    inputs, targets = lm_data.make_windows(ids, b, t)
    want_x, want_y = original_windows(ids.tolist(), b, t)
    np.testing.assert_array_equal(inputs, want_x)
    np.testing.assert_array_equal(targets, want_y)
    assert len(inputs) == lm_data.num_batches(n, b, t)
    # valid_batches: the first windows of the same pass, not a pass over a shorter text
    first_x, first_y = lm_data.make_windows(ids, b, t, max_windows=2)
    np.testing.assert_array_equal(first_x, want_x[:2])
    np.testing.assert_array_equal(first_y, want_y[:2])


def test_make_windows_too_short():
    assert lm_data.make_windows(np.arange(12), 2, 3)[0].shape == (1, 2, 3)  # exactly 2*B*T ids
    with pytest.raises(UserError, match=r"valid \(11 ids\) is too short for batch_size 2 x num_steps 3"):
        lm_data.make_windows(np.arange(11), 2, 3, what="valid")
    with pytest.raises(UserError, match="must be >= 1"):
        lm_data.make_windows(np.arange(11), 0, 3)


# ---- pretrained embeddings -------------------------------------------------------------------

@pytest.fixture
def pretrained(tmp_path):
    d = tmp_path / "emb"
    d.mkdir()
    np.save(d / "all.npy", np.arange(8, dtype=np.float64).reshape(4, 2) / 4)
    write(d / "dict", "b\t2\nzz\t0\na\t3\n")
    return d


def test_load_pretrained_embeddings(pretrained):
    ids, vectors = lm_data.load_pretrained_embeddings(pretrained, {"a": 0, "b": 1, "c": 2}, 2)
    assert ids.dtype == np.int32 and ids.tolist() == [0, 1]
    assert vectors.dtype == np.float32
    assert vectors.tolist() == [[1.5, 1.75], [1.0, 1.25]]  # rows 3 and 2
    ids, vectors = lm_data.load_pretrained_embeddings(pretrained, {"c": 0}, 2)
    assert ids.shape == (0,) and vectors.shape == (0, 2)


def test_load_pretrained_embeddings_errors(pretrained, tmp_path):
    vocab = {"a": 0}
    with pytest.raises(UserError, match="rows have 2 values but embedding_size is 3"):
        lm_data.load_pretrained_embeddings(pretrained, vocab, 3)
    write(pretrained / "dict", "a\t1\nb\t4\n")
    with pytest.raises(UserError, match=r"dict:2: row 4 is out of range .*all.npy has 4 rows"):
        lm_data.load_pretrained_embeddings(pretrained, vocab, 2)
    write(pretrained / "dict", "a 1 extra\n")
    with pytest.raises(UserError, match=r"dict:1: expected 'word<TAB>row'"):
        lm_data.load_pretrained_embeddings(pretrained, vocab, 2)
    np.save(pretrained / "all.npy", np.zeros((4, 2), dtype=np.int64))
    with pytest.raises(UserError, match="expected a 2-d float array"):
        lm_data.load_pretrained_embeddings(pretrained, vocab, 2)
    (pretrained / "dict").unlink()
    with pytest.raises(UserError, match=r"dict not found"):
        lm_data.load_pretrained_embeddings(pretrained, vocab, 2)
    with pytest.raises(UserError, match="directory .* not found"):
        lm_data.load_pretrained_embeddings(tmp_path / "none", vocab, 2)


# ---- real PTB --------------------------------------------------------------------------------

PTB_MD5 = {"train": "f26c4b92c5fdc7b3f8c7cdcb991d8420", "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
           "test": "8b80168b89c18661a38ef683c0dc3721"}


def test_ptb(ptb_dir):
    for split, md5 in PTB_MD5.items():
        assert hashlib.md5((ptb_dir / f"{split}.txt").read_bytes()).hexdigest() == md5
    corpus = lm_data.load_corpus(config(ptb_dir))
    # train.txt has 9,999 distinct words (its 10k vocabulary minus <eos>, <unk> included);
    # + <eos> from the newlines = 10,000; <unk> is present so none is added; + <bos> = 10,001
    assert corpus.vocab_size == 10001
    assert corpus.id_to_word[:5] == ["the", "<unk>", "<eos>", "N", "of"]
    assert corpus.id_to_word[-1] == "<bos>"
    # words + one <eos> per line: 887,521 + 42,068; 70,390 + 3,370; 78,669 + 3,761
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929589, 73760, 82430)
    # valid/test have no words outside the training vocabulary: only the corpus's own <unk> map to 1
    assert int(np.sum(corpus.valid == 1)) == 3485 and int(np.sum(corpus.test == 1)) == 4794
    # B=20, T=35: batch_len 929589 // 20 = 46479, N = 46479 // 35 - 1 = 1326
    inputs, targets = lm_data.make_windows(corpus.train, 20, 35)
    assert inputs.shape == (1326, 20, 35)
    assert inputs[0, 1, 0] == corpus.train[46479] and targets[-1, -1, -1] == corpus.train[19 * 46479 + 1326 * 35]
