"""sg-seeds: the papers' findings across training seeds: each seed's verdict, the seed average's interval, the spread."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, output_line, run_cli  # noqa: E402
from state_gradients.workflows import seeds  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="seeds.py",
        description="Judge the papers' findings across training seeds: RUN folders of sg-reproduce (one config, "
                    "different seeds, the same validation text and blocks). Writes OUT/seeds_findings.csv, "
                    "seeds_comparisons.csv, seeds_svs.csv and seeds.md: each seed's verdicts, the seed average's "
                    "text-sampling intervals, and the seeds' range.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="sg-reproduce output folders, one per seed")
    parser.add_argument("--out", required=True, help="folder for the summary (created)")
    parser.add_argument("--labels", help="comma-separated names of the runs (default: the folders' names)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    labels = args.labels.split(",") if args.labels else [os.path.basename(os.path.normpath(d)) for d in args.runs]
    verdict = seeds.summarise(args.runs, labels, args.out)
    for name, v in verdict.items():
        print(f"{name}: {v}")
    print(f"wrote {os.path.join(args.out, seeds.SUMMARY_MD)} and its CSV files")
    print(output_line("summary", os.path.join(args.out, seeds.SUMMARY_MD)))
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "seeds.py")


if __name__ == "__main__":
    sys.exit(main())
