"""Top-5 singular values and their sum of every normalised average gradient matrix G D, per delay."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def format_line(delay, svs):
    """`delay: K<TAB>SV_1: x<TAB>...<TAB>SV_5: x<TAB>sum: x` (fewer SV fields if G D has fewer than 5)."""
    fields = [f"delay: {delay}"] + [f"SV_{i + 1}: {analysis.format_number(s)}" for i, s in enumerate(svs[:5])]
    return "\t".join(fields + [f"sum: {analysis.format_number(svs.sum())}"])


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="calculate_svs.py",
        description="For every GRADROOT/delay_{k}_avg.npy (or delay_{k}_avg_{CLASS}.npy), in increasing k, "
                    "print the 5 largest singular values of G D and the sum of all of them, one line per "
                    "delay: 'delay: K<TAB>SV_1: x<TAB>...<TAB>SV_5: x<TAB>sum: x'.")
    parser.add_argument("gradroot", metavar="GRADROOT", help="folder with the delay_{k}_avg*.npy averages")
    parser.add_argument("grad_norm", metavar="D.npy", help="gradient normalisation D (EMB_D_norm_grad.npy)")
    parser.add_argument("cls", metavar="CLASS", nargs="?", default=None,
                        help="POS class name: use delay_{k}_avg_{CLASS}.npy (default: the overall averages)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    grad_norm = analysis.load_square(args.grad_norm, "gradient normalisation D")
    for delay, grad in analysis.load_averages(args.gradroot, args.cls, grad_norm, args.grad_norm):
        print(format_line(delay, analysis.singular_values(grad, grad_norm)))
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "calculate_svs.py")


if __name__ == "__main__":
    sys.exit(main())
