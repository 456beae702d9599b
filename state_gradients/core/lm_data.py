"""Language-model data: reading text files, the word->id vocabulary, B x T windows, pretrained embeddings."""
import collections
import os

import numpy as np

from state_gradients.core import fileio
from state_gradients.core.errors import UserError
from state_gradients.core.fileio import read_text

# Shapes: N number of windows in a pass, B batch, T time (num_steps), E embedding, V vocab.

EOS = "<eos>"
BOS = "<bos>"
UNK = "<unk>"
CGN_UNK = "<UNK>"  # CGN data spells the unknown-word token in capitals


def read_words(path, *, eos=True, wikitext=False, cgn=False, encoding="utf-8", eos_token=EOS):
    """All tokens of a file; newlines become eos_token (always for WikiText, which also turns ' . ' into it)."""
    text = read_text(path, "data file", encoding, newline="")
    if wikitext:
        # WikiText has several sentences per line; no_eos is ignored for it, as in the original
        text = text.replace("\n", f" {eos_token} ").replace(" . ", f" {eos_token} ")
    elif eos:
        text = text.replace("\n", f" {eos_token} ")
    words = text.split()
    unk, other = (CGN_UNK, UNK) if cgn else (UNK, CGN_UNK)
    return [unk if w == other else w for w in words]


def build_vocab(words, *, unk=UNK):
    """word->id by descending count then ascending word; '' dropped; unk added if absent; <bos> last."""
    counts = collections.Counter(w for w in words if w != "")
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    word_to_id = {w: i for i, (w, _) in enumerate(ordered)}
    for special in (unk, BOS):
        # a <bos> that occurs in the data keeps its id, so the ids stay 0..V-1
        word_to_id.setdefault(special, len(word_to_id))
    return word_to_id


def _read_word_int_lines(path, encoding, what):
    """(line number, word, int) for every non-blank `word<TAB>int` line; duplicate words are refused."""
    entries, seen = [], {}
    for lineno, line in enumerate(read_text(path, "word->id file", encoding, newline="").split("\n"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(f"{path}:{lineno}: expected 'word<TAB>{what}', got {line.strip()!r}")
        word, number = fields
        try:
            value = int(number)
        except ValueError:
            raise UserError(f"{path}:{lineno}: {what} {number!r} is not an integer") from None
        if value < 0:
            raise UserError(f"{path}:{lineno}: {what} {value} is negative")
        if word in seen:
            raise UserError(f"{path}:{lineno}: word {word!r} already listed on line {seen[word]}")
        seen[word] = lineno
        entries.append((lineno, word, value))
    return entries


def read_vocab_file(path, encoding="utf-8"):
    """word->id map from `word<TAB>id` lines; the ids must be exactly 0..n-1."""
    entries = _read_word_int_lines(path, encoding, "id")
    if not entries:
        raise UserError(f"{path}: the vocabulary file has no entries")
    first_line = {}
    for lineno, word, i in entries:
        if i in first_line:
            raise UserError(f"{path}:{lineno}: id {i} already used on line {first_line[i]}")
        first_line[i] = lineno
    missing = sorted(set(range(len(entries))) - set(first_line))
    if missing:
        raise UserError(f"{path}: ids must be 0..{len(entries) - 1} without gaps, id {missing[0]} is missing")
    return {word: i for _, word, i in entries}


def id_list(word_to_id):
    """Words in id order (the id_to_word list)."""
    return sorted(word_to_id, key=word_to_id.__getitem__)


def write_vocab_file(word_to_id, path, encoding="utf-8"):
    """Write `word<TAB>id` lines in id order (atomic)."""
    text = "".join(f"{w}\t{word_to_id[w]}\n" for w in id_list(word_to_id))
    fileio.write_bytes(path, text.encode(encoding))


def write_labels_file(id_to_word, path, encoding="utf-8"):
    """One word per line in id order (TensorBoard projector's labels.tsv; atomic)."""
    fileio.write_bytes(path, "".join(f"{w}\n" for w in id_to_word).encode(encoding))


def extend_vocab(word_to_id, words, *, unk=UNK):
    """A copy of word_to_id plus unk if missing, then unseen words with the next ids in order of first occurrence."""
    extended = dict(word_to_id)
    for word in [unk, *words]:
        if word != "" and word not in extended:
            extended[word] = len(extended)
    return extended


def words_to_ids(words, word_to_id, *, unk=UNK):
    """int32 ids; words not in the vocabulary get the id of unk."""
    unk_id = word_to_id.get(unk)
    get = word_to_id.get
    ids = [get(w, unk_id) for w in words]
    if unk_id is None and None in ids:
        word = words[ids.index(None)]
        raise UserError(f"word {word!r} is not in the vocabulary, which has no {unk}")
    return np.asarray(ids, dtype=np.int32)


SPLIT_NAMES = {"train": "training data", "valid": "validation data", "test": "test data"}


class Corpus:
    """Vocabulary and the id arrays of the data sets (None for a set that was not asked for)."""

    def __init__(self, word_to_id, train=None, valid=None, test=None, unk=UNK, files=None):
        self.word_to_id = word_to_id
        self.id_to_word = id_list(word_to_id)
        self.train, self.valid, self.test = train, valid, test
        self.unk = unk
        self.files = files or {}   # split -> the file it was read from

    def describe(self, split):
        """'validation data data/ptb/valid.txt': the split and its file, for messages."""
        path = self.files.get(split)
        return SPLIT_NAMES[split] + (f" {path}" if path else "")

    @property
    def vocab_size(self):
        return len(self.id_to_word)


def _data_files(config):
    """{'train'|'valid'|'test': (path, the config keys it came from)}."""
    origin = f"data_path {config.data_path!r}"
    if config.vocab:
        origin += f" and vocab {config.vocab}"
        names = {s: f"{s}_{config.vocab}k-unk.txt" for s in ("train", "valid", "test")}
    else:
        names = {s: f"{s}.txt" for s in ("train", "valid", "test")}
    files = {s: (os.path.join(config.data_path, name), origin) for s, name in names.items()}
    other_test = getattr(config, "other_test", None)
    valid_as_test = getattr(config, "valid_as_test", False)
    if other_test and valid_as_test:
        raise UserError(f"other_test {other_test!r} and valid_as_test True both choose the test set: keep one")
    if other_test:
        files["test"] = (other_test, "other_test")
    elif valid_as_test:
        files["test"] = (files["valid"][0], origin + " and valid_as_test")
    return files


def data_file(config, split):
    """The file a config reads for split 'train', 'valid' or 'test'."""
    return _data_files(config)[split][0]


def describe_split(config, split):
    """'validation data data/ptb/valid.txt': the split of a config and its file, for messages."""
    return f"{SPLIT_NAMES[split]} {data_file(config, split)}"


def load_corpus(config, *, need_train=True, need_valid=True, need_test=True):
    """Vocabulary (always from the training file) and the id arrays of the requested data sets."""
    data_path = config.data_path
    encoding = getattr(config, "encoding", None) or "utf-8"
    eos = not getattr(config, "no_eos", False)
    wikitext, cgn = "WikiText" in data_path, "CGN" in data_path
    unk = getattr(config, "unk_token", None) or (CGN_UNK if cgn else UNK)
    eos_token = getattr(config, "eos_token", None) or EOS
    fixed = getattr(config, "fixed_vocab", False)
    vocab_from = getattr(config, "read_vocab_from_file", None)
    save_dict = getattr(config, "save_dict", None)

    files = _data_files(config)
    # a fixed vocabulary needs no training text unless the model trains on it
    read_train = need_train or not fixed
    wanted = {"train": read_train, "valid": need_valid, "test": need_test}
    checks = [(path, f"{s} file", origin) for s, (path, origin) in files.items() if wanted[s]]
    if vocab_from:
        checks.append((vocab_from, "vocabulary file", "read_vocab_from_file"))
    for path, what, origin in checks:
        if not os.path.isfile(path):
            raise UserError(f"{what} {path} not found (from {origin})")
    if vocab_from and save_dict and os.path.abspath(save_dict) == os.path.abspath(vocab_from):
        raise UserError(f"save_dict {save_dict!r} would overwrite the read_vocab_from_file input")

    def read(path):
        return read_words(path, eos=eos, wikitext=wikitext, cgn=cgn, encoding=encoding, eos_token=eos_token)

    train_words = read(files["train"][0]) if read_train else None
    if fixed:
        word_to_id = read_vocab_file(vocab_from, encoding)
    elif vocab_from:
        word_to_id = extend_vocab(read_vocab_file(vocab_from, encoding), train_words, unk=unk)
    else:
        word_to_id = build_vocab(train_words, unk=unk)
    if save_dict:
        write_vocab_file(word_to_id, save_dict, encoding)

    def ids(split):
        return words_to_ids(read(files[split][0]), word_to_id, unk=unk)

    train = words_to_ids(train_words, word_to_id, unk=unk) if need_train else None
    valid = ids("valid") if need_valid else None
    if need_test and need_valid and files["test"][0] == files["valid"][0]:
        test = valid
    else:
        test = ids("test") if need_test else None
    return Corpus(word_to_id, train, valid, test, unk, files={s: path for s, (path, _) in files.items()})


def num_batches(n_ids, batch_size, num_steps):
    """Windows in one pass: batch_len // T - 1, batch_len = n_ids // B."""
    return (n_ids // batch_size) // num_steps - 1


def make_windows(ids, batch_size, num_steps, *, what="data", max_windows=None):
    """(inputs, targets), int32 [N, B, T]: row r of the batch is a contiguous stretch; targets shifted by one.

    max_windows: keep only batches 0..max_windows-1 of the pass (same rows as the whole pass).
    """
    if batch_size < 1 or num_steps < 1:
        raise UserError(f"batch_size {batch_size} and num_steps {num_steps} must be >= 1")
    ids = np.asarray(ids, dtype=np.int32)
    n = num_batches(len(ids), batch_size, num_steps)
    if n <= 0:
        raise UserError(f"{what} ({len(ids)} ids) is too short for batch_size {batch_size} x num_steps "
                        f"{num_steps}: it needs at least {2 * batch_size * num_steps} ids")
    if max_windows is not None:
        n = min(n, max_windows)
    batch_len = len(ids) // batch_size
    data = ids[:batch_size * batch_len].reshape(batch_size, batch_len)
    span = n * num_steps

    def cut(offset):  # [B, span] -> [N, B, T]
        part = data[:, offset:offset + span].reshape(batch_size, n, num_steps)
        return np.ascontiguousarray(part.transpose(1, 0, 2))

    return cut(0), cut(1)


PRETRAINED_MATRIX = "all.npy"   # a pretrained_embeddings folder (convert_word2vec2tf.py writes it) ...
PRETRAINED_VOCAB = "dict"       # ... and its word -> row map


def load_pretrained_embeddings(directory, word_to_id, embedding_size, encoding="utf-8"):
    """(ids int32 [n], vectors float32 [n, E]) for the vocabulary words listed in directory/dict, by id."""
    matrix_path = os.path.join(directory, PRETRAINED_MATRIX)
    dict_path = os.path.join(directory, PRETRAINED_VOCAB)
    if not os.path.isdir(directory):
        raise UserError(f"pretrained_embeddings directory {directory} not found")
    for path in (matrix_path, dict_path):
        if not os.path.isfile(path):
            raise UserError(f"{path} not found (pretrained_embeddings needs all.npy and dict)")
    try:
        matrix = np.load(matrix_path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserError(f"{matrix_path}: not a readable .npy array ({err})") from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise UserError(f"{matrix_path}: expected a 2-d float array, got shape {matrix.shape} {matrix.dtype}")
    if matrix.shape[1] != embedding_size:
        raise UserError(f"{matrix_path}: rows have {matrix.shape[1]} values but embedding_size is {embedding_size}")
    found = []
    for lineno, word, row in _read_word_int_lines(dict_path, encoding, "row"):
        if row >= matrix.shape[0]:
            raise UserError(f"{dict_path}:{lineno}: row {row} is out of range ({matrix_path} has "
                            f"{matrix.shape[0]} rows)")
        if word in word_to_id:
            found.append((word_to_id[word], row))
    found.sort()
    ids = np.array([i for i, _ in found], dtype=np.int32)
    rows = np.array([r for _, r in found], dtype=np.int64)
    return ids, matrix[rows].astype(np.float32).reshape(len(found), embedding_size)
