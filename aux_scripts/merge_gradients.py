"""sg-merge-gradients: merge the N shards of a sharded gradient pass into the files one pass writes."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core import formats  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.files import gradient_files  # noqa: E402

PROG = "sg-merge-gradients"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=PROG, description=__doc__ + " The shards are GRAD_DIR/shards/i-of-N/, written by main.py --shard i/N; "
        "all N must be complete and come from the same config, model and data. The per-window files are moved, "
        "the mapping files joined in window order, the sums and counts added into the averages, and "
        "GRAD_DIR/grad_progress.json records the complete pass (and its perplexity). Merging again changes nothing.")
    parser.add_argument("grad_dir", metavar="GRAD_DIR", help="the config's grad_dir")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    formats.check_dir(args.grad_dir, "GRAD_DIR")
    perplexity = gradient_files.merge_shards(args.grad_dir)
    if perplexity is not None:
        print(f"Valid Perplexity: {perplexity!r}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
