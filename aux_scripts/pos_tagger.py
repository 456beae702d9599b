"""sg-pos-tagger: train a POS tagger on the normalised tagged corpora, test it on held-out documents, tag LM text in context."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.classes import pos_tagger  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402


PROG = "sg-pos-tagger"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(prog=PROG, description=__doc__.split("\n")[0] + " Trains on CoNLL-2000 train and "
                                     "the treebank sample, normalised like the PTB LM text, tests on CoNLL-2000 test, "
                                     "writes OUT/tagger.json and OUT/NAME.tags for every --tag file.")
    parser.add_argument("--pos-data", required=True, metavar="DIR", help="the folder data/get_pos_data.py fills")
    parser.add_argument("--vocab-text", required=True, metavar="TRAIN.txt",
                        help="the LM's training text: its words are the vocabulary (others become <unk>)")
    parser.add_argument("--tag", nargs="*", default=[], metavar="FILE", help="LM text files to tag (e.g. valid.txt)")
    parser.add_argument("--classes", nargs="*", default=[], metavar="CLASS.txt",
                        help="class files (one tag per line) whose tags the confusion counts cover")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training shuffles (default 0)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    report = pos_tagger.train_and_tag(args.pos_data, args.vocab_text, args.tag, args.classes, args.out, args.seed)
    low, high = report["accuracy_wilson95"]
    print(f"held-out accuracy {report['accuracy']:.4f} [{low:.4f}, {high:.4f}] on {report['held_out_tokens']} tokens "
          f"(majority tag {report['majority_tag']}: {report['majority_baseline']:.4f}); wrote {args.out}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
