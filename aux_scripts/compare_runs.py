"""sg-compare: memory profiles of different models on the same corpus side by side (SV sums, fits, rankings, frequency)."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, output_line, run_cli  # noqa: E402
from state_gradients.workflows import compare  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="compare_runs.py", tensorflow=True,
        description="Compare the memory profiles of RUN folders of sg-reproduce (different models, or the seeds of "
                    "different recipes, on the same validation text, targets and classes, e.g. an LSTM and a "
                    "Transformer): the differences under every measure with their intervals; the bias-corrected SV sums with "
                    "their intervals against delay, absolute and relative to delay 0, overall and per POS class; the "
                    "exponential and power-law fits; the class rankings; the frequency effect with its size control. "
                    "With --models and --data also the parameter counts and the perplexities of every model on "
                    "windows that carry no state. Writes OUT/compare.md, its CSV files and two figures.")
    parser.add_argument("runs", nargs="+", metavar="RUN[,RUN...]",
                        help="sg-reproduce output folders (or their committed part), one per side; a side of several "
                             "folders joined by commas is the training seeds of one recipe, pooled with the seeds as "
                             "a random effect. The first side is the reference of the differences")
    parser.add_argument("--out", required=True, help="folder for the comparison (created)")
    parser.add_argument("--labels", help="comma-separated names of the runs (default: the folders' names)")
    parser.add_argument("--models", help="comma-separated model folders (weights.npz + dict), one per RUN folder in "
                                         "the order given")
    parser.add_argument("--data", help="with --models: the corpus folder with valid.txt and test.txt")
    parser.add_argument("--models-csv", metavar="FILE",
                        help="instead of --models: the compare_models.csv of an earlier comparison of the same runs "
                             "(its rows are kept; for models that are no longer at hand)")
    parser.add_argument("--num-steps", type=int, default=200, metavar="T",
                        help="with --models: window length of the perplexities (default 200)")
    parser.add_argument("--stride", type=int, metavar="S",
                        help="with --models: windows start every S tokens (default: T, non-overlapping)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    groups = [[d for d in side.split(",") if d] for side in args.runs]
    labels = args.labels.split(",") if args.labels else \
        ["+".join(os.path.basename(os.path.normpath(d)) for d in group) for group in groups]
    models = args.models.split(",") if args.models else None
    if models:
        import_tensorflow(args.verbose)
    paths = compare.compare(groups, labels, args.out, models=models, data=args.data, num_steps=args.num_steps,
                            stride=args.stride, models_csv=args.models_csv)
    print(f"wrote {', '.join(sorted(os.path.basename(p) for p in paths.values()))} in {args.out}")
    print(output_line("comparison", paths[compare.SUMMARY_MD]))
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "compare_runs.py")


if __name__ == "__main__":
    sys.exit(main())
