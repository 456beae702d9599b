"""Bin an LM vocabulary by training-set frequency into classes that one gradient pass averages beside the POS classes."""
# The papers compare how long frequent and infrequent words are remembered. A bin is a range
# of training counts; each bin becomes a tag (FREQ_lo-hi) that is added to the words' POS tags
# in the mapping, and a class file holding that one tag, so that the gradient pass (which
# reads one mapping) averages per POS class and per frequency bin at once.
#
# Bins (--bins):
#   decades    counts 1-9, 10-99, 100-999, ... (log-spaced, base 10)
#   quantiles  --n-bins bins holding about equal shares of the TRAINING tokens, cut at word
#              boundaries (words sorted by count)
# Then, from the rarest bin up, a bin with fewer than --min-valid-tokens validation tokens is
# merged into the next more frequent bin (the most frequent one into the one below), so every
# average rests on enough occurrences. <eos>, <unk> and <bos> are not words of one frequency
# and get no bin; neither do vocabulary words that never occur in the training data.
import collections
import csv
import io
import os

from state_gradients.core import configuration, lm_data
from state_gradients.core.errors import UserError

EXCLUDED = ("<eos>", "<unk>", "<UNK>", "<bos>")
TAG_PREFIX = "FREQ_"
CLASS_PREFIX = "freq_"
BIN_TABLE = "freq_bins.csv"


def bin_label(lo, hi):
    """'1-9', '10-99', or '10000+' when the bin is open above (hi None)."""
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def decade_edges(max_count):
    """Lower edges 1, 10, 100, ... up to the decade holding max_count."""
    edges, lo = [], 1
    while lo <= max_count:
        edges.append(lo)
        lo *= 10
    return edges


def quantile_edges(counts, n_bins):
    """Lower count edges of n_bins bins with about equal shares of the tokens (words sorted by count).

    A word's count is never split between bins, so fewer bins result when a few words hold
    most of the tokens.
    """
    values = sorted(c for c in counts.values() if c > 0)
    total = sum(values)
    edges, running = [values[0]], 0
    for count in values:
        # a new bin starts at the first word whose token mass lies mostly past the next cut point
        if running + count / 2 > total * len(edges) / n_bins and count > edges[-1] and len(edges) < n_bins:
            edges.append(count)
        running += count
    return edges


def make_bins(train_counts, valid_counts, edges, min_valid_tokens):
    """[(lo, hi or None, words)] from lower edges, rarest first, after merging bins with too few
    validation tokens; every word of train_counts with a count > 0 is in exactly one bin."""
    bins = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] - 1 if i + 1 < len(edges) else None
        words = [w for w, c in train_counts.items() if c >= lo and (hi is None or c <= hi)]
        bins.append([lo, hi, words])
    bins = [b for b in bins if b[2]]
    if not bins:
        raise UserError("no vocabulary word occurs in the training data: nothing to bin")

    def valid_tokens(b):
        return sum(valid_counts.get(w, 0) for w in b[2])

    i = 0
    while i < len(bins) and len(bins) > 1:
        if valid_tokens(bins[i]) >= min_valid_tokens:
            i += 1
            continue
        j = i + 1 if i + 1 < len(bins) else i - 1       # merge into the more frequent neighbour
        lo, hi = min(bins[i][0], bins[j][0]), (None if None in (bins[i][1], bins[j][1])
                                               else max(bins[i][1], bins[j][1]))
        bins[min(i, j)] = [lo, hi, bins[i][2] + bins[j][2]]
        del bins[max(i, j)]
        i = min(i, j)
    return [tuple(b) for b in bins]


def word_counts(words, vocabulary):
    """Counts of the vocabulary's words in a token list (tokens outside it are ignored)."""
    counts = collections.Counter(words)
    return {w: counts.get(w, 0) for w in vocabulary}


def frequency_bins(config_path, dict_path, bins="decades", n_bins=5, min_valid_tokens=1000):
    """(rows, tag of word) for the vocabulary of dict_path with the data of a config's data_path.

    rows: dicts (class, tag, lo, hi, words, train_tokens, valid_tokens), rarest bin first.
    The training and validation text is read as the LM reads it (same <eos>, WikiText and
    encoding rules).
    """
    config = configuration.load_config(config_path, train=False, valid=True, test=False, warn=lambda m: None)
    word_to_id = lm_data.read_vocab_file(dict_path, config.encoding)
    def read(split):
        path = lm_data.data_file(config, split)
        if not os.path.isfile(path):
            raise UserError(f"{split} file {path} not found (data_path of {config_path})")
        return lm_data.read_words(path, eos=not config.no_eos, wikitext="WikiText" in config.data_path,
                                  cgn="CGN" in config.data_path, encoding=config.encoding)

    vocabulary = [w for w in lm_data.id_list(word_to_id) if w not in EXCLUDED]
    train_counts = {w: c for w, c in word_counts(read("train"), vocabulary).items() if c > 0}
    valid_counts = word_counts(read("valid"), vocabulary)
    if not train_counts:
        raise UserError(f"no word of {dict_path} occurs in the training data of {config_path}")
    if bins == "decades":
        edges = decade_edges(max(train_counts.values()))
    else:
        edges = quantile_edges(train_counts, n_bins)
    rows, tag_of = [], {}
    for lo, hi, words in make_bins(train_counts, valid_counts, edges, min_valid_tokens):
        label = bin_label(lo, hi)
        tag = TAG_PREFIX + label
        rows.append({"class": CLASS_PREFIX + label, "tag": tag, "lo": lo, "hi": "" if hi is None else hi,
                     "words": len(words), "train_tokens": sum(train_counts[w] for w in words),
                     "valid_tokens": sum(valid_counts[w] for w in words)})
        tag_of.update({w: tag for w in words})
    return rows, tag_of, lm_data.id_list(word_to_id)


def table_text(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def combined_mapping(words, tag_of, pos_mapping=None):
    """word -> POS tags (from pos_mapping, if any) plus the word's frequency tag, for every word."""
    mapping = {}
    for word in words:
        tags = set(pos_mapping.get(word, set())) if pos_mapping else set()
        if any(t.startswith(TAG_PREFIX) for t in tags):
            raise UserError(f"the POS mapping already gives {word!r} a {TAG_PREFIX}* tag: "
                            "pass the POS-only mapping")
        if word in tag_of:
            tags.add(tag_of[word])
        mapping[word] = tags
    return mapping
