"""Train, evaluate, export or compute state gradients of a word-level RNN language model from a config file."""
# The command line of the original's tf_scripts/main.py; the work is state_gradients/workflows/lm_run.py.
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import run_cli  # noqa: E402
from state_gradients.workflows.lm_run import PROG, build_parser, run  # noqa: E402, F401  (build_parser: the docs)


def main(argv=None) -> int:
    return run_cli(run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
