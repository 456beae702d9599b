"""Alias of avg_gradient_matrix.py (same arguments), kept for the original's per-class script name."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aux_scripts import avg_gradient_matrix  # noqa: E402
from state_gradients.core.cli import run_cli  # noqa: E402

PROG = "avg_gradient_matrix_pos.py"


def build_parser():
    """The command line's arguments: avg_gradient_matrix.py's."""
    return avg_gradient_matrix.build_parser(PROG)


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(lambda a: avg_gradient_matrix.run(a, PROG), argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
