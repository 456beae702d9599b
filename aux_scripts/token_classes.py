"""sg-token-classes: the token tags and class files of a gradient pass with classes in context, and frequency-matched ones."""
# What the files hold: state_gradients/classes/token_classes.py.
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.classes import token_classes  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402

PROG = "sg-token-classes"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(prog=PROG, description=__doc__.split("\n")[0] + " Writes OUT/NAME.tags (the "
                                     "pos_tokens file) and OUT/classes/*.txt (the pos_token_classes files).")
    parser.add_argument("text", metavar="TEXT", help="the LM text that was tagged (e.g. valid.txt)")
    parser.add_argument("tags", metavar="TAGS", help="its tags (sg-pos-tagger's NAME.tags)")
    parser.add_argument("pos_mapping", metavar="MAPPING", help="a POS mapping with the FREQ_* bins (sg-freq-classes)")
    parser.add_argument("--classes", nargs="+", required=True, metavar="CLASS.txt", help="POS class files")
    parser.add_argument("--with-unk", nargs="*", default=[], metavar="NAME",
                        help="classes that also get a NAME+unk class with the <unk> tokens")
    parser.add_argument("--by-frequency", nargs="*", default=[], metavar="NAME",
                        help="classes that also get one NAME-freq_BIN class per frequency bin")
    parser.add_argument("--bins", nargs="*", default=[], metavar="freq_BIN",
                        help="frequency bins that also get a class of all their known tokens (e.g. freq_1-9; "
                             "rarest and commonest name the first and last bin)")
    parser.add_argument("--size-matched", nargs="*", default=[], metavar="A:B",
                        help="pairs of classes (POS class names or --bins) whose larger one is also subsampled to "
                             "the smaller one's token count")
    parser.add_argument("--draws", type=int, default=2, help="random subsets per --size-matched pair (default 2)")
    parser.add_argument("--type-weighted", nargs="*", default=[], metavar="freq_BIN",
                        help="frequency bins whose word types also get equal weights: classes BIN+types-G of "
                             "--type-groups groups of types, each token weighted 1 / its type's count "
                             "(sg-intervals combines them into BIN+types, resampling the groups)")
    parser.add_argument("--type-groups", type=int, default=7,
                        help="groups of types per --type-weighted bin (fewer when the bin has fewer types; default "
                             "7, the number of types in PTB's most frequent bin)")
    parser.add_argument("--measured-tokens", type=int, default=None, metavar="N",
                        help="the pass measures only the first N tokens of TEXT (<eos> included; valid_batches x "
                             "num_steps with batch_size 1): the types and counts of --type-weighted come from them "
                             "(default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets (default 0)")
    parser.add_argument("--prefix", default="", metavar="P",
                        help="begin every class file's name with P, so that these classes can share a pass "
                             f"(pos_token_classes) with type-level classes of the same names (sg-reproduce: "
                             f"{token_classes.CONTEXT_PREFIX}; default: none)")
    parser.add_argument("--out", required=True, metavar="DIR")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    pairs = []
    for pair in args.size_matched:
        if pair.count(":") != 1:
            raise UserError(f"--size-matched takes A:B pairs, got {pair!r}")
        pairs.append(tuple(pair.split(":")))
    tags_out, n_lines, n_files = token_classes.write_token_classes(
        args.text, args.tags, args.pos_mapping, args.classes, args.out, with_unk=args.with_unk,
        by_frequency=args.by_frequency, bins=args.bins, size_matched_pairs=pairs, draws=args.draws,
        seed=args.seed, prefix=args.prefix, type_weighted_bins=args.type_weighted, type_groups=args.type_groups,
        measured_tokens=args.measured_tokens)
    print(f"{tags_out}: {n_lines} lines; {n_files} class files in {os.path.join(args.out, 'classes')}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
