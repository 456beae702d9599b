"""The reproduction report: decay fits, class rankings, findings, figures and tables from a reproduce folder."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.report import findings, report  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="report.py",
        description="Write DIR/report.md and a self-contained DIR/report.html (figures embedded) from the "
                    "outputs of sg-reproduce in DIR: the sum of singular values per POS class and frequency "
                    "bin, exponential and power-law fits of the decay, class rankings at delays "
                    f"{', '.join(map(str, findings.RANK_DELAYS))}, relative memory, classifier accuracy, and the "
                    "papers' findings judged by fixed rules. Tables behind every figure: DIR/report_*.csv.")
    parser.add_argument("dir", metavar="DIR", help="the sg-reproduce output folder (needs DIR/svs.csv)")
    parser.add_argument("--title", default="State-gradient reproduction report", help="report title")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    findings = report.build_report(args.dir, args.title)
    for name, verdict in findings.items():
        print(f"{name}: {verdict}")
    print(f"wrote {os.path.join(args.dir, 'report.md')} and {os.path.join(args.dir, 'report.html')}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "report.py")


if __name__ == "__main__":
    sys.exit(main())
