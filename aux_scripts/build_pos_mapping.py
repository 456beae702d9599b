"""Build a word -> POS tags mapping for an LM vocabulary from CoNLL-2000 and Penn Treebank tagged files."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.classes import pos_mapping  # noqa: E402
from state_gradients.core import lm_data, results  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
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
    parser.add_argument("--result", metavar="FILE.json",
                        help="also write the numbers as JSON to FILE (state_gradients/core/results.py gives the schema)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if not args.conll and not args.treebank:
        raise UserError("no tagged corpus given: use --conll FILE and/or --treebank FILE")
    analysis.check_not_input(args.out, [args.dict, *args.conll, *args.treebank, args.coverage])
    words = lm_data.id_list(lm_data.read_vocab_file(args.dict))
    pairs = []
    for path in args.conll:
        pairs.extend(pos_mapping.read_conll(path))
    for path in args.treebank:
        pairs.extend(pos_mapping.read_treebank(path))
    mapping = pos_mapping.collect_tags(words, pairs)
    analysis.write_pos_mapping(mapping, args.out)
    tagged = sum(1 for tags in mapping.values() if tags)
    print(f"{args.out}: {tagged} of {len(words)} vocabulary words have tags "
          f"(from {len(pairs)} tagged tokens)")
    covered_share = None
    if args.coverage:
        covered, total = pos_mapping.coverage(mapping, args.coverage)
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
