"""Build a word -> POS tags mapping for an LM vocabulary from CoNLL-2000 and Penn Treebank tagged files."""
import argparse
import os
import re
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aux_scripts import analysis
from tf_scripts import lm_data, results
from tf_scripts.errors import UserError, run_cli

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


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="build_pos_mapping.py",
        description="Collect, for every word of an LM vocabulary, the POS tags it has in tagged corpora "
                    "(words normalised like the PTB LM data: lower case, numbers -> N) and write a POS mapping.")
    parser.add_argument("dict", metavar="DICT", help="vocabulary file, `word<TAB>id` per line")
    parser.add_argument("out", metavar="OUT", help="POS mapping file to write (`word ['T1', 'T2']` lines)")
    parser.add_argument("--conll", metavar="FILE", nargs="+", action="extend", default=[],
                        help="CoNLL-2000 file(s): `word TAG CHUNK` per line, blank lines between sentences")
    parser.add_argument("--treebank", metavar="FILE", nargs="+", action="extend", default=[],
                        help="Penn Treebank tagged file(s) (.pos): `word/TAG` tokens")
    parser.add_argument("--coverage", metavar="TEXT",
                        help="also print the share of the tokens of TEXT (<eos> excluded) whose word got a tag")
    parser.add_argument("--result", metavar="FILE.json", help="also write the numbers as JSON to FILE (tf_scripts/results.py gives the schema)")
    return parser.parse_args(argv)


def _main(argv):
    args = _parse_args(argv)
    if not args.conll and not args.treebank:
        raise UserError("no tagged corpus given: use --conll FILE and/or --treebank FILE")
    analysis.check_not_input(args.out, [args.dict, *args.conll, *args.treebank, args.coverage])
    words = lm_data.id_list(lm_data.read_vocab_file(args.dict))
    pairs = []
    for path in args.conll:
        pairs.extend(read_conll(path))
    for path in args.treebank:
        pairs.extend(read_treebank(path))
    mapping = collect_tags(words, pairs)
    analysis.write_pos_mapping(mapping, args.out)
    tagged = sum(1 for tags in mapping.values() if tags)
    print(f"{args.out}: {tagged} of {len(words)} vocabulary words have tags "
          f"(from {len(pairs)} tagged tokens)")
    covered_share = None
    if args.coverage:
        covered, total = coverage(mapping, args.coverage)
        print(f"coverage of {args.coverage}: {100.0 * covered / total:.2f}% "
              f"({covered} of {total} tokens, <eos> excluded)")
        covered_share = {"text": args.coverage, "tokens": total, "covered": covered, "percent": 100.0 * covered / total}
    if args.result:
        results.write_result(args.result, "sg-build-pos-mapping", mapping=args.out, words=len(words), tagged=tagged,
                             coverage=covered_share)
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "build_pos_mapping.py")


if __name__ == "__main__":
    sys.exit(main())
