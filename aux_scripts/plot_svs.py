"""Plot the sum (and optionally the top K) of the singular values of G D against delay, per model and class."""
import argparse
import csv
import fnmatch
import io
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from aux_scripts.measures import analysis  # noqa: E402
from tf_scripts.errors import UserError, run_cli  # noqa: E402

OVERALL = "overall"
ALL = "all"
CSV_SVS = 5
STYLES = ("-", "--", ":", "-.")


def _split(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def _is_pattern(item):
    return any(ch in item for ch in "*?[")


def select_classes(spec, available, exclude=()):
    """Class names from --classes: names, {ALL} (overall and every available class) and shell patterns
    (e.g. ctx_*) matched against the available classes, in name order; minus those matching an exclude pattern."""
    classes = []
    for item in spec:
        if item == ALL:
            found = [OVERALL] + sorted(available)
        elif _is_pattern(item):
            found = sorted(fnmatch.filter(available, item))
            if not found:
                raise UserError(f"--classes {item}: no class with averages matches it")
        else:
            found = [item]
        classes += [c for c in found if c not in classes]
    return [c for c in classes if not any(fnmatch.fnmatchcase(c, pattern) for pattern in exclude)]


def collect(gradroots, labels, classes, grad_norms):
    """Rows (label, class, delay, singular values) for every model, class and delay, in that order."""
    rows = []
    for root, label, norm_path in zip(gradroots, labels, grad_norms):
        grad_norm = None if norm_path is None else analysis.load_square(norm_path, "gradient normalisation D")
        for cls in classes:
            averages = analysis.load_averages(root, None if cls == OVERALL else cls, grad_norm, norm_path)
            for delay, grad in averages:
                rows.append((label, cls, delay, analysis.singular_values(grad, grad_norm)))
    return rows


def csv_text(rows):
    """CSV with header model,class,delay,sum,sv1..sv5 (raw values; empty where G has fewer SVs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "class", "delay", "sum"] + [f"sv{i + 1}" for i in range(CSV_SVS)])
    for label, cls, delay, svs in rows:
        top = [analysis.format_number(s) for s in svs[:CSV_SVS]]
        writer.writerow([label, cls, delay, analysis.format_number(svs.sum())] + top + [""] * (CSV_SVS - len(top)))
    return buffer.getvalue()


def curves(rows, top_k, relative):
    """{(label, class): (delays, sums, top [n, top_k])}, divided by the delay-0 values when relative."""
    grouped = {}
    for label, cls, delay, svs in rows:
        grouped.setdefault((label, cls), []).append((delay, svs))
    result = {}
    for (label, cls), points in grouped.items():
        delays = np.array([d for d, _ in points])
        sums = np.array([s.sum() for _, s in points])
        top = None
        if top_k:
            if any(len(s) < top_k for _, s in points):
                raise UserError(f"--top-k {top_k}: model {label} has only {min(len(s) for _, s in points)} "
                                "singular values")
            top = np.array([s[:top_k] for _, s in points])
        if relative:
            if delays[0] != 0:
                raise UserError(f"--relative needs delay 0, but model {label}, class {cls} starts at delay "
                                f"{delays[0]}")
            sums = sums / sums[0]
            if top is not None:
                top = top / top[0]
        result[(label, cls)] = (delays, sums, top)
    return result


def draw(data, classes, normalised, top_k, relative):
    """Figure with the sums (and the top-k singular values in a second panel) of the curves of data."""
    # The object API with an explicit Agg canvas: no display needed, no global pyplot state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    matrix = "G D" if normalised else "G (not normalised)"
    scale = " / value at delay 0" if relative else ""
    panels = 2 if top_k else 1
    fig = Figure(figsize=(6.4 * panels, 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)
    for (label, cls), (delays, sums, top) in data.items():
        name = label if classes == [OVERALL] else f"{label} ({cls})"
        line, = axes[0, 0].plot(delays, sums, marker=".", label=name)
        if top is not None:
            for i in range(top.shape[1]):
                axes[0, 1].plot(delays, top[:, i], color=line.get_color(), linestyle=STYLES[i % len(STYLES)],
                                marker=".", label=f"{name} SV {i + 1}")
    axes[0, 0].set_ylabel(f"sum of singular values of {matrix}{scale}")
    if top_k:
        axes[0, 1].set_ylabel(f"top {top_k} singular values of {matrix}{scale}")
    for ax in axes[0]:
        ax.set_xlabel("delay")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small" if len(data) <= 8 else "x-small", ncol=1 if len(data) <= 8 else 2)
    fig.tight_layout()
    return fig


def _main(argv):
    parser = argparse.ArgumentParser(
        prog="plot_svs.py",
        description="Plot, against delay, the sum of the singular values of the average gradient matrices "
                    "G D (GRADROOT/delay_{k}_avg[_{class}].npy) of one or more models in one PNG, and write "
                    "the numbers to a CSV beside it (FIG.csv: model,class,delay,sum,sv1..sv5, raw values).")
    parser.add_argument("gradroots", metavar="GRADROOT", nargs="+", help="gradient folders, one per model")
    parser.add_argument("--labels", help="comma-separated legend labels, one per GRADROOT (default: folder names)")
    parser.add_argument("--classes", default=OVERALL,
                        help=f"comma-separated POS class names; '{OVERALL}' = the class-free average; "
                             f"'{ALL}' = {OVERALL} and every class with averages in the first GRADROOT, in name "
                             "order; a shell pattern (e.g. 'ctx_*') = the classes it matches (default: "
                             f"{OVERALL})")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="leave out the classes matching this shell pattern (repeatable)")
    parser.add_argument("--grad-norm", metavar="D.npy", action="append",
                        help="gradient normalisation D (EMB_D_norm_grad.npy): give it once (shared) or once "
                             "per GRADROOT, in the same order (default: none, plot singular values of the raw G)")
    parser.add_argument("--top-k", metavar="K", type=int,
                        help="also plot the K largest singular values (second panel)")
    parser.add_argument("--relative", action="store_true", help="divide every curve by its delay-0 value")
    parser.add_argument("--out", metavar="FIG.png", required=True, help="output PNG; the CSV is FIG.csv")
    args = parser.parse_args(argv)

    labels = _split(args.labels) if args.labels else [
        os.path.basename(os.path.normpath(root)) for root in args.gradroots]
    if len(labels) != len(args.gradroots):
        raise UserError(f"--labels has {len(labels)} labels for {len(args.gradroots)} GRADROOT folders")
    classes = _split(args.classes)
    if any(c == ALL or _is_pattern(c) for c in classes):
        analysis.check_dir(args.gradroots[0], "gradient directory")
        available = analysis.available_classes(args.gradroots[0])
    else:
        available = []
    classes = select_classes(classes, available, args.exclude)
    if not classes:
        raise UserError("--classes is empty")
    norms = args.grad_norm or [None]
    if len(norms) == 1:
        norms = norms * len(args.gradroots)
    elif len(norms) != len(args.gradroots):
        raise UserError(f"--grad-norm has {len(norms)} files for {len(args.gradroots)} GRADROOT folders "
                        "(give one shared file or one per folder)")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if not args.out.lower().endswith(".png"):
        raise UserError(f"--out {args.out} must end in .png")
    csv_path = args.out[:-4] + ".csv"
    inputs = [n for n in norms if n is not None]
    for out in (args.out, csv_path):
        analysis.check_not_input(out, inputs)

    rows = collect(args.gradroots, labels, classes, norms)
    data = curves(rows, args.top_k, args.relative)
    fig = draw(data, classes, normalised=bool(args.grad_norm), top_k=args.top_k, relative=args.relative)

    def save_png(tmp):
        fig.savefig(tmp, format="png", dpi=120)
    analysis.atomic_write(args.out, save_png)
    analysis.atomic_write_text(csv_path, csv_text(rows))
    print(f"wrote {args.out} and {csv_path}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "plot_svs.py")


if __name__ == "__main__":
    sys.exit(main())
