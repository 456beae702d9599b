"""Stack the {n}.npy gradient matrices of a folder, in numeric order, into DIR/all.npz."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="np2npz.py",
        description="Stack all {n}.npy files of DIR in increasing n into DIR/all.npz "
                    "(one compressed array arr_0 of shape N x H x E). The .npy files are kept.")
    parser.add_argument("dir", metavar="DIR", help="folder with {n}.npy matrices, e.g. GRADROOT/timestep_5/delay_0")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    count, shape = analysis.stack_to_npz(args.dir)
    print(f"wrote {os.path.join(args.dir, analysis.NPZ_NAME)}: {count} matrices of shape {shape}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "np2npz.py")


if __name__ == "__main__":
    sys.exit(main())
