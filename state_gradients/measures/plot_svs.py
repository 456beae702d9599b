"""Plot the sum (and optionally the top K) of the singular values of G D against delay, per model and class."""
import csv
import fnmatch
import io

import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL
from state_gradients.measures import analysis
from state_gradients.plots import figure, palette

ALL = "all"
CSV_SVS = 5
STYLES = ("-", "--", ":", "-.")


def split_names(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def is_pattern(item):
    return any(ch in item for ch in "*?[")


def select_classes(spec, available, exclude=()):
    """Class names from --classes: names, {ALL} (overall and every available class) and shell patterns
    (e.g. ctx_*) matched against the available classes, in name order; minus those matching an exclude pattern."""
    classes = []
    for item in spec:
        if item == ALL:
            found = [OVERALL] + sorted(available)
        elif is_pattern(item):
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


def draw(data, classes, normalised, top_k, relative, log_y=True):
    """Figure with the sums (and the top-k singular values in a second panel) of the curves of data.

    log_y: a log delay axis's counterpart for the values, which fall by decades over the delays (a
    linear axis squashes everything after the first few delays onto zero).
    """
    from matplotlib.ticker import MaxNLocator

    matrix = "G D" if normalised else "G (not normalised)"
    scale = " / value at delay 0" if relative else ""
    panels = 2 if top_k else 1
    fig = figure.new_figure(6.4 * panels, 4.8)
    axes = fig.subplots(1, panels, squeeze=False)
    models = list(dict.fromkeys(label for label, _ in data))
    for (label, cls), (delays, sums, top) in data.items():
        name = label if classes == [OVERALL] else f"{label} ({cls})"
        # one colour per class (palette), one line style per model; one class only: a colour per model
        options = palette.style(cls) if classes != [OVERALL] else {"color": palette.color(label)}
        if classes != [OVERALL] and len(models) > 1:
            options["linestyle"] = STYLES[models.index(label) % len(STYLES)]
        line, = axes[0, 0].plot(delays, sums, marker=".", label=name, **options)
        if top is not None:
            for i in range(top.shape[1]):
                axes[0, 1].plot(delays, top[:, i], color=line.get_color(), linestyle=STYLES[i % len(STYLES)],
                                marker=".", label=f"{name} SV {i + 1}")
    axes[0, 0].set_ylabel(f"sum of singular values of {matrix}{scale}")
    if top_k:
        axes[0, 1].set_ylabel(f"top {top_k} singular values of {matrix}{scale}")
    for ax in axes[0]:
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("delay")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small" if len(data) <= 8 else "x-small", ncol=1 if len(data) <= 8 else 2)
    fig.tight_layout()
    return fig


def read_csv(path, classes=None):
    """The curves of a CSV that write_plot wrote: {(model, class): (delays, sums, None)}, classes in file order
    (only `classes`, in their order, when given)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    grouped = {}
    for r in rows:
        grouped.setdefault((r["model"], r["class"]), []).append((int(r["delay"]), float(r["sum"])))
    if classes is not None:
        grouped = {key: grouped[key] for cls in classes for key in grouped if key[1] == cls}
    return {key: (np.array([d for d, _ in points]), np.array([v for _, v in points]), None)
            for key, points in grouped.items()}


def redraw(csv_path, out, classes=None, log_y=True):
    """Draw the figure of a CSV that write_plot wrote (e.g. a committed result) into OUT (.png) again."""
    data = read_csv(csv_path, classes)
    names = list(dict.fromkeys(cls for _, cls in data))
    fig = draw(data, names, normalised=True, top_k=None, relative=False, log_y=log_y)
    figure.save_png(fig, out, dpi=120)


def write_plot(gradroots, labels, classes, grad_norms, out, top_k=None, relative=False, log_y=True):
    """Write the figure OUT (.png) and its numbers OUT[:-4].csv (see csv_text); returns the CSV's path.

    grad_norms: None, one D.npy path shared by every gradroot, or one per gradroot.
    """
    norms = grad_norms or [None]
    if len(norms) == 1:
        norms = norms * len(gradroots)
    elif len(norms) != len(gradroots):
        raise UserError(f"--grad-norm has {len(norms)} files for {len(gradroots)} GRADROOT folders "
                        "(give one shared file or one per folder)")
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    if not out.lower().endswith(".png"):
        raise UserError(f"--out {out} must end in .png")
    csv_path = out[:-4] + ".csv"
    inputs = [n for n in norms if n is not None]
    for path in (out, csv_path):
        analysis.check_not_input(path, inputs)
    rows = collect(gradroots, labels, classes, norms)
    data = curves(rows, top_k, relative)
    fig = draw(data, classes, normalised=bool(grad_norms), top_k=top_k, relative=relative, log_y=log_y)
    figure.save_png(fig, out, dpi=120)
    analysis.atomic_write_text(csv_path, csv_text(rows))
    return csv_path
