"""Corpora, plain texts and word classes: the type mapping, per-token tags and frequency bins."""
# Shape letters: C classes (row 0: all words), V vocabulary, n tokens.
import os

from state_gradients.api.models import _as_config
from state_gradients.classes import freq_classes
from state_gradients.core import formats, lm_data


def read_corpus(config, *, train=False, valid=True, test=False):
    """lm_data.Corpus of a config (a path or a Config): its vocabulary and the id arrays of the splits asked for,
    read as the LM reads them."""
    return lm_data.load_corpus(_as_config(config), need_train=train, need_valid=valid, need_test=test)


def read_text(path, model, *, eos=True, encoding="utf-8"):
    """[n] int32 ids of a plain text file in a Model's vocabulary (line ends become <eos> unless eos is False)."""
    return model.ids(lm_data.read_words(os.fspath(path), eos=eos, encoding=encoding))


def read_pos_mapping(path):
    """{word: set of its tags} of a POS mapping file (the type-level classes; formats.py's schema)."""
    return formats.read_pos_mapping(os.fspath(path))


def read_pos_class(path):
    """The set of tags of a POS class file (one tag per line; the class is the file's base name)."""
    return formats.read_pos_class(os.fspath(path))


def class_masks(pos_mapping, class_files, id_to_word):
    """[C+1, V] 0/1 word-class table from a POS mapping file and class files: row 0 all words."""
    return formats.class_masks(pos_mapping, list(class_files), list(id_to_word))


def read_token_tags(tags_path, data_path, *, eos=True, encoding="utf-8"):
    """[n] the tag sets of every token of data_path (the pos_tokens file of the token-level classes)."""
    return formats.read_token_tags(os.fspath(tags_path), os.fspath(data_path), eos, encoding)


def token_class_masks(token_tags, class_files):
    """[C+1, n] 0/1 token-class table: row 0 all tokens, row c the tokens with a tag of class file c."""
    return formats.token_class_masks(token_tags, list(class_files))


def frequency_bins(config, dict_path, bins="decades", n_bins=5, min_valid_tokens=1000):
    """(rows, {word: bin tag}, vocabulary) of sg-freq-classes: the vocabulary's words binned by training
    frequency; rows: dicts (class, tag, lo, hi, words, train_tokens, valid_tokens), rarest first."""
    return freq_classes.frequency_bins(os.fspath(config), os.fspath(dict_path), bins, n_bins, min_valid_tokens)
