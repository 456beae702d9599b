"""A word -> POS tags mapping for an LM vocabulary from CoNLL-2000 and Penn Treebank tagged files: readers, normalisation, coverage."""
import re

from state_gradients.core.errors import UserError
from state_gradients.measures import analysis

NUMBER = "N"
EOS = "<eos>"
# The PTB LM data turned every number-like token (digits with . , - / : between them) into N.
_NUMBER_RE = re.compile(r"[0-9.,\-/:]*[0-9][0-9.,\-/:]*")
# A slash not preceded by a backslash: the word/tag separator of treebank tokens.
_SEPARATOR_RE = re.compile(r"(?<!\\)/")


def normalise_word(token):
    """The LM data's form of a corpus token: `N` for a number, else lower case (`\\/` escapes kept)."""
    if _NUMBER_RE.fullmatch(token.replace("\\/", "/")):
        return NUMBER
    return token.lower()


def _split_tags(tag, where):
    # An ambiguous treebank tag such as VBG|NN counts as both tags.
    tags = tag.split("|")
    if not all(tags):
        raise UserError(f"{where}: malformed tag {tag!r}")
    return tags


def read_conll(path):
    """(token, tag) pairs of a CoNLL-2000 file: `word TAG CHUNK` lines, blank lines between sentences."""
    pairs = []
    for lineno, line in enumerate(analysis.read_lines(path, "CoNLL file"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise UserError(f"{path} line {lineno}: expected `word TAG CHUNK`, got {line.strip()!r}")
        pairs.extend((fields[0], tag) for tag in _split_tags(fields[1], f"{path} line {lineno}"))
    return pairs


def split_treebank_token(token):
    """(word, tag) of a `word/TAG` token, split at the last unescaped slash (`1\\/2/CD` -> `1\\/2`, `CD`)."""
    separators = [m.start() for m in _SEPARATOR_RE.finditer(token)]
    if not separators or separators[-1] in (0, len(token) - 1):
        return None
    cut = separators[-1]
    return token[:cut], token[cut + 1:]


def treebank_tokens(path):
    """(token, [tags]) of a Penn Treebank .pos file in order, tags split at '|'; `[`, `]`, `======` left out."""
    for lineno, line in enumerate(analysis.read_lines(path, "treebank file"), start=1):
        if line.startswith("======"):
            continue
        for token in line.split():
            if token in ("[", "]"):
                continue
            split = split_treebank_token(token)
            if split is None:
                raise UserError(f"{path} line {lineno}: token {token!r} is not `word/TAG`")
            yield split[0], _split_tags(split[1], f"{path} line {lineno}")


def read_treebank(path):
    """(token, tag) pairs of a Penn Treebank .pos file; an ambiguous token gives one pair per tag."""
    return [(word, t) for word, tags in treebank_tokens(path) for t in tags]


def collect_tags(words, pairs):
    """word -> set of tags seen for its normalised form in pairs, for every word of words (in order)."""
    seen = {}
    for token, tag in pairs:
        seen.setdefault(normalise_word(token), set()).add(tag)
    return {word: set(seen.get(word, ())) for word in words}


def coverage(mapping, path):
    """(tokens of the text at path whose word has a tag, all tokens); newlines end sentences, <eos> not counted."""
    covered = total = 0
    for line in analysis.read_lines(path, "text file"):
        for word in line.split():
            if word == EOS:
                continue
            total += 1
            covered += bool(mapping.get(word))
    if total == 0:
        raise UserError(f"text file {path} holds no tokens")
    return covered, total
