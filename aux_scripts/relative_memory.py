"""Relative memory of a direction per delay: ||(G D) d|| / sigma_max(G D), d = Z diff normalised."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core import results  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="relative_memory.py",
        description="d = Z DIFF / ||Z DIFF||; for every GRADROOT/delay_{k}_avg.npy (or "
                    "delay_{k}_avg_{CLASS}.npy), in increasing k, print "
                    "'delay: K<TAB>relative memory: X' with X = ||(G D) d|| / sigma_max(G D).")
    parser.add_argument("diff", metavar="DIFF.npy", help="difference vector in embedding space (diff_vector.py)")
    parser.add_argument("gradroot", metavar="GRADROOT", help="folder with the delay_{k}_avg*.npy averages")
    parser.add_argument("z_inv", metavar="Z.npy", help="embedding normalisation Z (EMB_Z_norm_emb.npy)")
    parser.add_argument("cls", metavar="CLASS", nargs="?", default=None,
                        help="POS class name: use delay_{k}_avg_{CLASS}.npy (default: the overall averages)")
    parser.add_argument("--grad-norm", metavar="D.npy", required=True,
                        help="gradient normalisation D (EMB_D_norm_grad.npy); required")
    parser.add_argument("--result", metavar="FILE.json",
                        help="also write the numbers as JSON to FILE (state_gradients/core/results.py gives the schema)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    direction, _ = analysis.load_direction(args.diff, args.z_inv)
    grad_norm = analysis.load_square(args.grad_norm, "gradient normalisation D")
    analysis.check_square(grad_norm, args.grad_norm, len(direction), args.diff)
    delays, values = [], []
    for delay, grad in analysis.load_averages(args.gradroot, args.cls, grad_norm, args.grad_norm):
        value = analysis.relative_memory(grad, grad_norm, direction)
        print(f"delay: {delay}\trelative memory: {analysis.format_number(value)}")
        delays.append(delay)
        values.append(value)
    if args.result:
        results.write_result(args.result, "sg-relative-memory", **{"class": args.cls, "delays": delays,
                                                                   "relative_memory": values})
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "relative_memory.py")


if __name__ == "__main__":
    sys.exit(main())
