"""sg-intervals: bias-corrected SV sums of G·D with jackknife intervals, noise floors and coherence, from a pass's blocks."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402
from state_gradients.measures import intervals  # noqa: E402


PROG = "sg-intervals"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=PROG, description=__doc__ + " Reads GRAD_DIR/blocks/ (main.py with grad_blocks N) and writes "
        f"OUT/{intervals.INTERVALS_CSV} (per class and delay: the SV sum of the average G·D, an estimate corrected by "
        "its bias simulated from the blocks' noise, with the delete-one-block jackknife's standard error and 95% "
        "interval, the noise floor, the unbiased squared Frobenius norm of the mean (coherence), the mean squared "
        "magnitude and their ratio, and with the pass's grad_norm_file the per-occurrence nuclear norm and the "
        f"output-level measure) and OUT/{intervals.REPLICATES_CSV} (the leave-one-block-out values behind them).")
    parser.add_argument("grad_dir", metavar="GRAD_DIR", help="the gradient pass's grad_dir")
    parser.add_argument("grad_norm", metavar="D.npy", help="gradient normalisation D (EMB_D_norm_grad.npy)")
    parser.add_argument("--out", default=None, help="folder for the CSV files (default: GRAD_DIR)")
    parser.add_argument("--draws", type=int, default=50,
                        help="random-sign draws of the average's noise, for the noise floor and the simulated bias "
                             "(default 50; each costs three SVDs per class and delay)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws' signs (default 0)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.draws < 1:
        raise UserError(f"--draws must be >= 1, got {args.draws}")
    grad_norm = analysis.load_square(args.grad_norm, "gradient normalisation D")
    rows, replicates, names, delays, blocks = intervals.from_pass(args.grad_dir, grad_norm, args.draws, args.seed)
    out = args.out or args.grad_dir
    intervals.write(out, rows, replicates)
    print(f"{len(names)} classes x {len(delays)} delays from {blocks} blocks: "
          f"{os.path.join(out, intervals.INTERVALS_CSV)}, {os.path.join(out, intervals.REPLICATES_CSV)}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
