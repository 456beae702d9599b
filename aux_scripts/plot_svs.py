"""Plot the sum (and optionally the top K) of the singular values of G D against delay, per model and class."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402
from state_gradients.measures import plot_svs  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="plot_svs.py",
        description="Plot, against delay, the sum of the singular values of the average gradient matrices "
                    "G D (GRADROOT/delay_{k}_avg[_{class}].npy) of one or more models in one PNG, and write "
                    "the numbers to a CSV beside it (FIG.csv: model,class,delay,sum,sv1..sv5, raw values).")
    parser.add_argument("gradroots", metavar="GRADROOT", nargs="+", help="gradient folders, one per model")
    parser.add_argument("--labels", help="comma-separated legend labels, one per GRADROOT (default: folder names)")
    parser.add_argument("--classes", default=plot_svs.OVERALL,
                        help=f"comma-separated POS class names; '{plot_svs.OVERALL}' = the class-free average; "
                             f"'{plot_svs.ALL}' = {plot_svs.OVERALL} and every class with averages in the first GRADROOT, in name "
                             "order; a shell pattern (e.g. 'ctx_*') = the classes it matches (default: "
                             f"{plot_svs.OVERALL})")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out the classes matching this shell pattern (repeatable)")
    parser.add_argument("--grad-norm", metavar="D.npy", action="append",
                        help="gradient normalisation D (EMB_D_norm_grad.npy): give it once (shared) or once "
                             "per GRADROOT, in the same order (default: none, plot singular values of the raw G)")
    parser.add_argument("--top-k", metavar="K", type=int,
                        help="also plot the K largest singular values (second panel)")
    parser.add_argument("--relative", action="store_true", help="divide every curve by its delay-0 value")
    parser.add_argument("--linear", action="store_true",
                        help="a linear value axis (default: log, as the sums fall by decades over the delays)")
    parser.add_argument("--out", metavar="FIG.png", required=True, help="output PNG; the CSV is FIG.csv")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)

    labels = plot_svs.split_names(args.labels) if args.labels else [
        os.path.basename(os.path.normpath(root)) for root in args.gradroots]
    if len(labels) != len(args.gradroots):
        raise UserError(f"--labels has {len(labels)} labels for {len(args.gradroots)} GRADROOT folders")
    classes = plot_svs.split_names(args.classes)
    if any(c == plot_svs.ALL or plot_svs.is_pattern(c) for c in classes):
        analysis.check_dir(args.gradroots[0], "gradient directory")
        available = analysis.available_classes(args.gradroots[0])
    else:
        available = []
    classes = plot_svs.select_classes(classes, available, args.exclude)
    if not classes:
        raise UserError("--classes is empty")
    csv_path = plot_svs.write_plot(args.gradroots, labels, classes, args.grad_norm, args.out, args.top_k, args.relative,
                                   log_y=not args.linear)
    print(f"wrote {args.out} and {csv_path}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "plot_svs.py")


if __name__ == "__main__":
    sys.exit(main())
