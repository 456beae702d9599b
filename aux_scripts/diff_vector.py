"""Difference of two vectors (e.g. average embeddings of two POS tags): OUT = A - B."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="diff_vector.py",
        description="Write OUT.npy = A.npy - B.npy, e.g. the difference of two NAME_avg_TAG.npy files of "
                    "pos_classifier_sklearn.py --avg_emb: the DIFF.npy input of relative_memory.py and "
                    "cos_subspace_diff_vector.py.")
    parser.add_argument("a", metavar="A.npy", help="first vector")
    parser.add_argument("b", metavar="B.npy", help="vector subtracted from A")
    parser.add_argument("out", metavar="OUT.npy", help="output file (not A or B)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    analysis.check_not_input(args.out, [args.a, args.b])
    first = analysis.load_array(args.a, "vector", ndim=1)
    second = analysis.load_array(args.b, "vector", ndim=1)
    if first.shape != second.shape:
        raise UserError(f"{args.a} has shape {first.shape} but {args.b} has shape {second.shape}")
    analysis.atomic_save_npy(args.out, first - second)
    print(f"wrote {args.out}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "diff_vector.py")


if __name__ == "__main__":
    sys.exit(main())
