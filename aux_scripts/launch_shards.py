"""sg-launch-shards: run the N shards of a gradient pass on a Dask cluster, retry failed shards, then merge."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.workflows import launch_shards  # noqa: E402


PROG = launch_shards.PROG


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(prog=PROG, description=__doc__)
    parser.add_argument("--config", required=True, help="the gradient config (grad_interm, time_step, grad_dir, ...)")
    parser.add_argument("--shards", type=int, required=True, help="N: number of shards (jobs)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://head:8786 "
                       "(GRAD_DIR must be on storage every worker sees)")
    where.add_argument("--local-workers", type=int, default=2,
                       help="without --scheduler: start a local cluster with this many worker processes (default 2)")
    parser.add_argument("--connect-timeout", type=float, default=launch_shards.CONNECT_TIMEOUT, metavar="S",
                        help=f"seconds to wait for the --scheduler to answer (default {launch_shards.CONNECT_TIMEOUT})")
    parser.add_argument("--retries", type=int, default=2, help="times a failed shard is resubmitted (default 2)")
    parser.add_argument("--main", default=launch_shards.DEFAULT_MAIN,
                        help="command that runs main.py on the workers (default: this Python's -m tf_scripts.main)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.shards < 1 or args.retries < 0 or args.local_workers < 1 or args.connect_timeout <= 0:
        raise UserError("--shards and --local-workers must be >= 1, --retries >= 0, --connect-timeout > 0")
    perplexity = launch_shards.launch(args.config, args.shards, scheduler=args.scheduler, local_workers=args.local_workers,
                        retries=args.retries, main_command=args.main, connect_timeout=args.connect_timeout)
    if perplexity is not None:
        print(f"Valid Perplexity: {perplexity!r}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
