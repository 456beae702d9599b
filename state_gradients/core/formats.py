"""The files the gradient pass writes and the analysis scripts read: POS mapping and class files, dump layout, averages."""
# Shape letters: C classes (row 0: all words), V vocabulary.
#
# TensorFlow-free, so that tf_scripts (which writes these files) and aux_scripts (which reads
# them) share one definition without tf_scripts depending on aux_scripts:
#
#   POS mapping       `word ['T1', 'T2']` per line (also `word T1|T2`, `word T1 T2`, `word not in list`)
#   POS class file    one tag per line; the class name is the file's base name without extension
#   dump              GRADROOT[/timestep_{t}]/delay_{k}/{n}.npy (H x E) | all.npz, and mapping.txt
#                     lines `n<TAB>word at t-k<TAB>words t-k..t joined by '-' with a trailing '-'`
#   averages          GRADROOT/delay_{k}_avg[_{class}].npy and delay_{k}_count[_{class}].txt
import ast
import math
import os
import re

import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.core.fileio import atomic_write_text, read_lines, read_text

NPZ_NAME = "all.npz"
OVERALL = "overall"      # the class of all words: row 0 of the class masks, first in every table
MAPPING_NAME = "mapping.txt"


# --------------------------------------------------------------------------------------------
# POS mapping and POS class files
# --------------------------------------------------------------------------------------------

NO_TAGS = "not in list"
_TAG_RE = re.compile(r"^[^\s|]+$")


def _parse_tags(rest, path, lineno):
    """Tags of one POS-mapping line after the word: `['NN', 'VB']`, `NN|VB`, `NN VB` or `not in list`."""
    where = f"{path} line {lineno}"
    if rest == NO_TAGS:
        return set()
    if rest.startswith("["):
        # A Python list literal, as the original printed it; literal_eval copes with tags like ',' and "''".
        try:
            raw = ast.literal_eval(rest)
        except (ValueError, SyntaxError):
            raw = None
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise UserError(f"{where}: malformed tag list {rest!r} (expected e.g. `bank ['NN', 'VB']`)")
    else:
        raw = rest.split()
    tags = set()
    for item in raw:
        for tag in item.split("|"):
            if not _TAG_RE.match(tag):
                raise UserError(f"{where}: malformed tag {tag!r} in {rest!r} "
                                f"(expected `word ['T1', 'T2']`, `word T1|T2`, `word T1 T2` or `word {NO_TAGS}`)")
            tags.add(tag)
    return tags


def read_pos_mapping(path):
    """Read a POS mapping file: word -> set of its possible tags.

    One word per line followed by its tags, in any of the formats of the original scripts:
    `bank ['NN', 'VB']`, tags joined by `|` (`bank NN|VB`, also inside the brackets), plain
    `bank NN VB`; `word not in list` (or `word []`) gives the empty set. Blank lines are skipped.
    A line with a word but no tags, a malformed tag, or a word listed twice raises UserError
    naming the file and line.
    """
    mapping = {}
    first_line = {}
    for lineno, line in enumerate(read_lines(path, "POS mapping file"), start=1):
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        if len(parts) == 1:
            raise UserError(f"{path} line {lineno}: word {parts[0]!r} has no tags "
                            f"(write `{parts[0]} {NO_TAGS}` for a word without tags)")
        word, rest = parts[0], " ".join(parts[1].split())
        if word in mapping:
            raise UserError(f"{path} line {lineno}: word {word!r} already listed on line {first_line[word]}")
        mapping[word] = _parse_tags(rest, path, lineno)
        first_line[word] = lineno
    if not mapping:
        raise UserError(f"POS mapping file {path} is empty")
    return mapping


def write_pos_mapping(mapping, path):
    """Write word -> tags as `word ['T1', 'T2']` lines (tags sorted), `word not in list` for none; atomic."""
    lines = []
    for word, tags in mapping.items():
        if not word or any(ch.isspace() for ch in word):
            raise UserError(f"cannot write POS mapping {path}: word {word!r} is empty or contains white space")
        for tag in tags:
            if not isinstance(tag, str) or not _TAG_RE.match(tag):
                raise UserError(f"cannot write POS mapping {path}: word {word!r} has malformed tag {tag!r}")
        if tags:
            lines.append(f"{word} [{', '.join(repr(t) for t in sorted(tags))}]")
        else:
            lines.append(f"{word} {NO_TAGS}")
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_pos_class(path):
    """Read a POS class file: one tag per line (blank lines ignored) -> set of tags; UserError when empty."""
    tags = set()
    for lineno, line in enumerate(read_lines(path, "POS class file"), start=1):
        tag = line.strip()
        if not tag:
            continue
        if not _TAG_RE.match(tag):
            raise UserError(f"{path} line {lineno}: {tag!r} is not a single POS tag (one tag per line)")
        tags.add(tag)
    if not tags:
        raise UserError(f"POS class file {path} holds no tags")
    return tags


def class_name(path):
    """Name of a POS class in output file names: the file's base name without its extension.

    `classes/nouns` and `classes/nouns.txt` both give `nouns`, so the averages are
    `delay_{k}_avg_nouns.npy`. (The original used the whole base name, extension included;
    for the extension-less class files it shipped the two agree.)
    """
    name = os.path.splitext(os.path.basename(os.path.normpath(str(path))))[0]
    if not name or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", name):
        raise UserError(f"POS class file {path}: its name {name!r} cannot name output files "
                        "(use letters, digits, '_', '-', '.', '+')")
    return name


def class_masks(pos_mapping, class_files, id_to_word):
    """[C+1, V] 0/1 table: row 0 all words, row c: words with a tag in class file c."""
    mapping = read_pos_mapping(pos_mapping) if class_files else {}
    table = np.ones((len(class_files) + 1, len(id_to_word)), np.float64)
    for c, path in enumerate(class_files, start=1):
        tags = read_pos_class(path)
        table[c] = [1.0 if mapping.get(w, set()) & tags else 0.0 for w in id_to_word]
    return table


def read_token_tags(tags_path, data_path, eos, encoding="utf-8"):
    """The tag sets of every token of data_path, in the order lm_data.read_words gives its tokens.

    tags_path: one line per line of data_path, one field per word and a last field for the line's
    <eos>; a field may join several tags with '|', and a tag may end in '*W' (W a positive
    number: the token's weight in the classes that this tag selects; token_class_masks). eos
    False (no_eos): the <eos> fields are dropped, as the data has no <eos> tokens. UserError
    naming the file and line on a mismatch or a bad weight.
    """
    data = read_text(data_path, "data file", encoding, newline="").split("\n")
    tags = read_text(tags_path, "pos_tokens file", "utf-8", newline="").split("\n")
    # a final newline ends the last line: it gives an <eos> and no line after it
    ends_with_newline = data[-1] == ""
    if ends_with_newline:
        data.pop()
    if tags and tags[-1] == "":
        tags.pop()
    if len(tags) != len(data):
        raise UserError(f"{tags_path} has {len(tags)} lines but {data_path} has {len(data)}: pos_tokens needs one "
                        "line of tags per data line")
    out = []
    for lineno, (words, fields) in enumerate(zip(data, tags), start=1):
        words, fields = words.split(), fields.split()
        if len(fields) != len(words) + 1:
            raise UserError(f"{tags_path} line {lineno}: {len(fields)} tags for the {len(words)} words of {data_path} "
                            f"line {lineno} and its <eos> (expected {len(words) + 1})")
        has_eos = eos and (ends_with_newline or lineno < len(data))
        line_tags = [set(field.split("|")) for field in fields[:len(words) + has_eos]]
        for tags in line_tags:
            for tag in tags:
                try:
                    split_weight(tag)
                except ValueError as err:
                    raise UserError(f"{tags_path} line {lineno}: {err}") from None
        out += line_tags
    return out


def split_weight(tag):
    """(tag, weight) of a pos_tokens tag: 'NN*0.25' -> ('NN', 0.25), 'NN' -> ('NN', 1.0); ValueError for a weight
    that is not a positive finite number."""
    name, star, weight = tag.rpartition("*")
    if not star:
        return tag, 1.0
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not name or not math.isfinite(value) or value <= 0:
        raise ValueError(f"tag {tag!r}: the weight after '*' must be a positive number")
    return name, value


def token_class_masks(token_tags, class_files):
    """[C+1, n] table of weights over the tokens: row 0 all tokens (1), row c: a token's weight in class file c, the
    largest weight of its tags in that class (1 for a tag without '*W'; 0 when none is in the class)."""
    weighted = [[split_weight(tag) for tag in own] for own in token_tags]
    table = np.ones((len(class_files) + 1, len(token_tags)), np.float64)
    for c, path in enumerate(class_files, start=1):
        tags = read_pos_class(path)
        table[c] = [max((w for tag, w in own if tag in tags), default=0.0) for own in weighted]
    return table


# --------------------------------------------------------------------------------------------
# Gradient dumps and averages
# --------------------------------------------------------------------------------------------

def mapping_line(n, words):
    """The mapping.txt line of window n whose words from t-k to t are `words`."""
    return f"{n}\t{words[0]}\t{'-'.join(words)}-\n"


def read_grad_mapping(path):
    """Read a delay folder's mapping.txt: list of (n, word, seq) from `n<TAB>word<TAB>seq` lines.

    n is the window number (the matrix `{n}.npy`), word the word whose embedding was
    differentiated (position t-k), seq the words from t-k to t joined by `-`. UserError
    names file and line for a malformed line or a repeated n.
    """
    entries, seen = [], {}
    for lineno, line in enumerate(read_lines(path, "gradient mapping file"), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].strip().isdigit() or not fields[1].strip():
            raise UserError(f"{path} line {lineno}: expected `n<TAB>word<TAB>sequence`, got {line!r}")
        n = int(fields[0])
        if n in seen:
            raise UserError(f"{path} line {lineno}: window {n} already listed on line {seen[n]}")
        seen[n] = lineno
        entries.append((n, fields[1].strip(), fields[2].strip()))
    return entries


def check_dir(path, what="directory"):
    """UserError unless path is an existing directory."""
    if not os.path.exists(path):
        raise UserError(f"{what} {path} does not exist")
    if not os.path.isdir(path):
        raise UserError(f"{what} {path} is not a directory")


def average_path(gradroot, delay, cls=None):
    """GRADROOT/delay_{k}_avg.npy, or delay_{k}_avg_{cls}.npy for a POS class name."""
    suffix = "" if cls is None else f"_{cls}"
    return os.path.join(gradroot, f"delay_{delay}_avg{suffix}.npy")


def count_path(gradroot, delay, cls=None):
    """GRADROOT/delay_{k}_count.txt, or delay_{k}_count_{cls}.txt (one number, count_text: matrices averaged)."""
    suffix = "" if cls is None else f"_{cls}"
    return os.path.join(gradroot, f"delay_{delay}_count{suffix}.txt")


def count_text(count):
    """A count file's number: an integer as the original wrote it, or the sum of weights of a weighted class
    (pos_tokens with '*W') with 17 significant digits."""
    count = float(count)
    return str(int(count)) if count.is_integer() else f"{count:.17g}"


def read_count_text(text):
    """The number of a count file's text (count_text); ValueError when it is not one non-negative number."""
    value = float(text.strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def list_averages(gradroot, cls=None):
    """(k, path) of every GRADROOT/delay_{k}_avg.npy (cls None) or delay_{k}_avg_{cls}.npy, increasing k.

    The overall pattern matches only `delay_{k}_avg.npy`, never a class average such as
    `delay_3_avg_nouns.npy`. UserError when there is none (naming the classes that exist).
    """
    check_dir(gradroot, "gradient directory")
    suffix = "" if cls is None else "_" + re.escape(cls)
    pattern = re.compile(rf"^delay_(\d+)_avg{suffix}\.npy$")
    found = sorted((int(m.group(1)), os.path.join(gradroot, name))
                   for name in os.listdir(gradroot) if (m := pattern.match(name)))
    if not found:
        present = sorted(available_classes(gradroot))
        what = "delay_{k}_avg.npy" if cls is None else f"delay_{{k}}_avg_{cls}.npy"
        hint = f"; classes present: {', '.join(present)}" if present else ""
        raise UserError(f"no {what} files in {gradroot} (run avg_gradient_matrix.py first){hint}")
    return found


def available_classes(gradroot):
    """Class names of the `delay_{k}_avg_{class}.npy` files in gradroot."""
    pattern = re.compile(r"^delay_\d+_avg_(.+)\.npy$")
    return {m.group(1) for name in os.listdir(gradroot) if (m := pattern.match(name))}
