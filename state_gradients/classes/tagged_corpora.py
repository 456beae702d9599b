"""Tagged WSJ sentences (CoNLL-2000, the treebank sample) normalised exactly as the PTB language-model text is."""
# The PTB LM text (Mikolov's data/ptb: one sentence a line) was made from the treebank with
# these rules, which this module applies to tagged tokens (checked against ptb/train.txt, whose
# lines 2-3,911 are the treebank sample's sentences: see align_to_lines and
# tests/unit/classes/test_tagged_corpora.py):
#   - punctuation is dropped: tokens tagged , . : `` '' ( ) -LRB- -RRB- -NONE-;
#   - a number (digits with . , - / : between them) and % become N;
#   - words are lower-cased;
#   - the sentence-final period after an abbreviation is written once in the treebank files
#     (U.S/NNP ./.); the LM text has the abbreviation's own form, so a word with an internal
#     period followed by ./. takes the period back when that form is in the vocabulary and its
#     bare form is not (u.s. but n.j); a word like p.m. whose own form is not in the
#     vocabulary but the form without its final period is, takes that (p.m);
#   - a word outside the vocabulary becomes <unk>.
# The LM text left out some of the treebank's sentences (long lists of names, a few datelines);
# align_to_lines finds each LM line in the normalised token stream and skips what is not there.
import re

from state_gradients.classes.pos_mapping import NUMBER, treebank_tokens
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis

UNK = "<unk>"
PUNCTUATION = frozenset({",", ".", ":", "``", "''", "(", ")", "-LRB-", "-RRB-", "-NONE-"})
_NUMBER = re.compile(r"[0-9.,\-/:]*[0-9][0-9.,\-/:]*")
SENTENCE_END = "."


def read_conll_sentences(path):
    """[[(token, tag)]] of a CoNLL-2000 file (`word TAG CHUNK` lines, blank lines between sentences)."""
    sentences, current = [], []
    for lineno, line in enumerate(analysis.read_lines(path, "CoNLL file"), start=1):
        fields = line.split()
        if not fields:
            if current:
                sentences.append(current)
            current = []
            continue
        if len(fields) != 3:
            raise UserError(f"{path} line {lineno}: expected `word TAG CHUNK`, got {line.strip()!r}")
        current.append((fields[0], fields[1].split("|")[0]))   # an ambiguous VBG|NN counts as its first tag
    if current:
        sentences.append(current)
    return sentences


def read_treebank_tokens(path):
    """[(token, tag)] of a Penn Treebank .pos file in order (an ambiguous VBG|NN counts as its first tag)."""
    return [(word, tags[0]) for word, tags in treebank_tokens(path)]


def split_sentences(tokens):
    """[[(token, tag)]]: a token stream cut after every sentence-final punctuation tag (.)."""
    sentences, current = [], []
    for pair in tokens:
        current.append(pair)
        if pair[1] == SENTENCE_END:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def normalise(tokens, vocab):
    """[(word, tag)] of the LM text from tagged tokens [(token, tag)] (punctuation dropped; see the rules above)."""
    out = []
    for i, (token, tag) in enumerate(tokens):
        if tag in PUNCTUATION:
            continue
        word = token.lower()
        if _NUMBER.fullmatch(word.replace("\\/", "/")) or word == "%":
            out.append((NUMBER, tag))
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if word not in vocab:
            if following == (".", ".") and "." in word and word + "." in vocab:
                word += "."
            elif word.endswith(".") and "." in word[:-1] and word[:-1] in vocab:
                word = word[:-1]
            else:
                word = UNK
        out.append((word, tag))
    return out


def align_to_lines(words, lines, key=4):
    """Find every LM line (a list of words) in the normalised stream `words`, in order.

    Returns (equal, starts): how many lines equal the stream at their place, and each line's
    start in the stream (None when it is not found after the previous line). A line is looked
    up by its first `key` words after the end of the previous one, so text the LM left out is
    skipped.
    """
    index = {}
    for i in range(len(words) - key + 1):
        index.setdefault(tuple(words[i:i + key]), []).append(i)
    equal, starts, pos = 0, [], 0
    for line in lines:
        candidates = [i for i in index.get(tuple(line[:key]), []) if i >= pos] if len(line) >= key else \
            [i for i in range(pos, min(pos + 200, len(words))) if words[i:i + len(line)] == line][:1]
        start = next((i for i in candidates if words[i:i + len(line)] == line), None)
        if start is None:
            start = candidates[0] if candidates else None
            starts.append(start)
            if start is not None:
                pos = start + len(line)
            continue
        equal += 1
        starts.append(start)
        pos = start + len(line)
    return equal, starts
