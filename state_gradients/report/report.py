"""The reproduction report: decay fits, class rankings, findings, figures and tables from a reproduce folder."""
# Shape letters: K delays, C classes.
#
# Reads (paths relative to DIR, the layout of sg-reproduce; missing optional parts are named
# in the report as not computed):
#   svs.csv                          plot_svs.py's table: model,class,delay,sum,sv1..sv5 (required)
#   gradients/grad_progress.json     the gradient pass: validation perplexity, batches
#   test_perplexity.json             main.py --result: the test perplexity
#   classes/freq/freq_bins.csv       freq_classes.py's bins
#   classifier/pos.json              sg-pos-classifier --result: examples, scores, baselines
#   diff/{NAME}_relative_memory.json, diff/{NAME}_cos_subspace.json   their --result files
#   pos_mapping.json                 sg-build-pos-mapping --result: the coverage
# Result files (JSON, state_gradients/core/results.py's schema) and CSV only: no printed output is parsed.
#   intervals/intervals.csv, intervals/replicates.csv   sg-intervals' output: with them, every
#                                    SV sum, fit and finding gets its interval (state_gradients/measures/verdicts.py);
#                                    its ctx_* classes are the classes in context (--pos-data)
#   tagger/tagger.json               sg-pos-tagger's held-out accuracy (with --pos-data)
# Writes into DIR: report.md, report.html (figures embedded), figures report_*.png and the
# tables behind them, report_*.csv.
import base64
import csv
import dataclasses
import glob
import html
import io
import json
import math
import os
import re

import numpy as np

from state_gradients.classes import token_classes
from state_gradients.core import families, results
from state_gradients.core.errors import UserError
from state_gradients.measures import analysis, intervals, uncertainty, verdicts
from state_gradients.plots import palette

OVERALL = "overall"
FREQ_PREFIX = "freq_"
RANK_DELAYS = (1, 5, 10, 20, 40)
REMEMBERED_POS = "nouns"


# --------------------------------------------------------------------------------------------
# Decay fits
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Fit:
    """y ≈ a·exp(−k/tau) ("exponential") or y ≈ a·k^(−b) ("power law"), fitted on log y."""
    model: str
    a: float
    rate: float          # tau for the exponential, b for the power law
    rmse_log: float      # root mean square of the residuals of log y (natural log)
    delays: tuple

    def predict(self, k):
        k = np.asarray(k, dtype=np.float64)
        if self.model == "exponential":
            return self.a * np.exp(-k / self.rate)
        return self.a * k ** (-self.rate)


def fit_decay(delays, values, first_delay=1):
    """(exponential Fit, power-law Fit) of values against delays >= first_delay (least squares on log).

    Both use the same points, so their errors compare. delay 0 is left out by default: the
    power law is undefined there, and delay 0 (the word itself) is not memory.
    """
    delays = np.asarray(delays, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = (delays >= max(first_delay, 1e-12)) & (values > 0)
    k, y = delays[keep], np.log(values[keep])
    if len(k) < 3:
        raise UserError(f"fitting the decay needs at least 3 delays >= {first_delay} with a positive value, "
                        f"got {len(k)}")
    fits = []
    for model, x in (("exponential", k), ("power law", np.log(k))):
        slope, intercept = np.polyfit(x, y, 1)
        rmse = float(np.sqrt(np.mean((intercept + slope * x - y) ** 2)))
        rate = -1.0 / slope if model == "exponential" else -slope
        if model == "exponential" and slope == 0:
            rate = math.inf
        fits.append(Fit(model, float(np.exp(intercept)), float(rate), rmse, tuple(int(d) for d in k)))
    return fits[0], fits[1]


# --------------------------------------------------------------------------------------------
# Tables read from the reproduce folder
# --------------------------------------------------------------------------------------------

def read_svs(path):
    """{class: {delay: sum}} from plot_svs.py's CSV (one model), classes in file order."""
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: run plot_svs.py (sg-reproduce's svs step) first")
    table = {}
    with open(path, encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"class", "delay", "sum"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected plot_svs.py's CSV)")
        for lineno, row in enumerate(reader, start=2):
            try:
                table.setdefault(row["class"], {})[int(row["delay"])] = float(row["sum"])
            except ValueError:
                raise UserError(f"{path} line {lineno}: delay {row['delay']!r} or sum {row['sum']!r} "
                                "is not a number") from None
    if OVERALL not in table:
        raise UserError(f"{path} has no '{OVERALL}' rows")
    return table


def ranking(table, classes, delays):
    """{delay: [(class, sum)] sorted by decreasing sum} for the delays that every class has."""
    out = {}
    for k in delays:
        if all(k in table[c] for c in classes):
            out[k] = sorted(((c, table[c][k]) for c in classes), key=lambda item: -item[1])
    return out


def read_text_if(path):
    return open(path, encoding="utf-8").read() if os.path.isfile(path) else None


def class_groups(table):
    """(POS classes in file order, frequency bins rarest first) of an svs table ({class: {delay: sum}})."""
    pos = [c for c in table if c != OVERALL and not c.startswith(FREQ_PREFIX)]
    return pos, sorted((c for c in table if c.startswith(FREQ_PREFIX)), key=freq_sort_key)


def read_progress(directory):
    """DIR/gradients/grad_progress.json as a dict ({} when the pass did not write it)."""
    text = read_text_if(os.path.join(directory, "gradients", "grad_progress.json"))
    return json.loads(text) if text else {}


def read_test_perplexity(directory):
    """The test perplexity of DIR/test_perplexity.json (main.py --result), or None when not computed."""
    result = results.read_result_if(os.path.join(directory, "test_perplexity.json"), "main.py")
    return None if result is None else result["test_perplexity"]


def read_delay_series(path, tool, field):
    """{delay: value} of one field of a per-delay result file (sg-relative-memory, sg-cos-subspace-diff-vector),
    NaN for null; None when the file does not exist."""
    result = results.read_result_if(path, tool)
    if result is None:
        return None
    return {int(k): math.nan if v is None else float(v) for k, v in zip(result["delays"], result[field])}


def freq_sort_key(name):
    match = re.match(rf"^{FREQ_PREFIX}(\d+)", name)
    return int(match.group(1)) if match else math.inf


# --------------------------------------------------------------------------------------------
# Findings: the papers' claims, judged by fixed rules (stated in the report)
# --------------------------------------------------------------------------------------------

def finding_shrink(overall):
    delays = sorted(overall)
    drops = sum(overall[b] < overall[a] for a, b in zip(delays, delays[1:]))
    pairs = len(delays) - 1
    last = overall[delays[-1]] / overall[delays[0]]
    verdict = "holds" if drops == pairs else ("partly" if last < 1 else "does not hold")
    return verdict, (f"the sum falls from delay {delays[0]} to {delays[-1]} at {drops} of {pairs} steps; "
                     f"at delay {delays[-1]} it is {last:.3g} of its delay-{delays[0]} value")


def finding_decay(exp_fit, pow_fit):
    better = "power law" if pow_fit.rmse_log < exp_fit.rmse_log else "exponential"
    verdict = "holds" if better == "power law" else "does not hold"
    return verdict, (f"on log scale over delays {exp_fit.delays[0]}-{exp_fit.delays[-1]} the power law "
                     f"(b = {pow_fit.rate:.3g}) leaves an RMS error of {pow_fit.rmse_log:.3g}, the exponential "
                     f"(tau = {exp_fit.rate:.3g}) {exp_fit.rmse_log:.3g}: the {better} fits better")


def finding_nouns(ranks):
    if not ranks:
        return "not computed", "no POS classes"
    firsts = [k for k, order in ranks.items() if order[0][0] == REMEMBERED_POS]
    places = ", ".join(f"{k}: {[c for c, _ in order].index(REMEMBERED_POS) + 1} of {len(order)}"
                       for k, order in ranks.items())
    verdict = "holds" if len(firsts) == len(ranks) else ("partly" if firsts else "does not hold")
    return verdict, f"rank of {REMEMBERED_POS} among the POS classes at delay {places}"


def finding_frequency(table, freq_classes, delays):
    if len(freq_classes) < 2:
        return "not computed", "fewer than two frequency bins"
    rare, frequent = freq_classes[0], freq_classes[-1]
    usable = [k for k in delays if all(k in table[c] for c in freq_classes)]
    above = [k for k in usable if table[rare][k] > table[frequent][k]]
    ordered = [k for k in usable if all(table[a][k] > table[b][k] for a, b in zip(freq_classes, freq_classes[1:]))]
    start = 1 if all(1 in table[c] for c in (rare, frequent)) else min(table[rare])
    far = max(k for k in usable) if usable else None
    longer = None
    if far is not None and table[rare][start] > 0 and table[frequent][start] > 0:
        keep_rare = table[rare][far] / table[rare][start]
        keep_freq = table[frequent][far] / table[frequent][start]
        longer = (keep_rare, keep_freq)
    better = len(above) == len(usable) and usable
    kept_longer = longer is not None and longer[0] > longer[1]
    if better and kept_longer:
        verdict = "holds"
    elif above or kept_longer:
        verdict = "partly"
    else:
        verdict = "does not hold"
    text = (f"{rare} above {frequent} at {len(above)} of {len(usable)} ranking delays; all bins in frequency "
            f"order at {len(ordered)} of {len(usable)}")
    if longer is not None:
        text += (f"; share of the delay-{start} value left at delay {far}: {rare} {longer[0]:.3g}, "
                 f"{frequent} {longer[1]:.3g}")
    return verdict, text


# --------------------------------------------------------------------------------------------
# Figures (matplotlib object API, no display needed)
# --------------------------------------------------------------------------------------------

def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 4.6))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def plot_classes(table, classes, title, log_y=True):
    fig, ax = _figure()
    for cls in [OVERALL] + classes:
        delays = sorted(table[cls])
        ax.plot(delays, [table[cls][k] for k in delays], marker=".", markersize=3, label=cls, **palette.style(cls))
    ax.set_xlabel("delay k")
    ax.set_ylabel("sum of singular values of G·D")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _png(fig)


def plot_fits(overall, exp_fit, pow_fit):
    return _png(fits_figure(overall, exp_fit, pow_fit))


def fits_figure(values, exp_fit, pow_fit, label="overall (measured)"):
    """The Figure of a class's SV sums ({delay: sum}) with its exponential and power-law fits (log y)."""
    fig, ax = _figure()
    delays = np.array(sorted(values))
    ax.plot(delays, [values[k] for k in delays], "k.", label=label)
    k = np.array(exp_fit.delays, dtype=np.float64)
    ax.plot(k, exp_fit.predict(k), label=f"exponential, tau = {exp_fit.rate:.3g} (RMS log error {exp_fit.rmse_log:.3g})")
    ax.plot(k, pow_fit.predict(k), label=f"power law, b = {pow_fit.rate:.3g} (RMS log error {pow_fit.rmse_log:.3g})")
    ax.set_xlabel("delay k")
    ax.set_ylabel("sum of singular values of G·D")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_intervals(by_key, classes, title):
    """Bias-corrected SV sums with their 95% intervals per class, each class's noise floor dashed (log y)."""
    fig, ax = _figure()
    for cls in classes:
        delays = sorted(k for c, k in by_key if c == cls)
        rows = [by_key[cls, k] for k in delays]
        keep = [i for i, r in enumerate(rows) if math.isfinite(r["estimate"]) and r["estimate"] > 0]
        if not keep:
            continue
        k = np.array([delays[i] for i in keep], dtype=np.float64)
        est = np.array([rows[i]["estimate"] for i in keep])
        lo = np.array([max(rows[i]["lo"], est[j] / 1e3) for j, i in enumerate(keep)])   # log axis: no lo <= 0
        hi = np.array([rows[i]["hi"] for i in keep])
        style = palette.style(cls)
        ax.errorbar(k, est, yerr=[est - lo, hi - est], marker=".", markersize=3, capsize=2, label=cls, **style)
        floor = np.array([rows[i]["noise_floor"] for i in keep])
        ax.plot(k, floor, ":", color=style["color"], linewidth=1)
    ax.plot([], [], ":", color="grey", label="noise floor (dotted, per class)")
    ax.set_xlabel("delay k")
    ax.set_ylabel("bias-corrected SV sum of G·D, 95% interval")
    ax.set_yscale("log")
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _png(fig)


def plot_coherence(by_key, classes, title):
    """The size-free control per class: coherence² / magnitude² with its 95% interval, against delay."""
    fig, ax = _figure()
    for cls in classes:
        rows = sorted((k, r) for (c, k), r in by_key.items() if c == cls and math.isfinite(r["coherence_ratio_se"]))
        if not rows:
            continue
        k = np.array([k for k, _ in rows], dtype=np.float64)
        y = np.array([r["coherence_ratio"] for _, r in rows])
        lo = np.array([r["coherence_ratio_lo"] for _, r in rows])
        hi = np.array([r["coherence_ratio_hi"] for _, r in rows])
        ax.errorbar(k, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], marker=".", markersize=3, capsize=2,
                    label=cls, **palette.style(cls))
    ax.set_xlabel("delay k")
    ax.set_ylabel("coherence² / magnitude², 95% interval")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _png(fig)


def plot_relative_memory(series, cosines, baselines):
    """Relative memory (left) and subspace cosine (right) of each difference vector, its random direction dotted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 4.4))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for name, values in series.items():
        colour = palette.color(name)
        delays = sorted(values)
        left.plot(delays, [values[k] for k in delays], marker=".", markersize=3, color=colour, label=name)
        rel, cos = baselines.get(name, ({}, {}))
        if rel:
            ks = sorted(rel)
            left.plot(ks, [rel[k] for k in ks], ":", color=colour, label=f"{name}: random direction")
        if name in cosines:
            ks = sorted(cosines[name])
            right.plot(ks, [cosines[name][k] for k in ks], marker=".", markersize=3, color=colour, label=name)
        if cos:
            ks = sorted(cos)
            right.plot(ks, [cos[k] for k in ks], ":", color=colour, label=f"{name}: random direction")
    left.set_ylabel("relative memory ‖(G·D) d̂‖ / σ_max")
    right.set_ylabel("cosine of d̂ with the top right singular vectors")
    for ax in (left, right):
        ax.set_xlabel("delay k")
        ax.set_ylim(0, 1.05)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    if not cosines:
        right.text(0.5, 0.5, "subspace cosine not computed", ha="center", va="center", transform=right.transAxes)
    fig.tight_layout()
    return _png(fig)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

def table_csv(rows, header):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(x):
    """A cell: floats to 4 significant digits, integers with thousands separators, None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        return "n/a" if not math.isfinite(x) else f"{float(x):.4g}"
    return str(x)


def _numeric(x):
    return x is None or (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)))


def slug(text):
    """The anchor of a heading, as GitHub and the HTML report spell it."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


class Document:
    """One report written twice: Markdown (figures as files) and self-contained HTML (figures inline).

    Parts are added in reading order; `slot(name)` keeps a place that `fill(name, other)` fills later
    (the findings, which lead the report but are judged from the sections after them). The table of
    contents is made from the headings when the report is rendered.
    """

    def __init__(self, title=None):
        self.title = title
        self.parts = []     # ("heading", text) | ("slot", name) | ("toc", None) | (markdown, html)
        self.figures = {}   # file name -> PNG bytes, written beside report.md

    def heading(self, text):
        self.parts.append(("heading", text))

    def slot(self, name):
        self.parts.append(("slot", name))

    def contents(self):
        self.parts.append(("toc", None))

    def fill(self, name, other):
        index = self.parts.index(("slot", name))
        self.parts[index:index + 1] = other.parts
        self.figures.update(other.figures)

    def para(self, text):
        self.parts.append((text, f"<p>{html.escape(text)}</p>"))

    def table(self, header, rows, caption=None):
        """A table; columns whose cells are all numbers (or n/a) are right-aligned."""
        right = [all(_numeric(row[i]) for row in rows) and any(row[i] is not None for row in rows)
                 for i in range(len(header))]
        md = ["| " + " | ".join(header) + " |", "|" + "".join("---:|" if r else "---|" for r in right)]
        md += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
        num = ' class="num"'
        head = "".join(f"<th{num if r else ''}>{html.escape(h)}</th>" for h, r in zip(header, right))
        body = "".join("<tr>" + "".join(f"<td{num if r else ''}>{html.escape(_fmt(c))}</td>"
                                        for c, r in zip(row, right)) + "</tr>" for row in rows)
        note = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(("\n".join(md + ([f"*{caption}*"] if caption else [])),
                           f'<div class="scroll"><table>{note}<thead><tr>{head}</tr></thead><tbody>{body}'
                           "</tbody></table></div>"))

    def figure(self, name, png, caption, table_name=None):
        self.figures[name] = png
        link = f" (data: [{table_name}]({table_name}))" if table_name else ""
        data = base64.b64encode(png).decode("ascii")
        note = f" (data: {html.escape(table_name)})" if table_name else ""
        self.parts.append((f"![{caption}]({name})\n\n*{caption}*{link}",
                           f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{html.escape(caption)}{note}</figcaption></figure>"))

    def _headings(self):
        return [text for kind, text in self.parts if kind == "heading"]

    def markdown(self):
        out = [f"# {self.title}", ""]
        for kind, value in self.parts:
            if kind == "heading":
                out += [f"## {value}", ""]
            elif kind == "toc":
                out += ["Contents: " + " · ".join(f"[{h}](#{slug(h)})" for h in self._headings()), ""]
            elif kind != "slot":
                out += [kind, ""]
        return "\n".join(out).rstrip() + "\n"

    def html_page(self, title=None):
        title = title or self.title
        style = ("body{font-family:system-ui,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;line-height:1.45;"
                 "color:#222}h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}"
                 "nav{background:#f6f6f6;padding:.6em 1em;border-radius:4px}nav ol{margin:.2em 0;columns:2}"
                 ".scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:1em 0;font-size:.92em}"
                 "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}"
                 "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
                 "caption{caption-side:bottom;font-style:italic;text-align:left}"
                 "img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{font-style:italic}"
                 "p{overflow-wrap:anywhere}")
        body = [f"<h1>{html.escape(title)}</h1>"]
        for kind, value in self.parts:
            if kind == "heading":
                body.append(f'<h2 id="{slug(value)}">{html.escape(value)}</h2>')
            elif kind == "toc":
                items = "".join(f'<li><a href="#{slug(h)}">{html.escape(h)}</a></li>' for h in self._headings())
                body.append(f"<nav><strong>Contents</strong><ol>{items}</ol></nav>")
            elif kind != "slot":
                body.append(value)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}"
                f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def read_replicates(directory):
    """(type-level, in context) from DIR/intervals/: each (interval rows, verdicts.Replicates), or None when sg-intervals
    did not run or the pass had no classes in context. The classes in context are those whose names begin with
    sg-token-classes's CONTEXT_PREFIX; they are named here without it (beside the overall rows)."""
    folder = os.path.join(directory, "intervals")
    if not os.path.isfile(os.path.join(folder, intervals.INTERVALS_CSV)):
        return None, None
    rows = intervals.read_csv(os.path.join(folder, intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    reps = intervals.read_csv(os.path.join(folder, intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS)
    prefix = token_classes.CONTEXT_PREFIX

    def part(in_context):
        """(interval rows, Replicates) of one family, the overall rows in both."""
        def name(r):
            return r["class"][len(prefix):] if in_context and r["class"] != OVERALL else r["class"]
        keep = [[{**r, "class": name(r)} for r in items
                 if r["class"] == OVERALL or r["class"].startswith(prefix) == in_context] for items in (rows, reps)]
        return keep[0], verdicts.Replicates(*keep)

    has_context = any(r["class"].startswith(prefix) for r in rows)
    return part(False), part(True) if has_context else None


def _size_free(r):
    """[coherence, RMS magnitude, the ratio of their squares with its interval] of an intervals row (None when absent)."""
    coherence = math.sqrt(r["coherence_sq"]) if r["coherence_sq"] > 0 else 0.0
    if not math.isfinite(r.get("magnitude_sq", math.nan)):
        return [coherence, None, None]
    ratio = (f"{r['coherence_ratio']:.3g} [{r['coherence_ratio_lo']:.3g}, {r['coherence_ratio_hi']:.3g}]"
             if math.isfinite(r["coherence_ratio_se"]) else None)
    return [coherence, math.sqrt(r["magnitude_sq"]), ratio]


def _stateful(cfg):
    """Whether the run's model family carries a state from window to window (core/families.py; an unknown
    basic_cell is read as recurrent, as the report of an older run would have it)."""
    found = families.FAMILIES.get(cfg.get("basic_cell"))
    return found is None or found.stateful


def _interval(x):
    if not (math.isfinite(x["lo"]) and math.isfinite(x["hi"])):   # e.g. a class with occurrences in one block only
        return f"{x['estimate']:.4g} [no interval]"
    return f"{x['estimate']:.4g} [{x['lo']:.4g}, {x['hi']:.4g}]"


def _interval_sections(doc, loaded, pos_classes, freq_classes, overall):
    """The intervals and size controls, the fits and the comparisons; returns ({finding: verdict}, comparison rows)."""
    rows, reps = loaded
    by_key = {(r["class"], r["delay"]): r for r in rows}
    doc.heading("Intervals and class-size controls")
    methods = {r.get("bias_method") for r in rows}
    correction = ("by the generalised jackknife of order 1/2 of the run's own time (its blocks are not kept), with the "
                  "ordinary jackknife's standard error restated from its replicates"
                  if methods == {intervals.BIAS_LEGACY} else
                  "by a bias simulated from the blocks' own noise around the denoised average (whatever the bias's "
                  "order), with the ordinary delete-one-block jackknife's standard error")
    doc.para(f"Estimand: for a class c and delay k, ‖E[G·D | c, k]‖_*, the SV sum of the expected state gradient of "
             f"this model on this text distribution. The validation text is cut into {reps.blocks} contiguous blocks; "
             f"the SV sum of the validation average overestimates the estimand by the noise of the average, so the "
             f"estimate is bias-corrected {correction} and a 95% t interval ({reps.blocks - 1} degrees of freedom; "
             "docs/intervals.md gives the method and its calibration). Noise floor: the SV sum that the average's "
             "noise alone gives at the class's count (random-sign combinations of its centred block sums): a class "
             "with no memory shows about this value. Coherence: ‖E[G·D]‖_F, from an unbiased cross-block estimate "
             "of its square, which does not grow with the noise of a small class. Magnitude: the root mean square "
             "over the class's occurrences of ‖G·D‖_F, how strongly one occurrence's state depends on its input. "
             "Their squared ratio (in [0, 1]) is the share of that magnitude that survives averaging: a size-free "
             "measure of how consistently the class's occurrences point the same way; its interval is the "
             "jackknife's.")
    table_rows = []
    for cls in [OVERALL] + pos_classes + freq_classes:
        for k in RANK_DELAYS:
            r = by_key.get((cls, k))
            if r is None:
                continue
            table_rows.append([cls, k, r["count"], r["sv_sum"], _interval(r), r["noise_floor"], *_size_free(r)])
    doc.table(["class", "k", "occurrences", "SV sum of the average", "bias-corrected [95% interval]", "noise floor",
               "coherence ‖E[G·D]‖_F", "magnitude (E‖G·D‖_F²)^½", "coherence² / magnitude² [95%]"], table_rows)
    for group, classes, name in (("POS class", pos_classes, "report_intervals_pos.png"),
                                 ("training-frequency bin", freq_classes, "report_intervals_freq.png")):
        if classes:
            doc.figure(name, plot_intervals(by_key, [OVERALL] + classes, f"per {group}, with noise floors"),
                       f"Bias-corrected SV sums of G·D per {group} with 95% intervals over the text blocks; dotted: "
                       "each class's noise floor, what its count of occurrences gives without memory (log scale)",
                       "intervals/intervals.csv")
    if any(math.isfinite(r["coherence_ratio_se"]) for r in rows if r["class"] in pos_classes):
        doc.figure("report_coherence_pos.png", plot_coherence(by_key, [OVERALL] + pos_classes, "per POS class"),
                   "The size-free control: the share of a class's gradient magnitude that survives averaging "
                   "(coherence² / magnitude²) per POS class, with 95% intervals; it does not grow with the "
                   "noise of a small class", "intervals/intervals.csv")

    findings, comparison_rows = {}, []
    fit_delays = [k for k in sorted(overall) if k >= 1 and reps.has([(OVERALL, k)])]
    if len(fit_delays) >= 3:
        keys = [(OVERALL, k) for k in fit_delays]
        fit_rows = []
        for model, index in (("exponential", 0), ("power law", 1)):
            for label, attr in (("a", "a"), ("τ or b", "rate"), ("RMS error of ln", "rmse_log")):
                out = reps.statistic(lambda v, i=index, a=attr: getattr(
                    fit_decay(fit_delays, [v[key] for key in keys])[i], a), keys)
                fit_rows.append([model, label, out["value"], _interval(out)])
        doc.para("Fits of the overall curve with jackknife intervals (each replicate's curve refitted):")
        doc.table(["model", "parameter", "on the average", "bias-corrected [95% interval]"], fit_rows)
    families = type_level_families(reps, pos_classes, freq_classes, overall)
    doc.heading("Comparisons behind the findings")
    doc.para("Each row: a bias-corrected difference with its 95% interval (not corrected for multiplicity), its p "
             "(t test) and the Holm-adjusted p within its finding.")
    for name, (verdict, family) in families.items():
        findings[name] = verdict
        doc.para(f"{name}: {verdict}")
        doc.table(["comparison", "estimate [95% interval]", "p", "Holm p"],
                  [[c.name, _interval(dataclasses.asdict(c)), c.p, c.p_holm] for c in family])
        comparison_rows += [[name, c.name, c.estimate, c.se, c.lo, c.hi, c.p, c.p_holm, c.sign] for c in family]
    return findings, comparison_rows


CONTEXT_FINDINGS = {"nouns": "nouns are remembered best among POS classes (tags in context)",
                    "matched": "nouns above verbs within frequency bins (tags in context)",
                    "types": "infrequent words are remembered better and longer, every word type weighted equally "
                             "(tags in context)",
                    "within_pos": "infrequent words are remembered better within POS classes (tags in context)"}
# a POS x frequency cell enters the within-POS comparison with at least this many occurrences at k = 1 (the
# frequency bins themselves are merged until each has 1,000 validation tokens: sg-freq-classes)
MIN_CELL_OCCURRENCES = 1000
TYPE_WEIGHTED = intervals.TYPE_GROUPS


def type_level_families(reps, pos_classes, freq_classes, overall_delays):
    """{finding: (verdict, family of verdicts.Comparison)} of the type-level classes, judged on reps.

    reps: verdicts.Replicates of one run, or verdicts.Pooled of several seeds; overall_delays:
    the delays of the overall curve (those >= 1 with replicates are fitted).
    """
    fit_delays = [k for k in sorted(overall_delays) if k >= 1 and reps.has([(OVERALL, k)])]
    families = {}
    if len(fit_delays) >= 3:
        families["the decay is fast but not exponential"] = verdicts.finding_decay(reps, OVERALL, fit_delays, fit_decay)
    families["singular values shrink with delay"] = verdicts.finding_shrink(reps, OVERALL, list(RANK_DELAYS))
    if REMEMBERED_POS in pos_classes and len(pos_classes) > 1:
        others = [c for c in pos_classes if c != REMEMBERED_POS]
        families["nouns are remembered best among POS classes"] = verdicts.finding_best(
            reps, REMEMBERED_POS, others, list(RANK_DELAYS))
    if len(freq_classes) >= 2:
        families["infrequent words are remembered better and longer"] = verdicts.finding_rare(
            reps, freq_classes[0], freq_classes[-1], list(RANK_DELAYS), RANK_DELAYS[-1])
    return families


def common_bin_weights(reps):
    """{bin: weight} of the frequency bins where nouns and verbs (in context) both occur: the bins' share of the
    two classes together at k = 1 (empty when there are no such classes)."""
    names = {cls for cls, _ in reps.value}
    bins = sorted((n.split("-", 1)[1] for n in names if n.startswith("nouns-freq_")), key=freq_sort_key)
    # a bin without nouns or verbs has nothing to compare
    counts = {b: [reps.count.get((f"{c}-{b}", 1)) for c in ("nouns", "verbs")] for b in bins}
    counts = {b: sum(pair) for b, pair in counts.items() if all(pair)}
    total = sum(counts.values())
    return {b: n / total for b, n in counts.items()}


def measure_panel(type_level, context, pos_classes, freq_classes, overall_delays):
    """The findings judged under every measure of verdicts.MEASURES that the run has: [(finding, {measure: (verdict,
    effect, comparisons)}, summary)], summary by verdicts.across_measures over the measures that judged it."""
    panel = {}
    for measure in verdicts.MEASURES:
        reps = type_level.for_measure(measure)
        if not reps.has([(OVERALL, 1)]):
            continue
        families = type_level_families(reps, pos_classes, freq_classes, overall_delays)
        if context is not None:
            families.update(context_families(context.for_measure(measure), pos_classes))
        for name, (verdict, family) in families.items():
            panel.setdefault(name, {})[measure] = (verdict, verdicts.family_effect(family), len(family))
    return [(name, by_measure, verdicts.across_measures({m: v for m, (v, _, n) in by_measure.items() if n}))
            for name, by_measure in panel.items()]


def _panel_section(lead, panel):
    """The findings table under each measure (into the Findings section); returns its CSV rows."""
    measures = [m for m in verdicts.MEASURES if any(m in by for _, by, _ in panel)]
    lead.para("The same findings under each memory measure (docs/measures.md says what each answers): the verdict by "
              "the same rules, with the intervals of that measure, and beside it an effect size, the median over "
              "the finding's comparisons of the difference relative to the mean size of the two values compared "
              "(for the decay finding, the difference of RMS log errors). A finding 'holds under every measure' "
              "when it holds under each that could judge it, 'holds under none' when it holds under none, and "
              "otherwise 'depends on the measure'.")
    lead.table(["finding"] + [verdicts.MEASURES[m].what for m in measures] + ["across measures"],
               [[name] + [f"{by[m][0]} ({by[m][1]:+.2g})" if m in by and by[m][2] else "n/a" for m in measures]
                + [summary] for name, by, summary in panel])
    return [[name, m, by[m][0], by[m][1], summary] for name, by, summary in panel for m in measures if m in by]


def context_families(reps, pos_classes):
    """{finding: (verdict, family)} of the classes in context (named without the ctx_ prefix), judged on reps."""
    names = {cls for cls, _ in reps.value}
    plain = [c for c in pos_classes if c in names]
    families = {}
    if REMEMBERED_POS in plain and len(plain) > 1:
        families[CONTEXT_FINDINGS["nouns"]] = verdicts.finding_best(
            reps, REMEMBERED_POS, [c for c in plain if c != REMEMBERED_POS], list(RANK_DELAYS))
    weights = common_bin_weights(reps)
    if weights:
        families[CONTEXT_FINDINGS["matched"]] = verdicts.frequency_matched(
            reps, "nouns", "verbs", list(weights), list(RANK_DELAYS), weights)
    typed = type_weighted_bins(reps)
    if len(typed) >= 2:
        families[CONTEXT_FINDINGS["types"]] = verdicts.finding_rare(reps, typed[0], typed[-1], list(RANK_DELAYS),
                                                                    RANK_DELAYS[-1])
    cells = pos_frequency_cells(reps, pos_classes)
    if cells:
        families[CONTEXT_FINDINGS["within_pos"]] = verdicts.finding_within(reps, cells, list(RANK_DELAYS))
    return families


def type_weighted_bins(reps):
    """The type-weighted bins freq_BIN+types (sg-intervals' type-group families) of reps, rarest first."""
    names = {cls for cls, _ in reps.value}
    return sorted((n for n in names if n.startswith(FREQ_PREFIX) and n.endswith(TYPE_WEIGHTED)), key=freq_sort_key)


def pos_frequency_cells(reps, pos_classes):
    """{POS class: (its rarest bin's class, its most frequent bin's class)} among its POS x frequency cells
    (NAME-freq_BIN, in context) with at least MIN_CELL_OCCURRENCES at k = 1; classes with fewer than two such cells
    are left out."""
    names = {cls for cls, _ in reps.value}
    out = {}
    for pos in pos_classes:
        cells = sorted((n for n in names if n.startswith(f"{pos}-{FREQ_PREFIX}")
                        and (reps.count.get((n, 1)) or 0) >= MIN_CELL_OCCURRENCES),
                       key=lambda n: freq_sort_key(n.split("-", 1)[1]))
        if len(cells) >= 2:
            out[pos] = (cells[0], cells[-1])
    return out


def _context_section(doc, directory, context, type_level, pos_classes):
    """Tagger, type-level vs in-context classes, <unk>, frequency-matched nouns vs verbs; ({finding: verdict}, rows)."""
    rows, reps = context
    by_key = {(r["class"], r["delay"]): r for r in rows}
    names = sorted({r["class"] for r in rows})
    doc.heading("Word classes in context")
    tagger = read_text_if(os.path.join(directory, "tagger", "tagger.json"))
    if tagger:
        t = json.loads(tagger)
        low, high = t["accuracy_wilson95"]
        doc.para(f"The type-level mapping gives a word every tag it can have, so its classes overlap. Here every "
                 f"validation token has one tag in context, from an averaged-perceptron tagger trained on "
                 f"{t['train_sentences']} normalised sentences (CoNLL-2000 train, the treebank sample) and tested on "
                 f"{t['held_out_sentences']} held-out sentences (CoNLL-2000 test): accuracy {t['accuracy']:.4f} "
                 f"[{low:.4f}, {high:.4f}] (Wilson 95%), against {t['majority_baseline']:.4f} for always "
                 f"{t['majority_tag']}. <unk> tokens get tags too; the plain classes hold known words only, "
                 "NAME+unk adds the <unk> tokens.")
        doc.table(["tag", "precision", "recall", "held-out tokens"],
                  [[tag, v["precision"], v["recall"], v["support"]] for tag, v in sorted(t["per_tag"].items())
                   if v["support"] >= 200])
    type_rows = {} if type_level is None else {(r["class"], r["delay"]): r for r in type_level[0]}
    table_rows = []
    for cls in pos_classes:
        for k in RANK_DELAYS:
            if (cls, k) not in by_key:
                continue
            typed = type_rows.get((cls, k))
            unk = by_key.get((f"{cls}+unk", k))
            table_rows.append([cls, k, typed["count"] if typed else None, _interval(typed) if typed else None,
                               by_key[(cls, k)]["count"], _interval(by_key[(cls, k)]), _interval(unk) if unk else None,
                               _size_free(typed)[2] if typed else None, _size_free(by_key[(cls, k)])[2]])
    doc.table(["class", "k", "occurrences (types)", "types: bias-corrected [95%]", "occurrences (in context)",
               "in context [95%]", "in context with <unk> [95%]", "coherence² / magnitude², types [95%]",
               "the same in context [95%]"], table_rows)
    findings, out_rows = {}, []
    families = context_families(reps, pos_classes)
    for name, (verdict, family) in families.items():
        findings[name] = verdict
        out_rows += [[name, c.name, c.estimate, c.se, c.lo, c.hi, c.p, c.p_holm, c.sign] for c in family]
    if CONTEXT_FINDINGS["nouns"] in families:
        doc.para(f"{CONTEXT_FINDINGS['nouns']}: {findings[CONTEXT_FINDINGS['nouns']]} (comparisons in "
                 "report_comparisons.csv)")
    if CONTEXT_FINDINGS["matched"] in families:
        verdict, family = families[CONTEXT_FINDINGS["matched"]]
        weights = common_bin_weights(reps)
        doc.para("Frequency-matched: nouns minus verbs (in context, known words) within each training-frequency bin, "
                 "and the per-bin differences averaged with common weights (the bins' share of the nouns and verbs "
                 f"together at k = 1: {', '.join(f'{b} {w:.3f}' for b, w in weights.items())}), one Holm family: "
                 f"{verdict}.")
        doc.table(["comparison", "estimate [95% interval]", "p", "Holm p"],
                  [[c.name, _interval(dataclasses.asdict(c)), c.p, c.p_holm] for c in family])
    typed = type_weighted_bins(reps)
    if typed:
        groups = by_key[(typed[0], 1)]["blocks"] if (typed[0], 1) in by_key else None
        doc.para("Frequency bins with their word types weighted equally: each token of a bin weighs 1 / its type's "
                 "count in the measured text, so that every type counts once (the 10000+ bin is a handful of "
                 "function words, the rarest thousands of types); the types are dealt at random into "
                 f"{groups} groups and the intervals resample the groups (a jackknife over types, not text). "
                 "Beside it the same bin with every occurrence weighted equally (text blocks).")
        typed_rows = []
        for name in typed:
            plain = name[:-len(TYPE_WEIGHTED)]
            for k in RANK_DELAYS:
                t = by_key.get((name, k))
                if t is None:
                    continue
                o = by_key.get((plain, k))
                typed_rows.append([plain, k, o["count"] if o else None, _interval(o) if o else None,
                                   f"{t['count']:.4g}", _interval(t)])
        doc.table(["bin", "k", "occurrences", "occurrences weighted equally [95%]", "types (sum of weights)",
                   "types weighted equally [95%]"], typed_rows)
    if CONTEXT_FINDINGS["types"] in families:
        verdict, family = families[CONTEXT_FINDINGS["types"]]
        doc.para(f"{CONTEXT_FINDINGS['types']}: {verdict} (the rarest bin minus the most frequent, and the share of "
                 f"the k = 1 value kept at k = {RANK_DELAYS[-1]}, types weighted equally; one Holm family).")
        doc.table(["comparison", "estimate [95% interval]", "p", "Holm p"],
                  [[c.name, _interval(dataclasses.asdict(c)), c.p, c.p_holm] for c in family])
    pos_cells = sorted({n for n in names if "-" + FREQ_PREFIX in n and n.split("-", 1)[0] in pos_classes},
                       key=lambda n: (pos_classes.index(n.split("-", 1)[0]), freq_sort_key(n.split("-", 1)[1])))
    if pos_cells:
        doc.para("POS x frequency (tags in context, known words): every POS class split by the training-frequency "
                 "bin of its words, so that a frequency effect can be read with the class held fixed (function "
                 "words are few and frequent; nouns span every bin). Bias-corrected SV sums with their intervals; "
                 f"cells with at least {MIN_CELL_OCCURRENCES:,} occurrences at k = 1 enter the comparison below.")
        far = (10, RANK_DELAYS[-1])
        cell_rows = []
        for n in pos_cells:
            row = by_key.get((n, 1))
            if row is None:
                continue
            cell_rows.append([n.split("-", 1)[0], n.split("-", 1)[1], row["count"], _interval(row)]
                             + [_interval(by_key[(n, k)]) if (n, k) in by_key else None for k in far])
        doc.table(["class", "bin", "occurrences (k = 1)", "k = 1 [95%]"] + [f"k = {k} [95%]" for k in far], cell_rows)
    if CONTEXT_FINDINGS["within_pos"] in families:
        verdict, family = families[CONTEXT_FINDINGS["within_pos"]]
        pairs = ", ".join(f"{pos} {rare.split('-', 1)[1]} vs {frequent.split('-', 1)[1]}"
                          for pos, (rare, frequent) in pos_frequency_cells(reps, pos_classes).items())
        doc.para(f"{CONTEXT_FINDINGS['within_pos']}: {verdict} (within each POS class with two or more such cells, "
                 f"its rarest bin minus its most frequent: {pairs}; one Holm family).")
        doc.table(["comparison", "estimate [95% interval]", "p", "Holm p"],
                  [[c.name, _interval(dataclasses.asdict(c)), c.p, c.p_holm] for c in family])
    sizes = sorted({n.rsplit("-", 1)[0] for n in names if "-as-" in n})
    if sizes:
        doc.para("Class-size control: the larger class of a pair subsampled (seeded, by token) to the smaller one's "
                 "count, accumulated in the same pass; the difference smaller − larger at full size and at matched "
                 "size (the mean over the draws) shows how much of it is size.")
        size_rows = []
        for pair in sizes:
            large, small = pair.split("-as-")
            draws = sorted(n for n in names if n.rsplit("-", 1)[0] == pair)
            family = []
            for k in RANK_DELAYS:
                if not reps.has([(large, k), (small, k)] + [(d, k) for d in draws]):
                    continue
                full = verdicts.difference(reps, small, large, k)
                matched = verdicts.compare(reps, f"{small} − {large} at {small}'s count, k = {k}",
                                           lambda v, k=k: v[(small, k)] - np.mean([v[(d, k)] for d in draws]),
                                           [(small, k)] + [(d, k) for d in draws])
                family.append(matched)
                size_rows.append([pair, k, by_key[(large, k)]["count"], by_key[(small, k)]["count"],
                                  _interval(dataclasses.asdict(full)), _interval(dataclasses.asdict(matched))])
            verdicts.holm_family(family)
            out_rows += [[f"size control {pair}", c.name, c.estimate, c.se, c.lo, c.hi, c.p, c.p_holm, c.sign]
                         for c in family]
        doc.table(["pair", "k", "larger: occurrences", "smaller: occurrences", "smaller − larger [95%]",
                   "smaller − larger at matched size [95%]"], size_rows)
    return findings, out_rows


CONFIG_CANDIDATES = (os.path.join("configs", "gradients.config"), os.path.join("configs", "demo_grad.config"))
PLANTED_MEMORY = "planted_memory.json"
MISSING = {   # a part of the report -> the command that computes it
    "classifier": "sg-pos-classifier EMB DICT POSFILE DIR/classifier/pos --result DIR/classifier/pos.json "
                  "(sg-reproduce's classifier step)",
    "diff": "sg-diff-vector, then sg-relative-memory and sg-cos-subspace-diff-vector with --result "
            "DIR/diff/NAME_relative_memory.json and DIR/diff/NAME_cos_subspace.json (sg-reproduce's diff steps)",
    "intervals": "main.py with grad_blocks N, then sg-intervals GRAD_DIR D.npy --out DIR/intervals "
                 "(sg-reproduce does both)",
    "sigma": "sg-interpret-state --config GRAD.config --out DIR/sigma (sg-demo --measures does)",
    "txray": "sg-txray --config GRAD.config --separate NN,NNS --out DIR/txray (sg-demo --measures does)",
}


def read_config_values(directory):
    """(path, {key: raw value}) of the run's gradient config in DIR/configs/, or (None, {})."""
    for relative in CONFIG_CANDIDATES + tuple(sorted(glob.glob(os.path.join(directory, "configs", "*.config")))):
        path = relative if os.path.isabs(relative) else os.path.join(directory, relative)
        if os.path.isfile(path):
            from state_gradients.core import configuration

            return path, {key: value for _, key, value in configuration.read_config_lines(path)}
    return None, {}


def _provenance(doc, directory, progress, test, mapping):
    """The header: how the run was made and what it ran on."""
    from state_gradients.core import version

    prov = results.read_result_if(os.path.join(directory, results.PROVENANCE), "provenance") or {}
    commit = version.commit()      # one git call
    config_path, cfg = read_config_values(directory)
    ppl = lambda x: None if x is None else f"{x:.2f}"  # noqa: E731
    epochs = (test or {}).get("epochs_done") or prov.get("epochs_done")
    model = None
    if cfg:
        layers = int(cfg.get("num_layers", 1))
        transformer = not _stateful(cfg)
        width = (f"d_model {cfg.get('size', '?')}, {cfg.get('num_heads', '?')} heads" if transformer
                 else f"state H {cfg.get('size', '?')}")
        unit = "block" if transformer else "layer"
        model = (f"{cfg.get('basic_cell', '?')}, {layers} {unit}{'s' if layers > 1 else ''}, embedding E "
                 f"{cfg.get('embedding_size', cfg.get('size', '?'))}, {width}; gradient pass: "
                 f"num_steps {cfg.get('num_steps', '?')}, batch_size {cfg.get('batch_size', '?')}, "
                 f"{cfg.get('grad_interm', '?')} state")
    # a Transformer's test pass reads windows (eval_stride), a recurrent model's one token at a time
    test_how = ("windows that carry no state" if cfg and not _stateful(cfg)
                else "batch 1, one token at a time")
    coverage = mapping and mapping["coverage"]
    made_by = (f"state-gradients {prov['tool_version']}" + (f", commit {prov['commit']}" if prov.get("commit") else "")
               if prov else None)
    doc.heading("Provenance")
    doc.table(["item", "value"], [
        ["command", prov.get("command") or ("not recorded: this folder has no provenance.json (sg-reproduce and "
                                            "sg-demo write one)" if not prov else "called from Python")],
        ["date of the run (UTC)", prov.get("date")],
        ["made with", made_by],
        ["report built with", f"state-gradients {version.__version__}" + (f", commit {commit}" if commit else "")],
        ["config", config_path and os.path.relpath(config_path, directory)],
        ["model", model],
        ["epochs trained", epochs],
        ["validation perplexity (gradient pass: batch 1, its num_steps)", ppl(progress.get("perplexity"))],
        [f"test perplexity ({test_how})", ppl(test and test.get("test_perplexity"))],
        ["validation windows in the gradient pass", progress.get("batches")],
        ["time steps x delays", f"{len(progress.get('time_steps', []))} x {len(progress.get('delays', []))}"
         if progress else None],
        ["validation tokens with a POS tag", f"{coverage['percent']:.2f}%" if coverage else None],
    ])


def read_planted_memory(directory):
    """The demo's answer (sg-demo's planted_memory.json: remembered, fillers, delays, ratio, estimate, lo, hi,
    blocks), or None."""
    return results.read_result_if(os.path.join(directory, PLANTED_MEMORY), "sg-demo")


def planted_memory_text(planted):
    return (f"Planted memory (the demo language's verb agrees with the subject noun 1-8 words back): at delays "
            f"{planted['delays'][0]}..{planted['delays'][-1]} the {planted['remembered']}' SV sum of G·D is "
            f"{planted['ratio']:.2f}x that of the fillers ({' and '.join(planted['fillers'])}); bias-corrected "
            f"{planted['estimate']:.2f}x, 95% interval [{planted['lo']:.2f}, {planted['hi']:.2f}] over "
            f"{planted['blocks']} blocks of the validation text. Above 1: the state keeps the noun longer than the "
            "fillers. The interval is about the text; another training run is another sample of the model "
            "(sg-demo --seed N).")


def random_direction_baselines(directory, series, cos_columns):
    """{name: ({delay: relative memory of a random direction}, {delay: its subspace cosine})} where the pass's
    averages and D are in DIR, else {}.

    A uniformly random unit direction u in E dimensions has E‖(G·D) u‖² = ‖G·D‖_F² / E, so its relative
    memory is about sqrt(‖G·D‖_F² / E) / σ_max(G·D); its share in the span of the top x right singular
    vectors has E‖V_xᵀ u‖² = x / E, a cosine of about sqrt(x / E).
    """
    d_path = os.path.join(directory, "embedding_D_norm_grad.npy")
    if not os.path.isfile(d_path):
        return {}
    d_factor = np.load(d_path, allow_pickle=False).astype(np.float64)
    size = d_factor.shape[0]
    out = {}
    for name, values in series.items():
        rel, cos = {}, {}
        for k in values:
            grad_path = os.path.join(directory, "gradients", f"delay_{k}_avg.npy")
            if not os.path.isfile(grad_path):
                continue
            matrix = np.load(grad_path, allow_pickle=False).astype(np.float64) @ d_factor
            top = np.linalg.norm(matrix, 2)
            rel[k] = math.sqrt(np.sum(matrix ** 2) / size) / top if top > 0 else math.nan
            if name in cos_columns:
                cos[k] = math.sqrt(cos_columns[name] / size)
        out[name] = (rel, cos)
    return out


def _embed_png(doc, source, name, caption, table_name):
    """A figure another tool drew (a PNG in DIR), copied into the report as NAME, if it exists."""
    if os.path.isfile(source):
        with open(source, "rb") as handle:
            doc.figure(name, handle.read(), caption, table_name)


def _other_measures(doc, directory):
    """σ (sg-interpret-state) and TX-Ray (sg-txray) where the run has them (sg-demo --measures)."""
    sigma_csv, sigma_png = os.path.join(directory, "sigma.csv"), os.path.join(directory, "sigma.png")
    separation = os.path.join(directory, "txray_separation.csv")
    doc.heading("Other memory measures: sigma and TX-Ray")
    _, cfg = read_config_values(directory)
    if cfg and not _stateful(cfg):
        doc.para("Not available for a Transformer: σ and TX-Ray are defined on a state carried from window to "
                 "window, which a Transformer does not have (docs/transformer.md).")
        return
    if not (os.path.isfile(sigma_csv) or os.path.isfile(separation)):
        doc.para(f"Not computed. σ: {MISSING['sigma']}. TX-Ray: {MISSING['txray']}.")
        return
    if os.path.isfile(sigma_csv):
        with open(sigma_csv, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        doc.para("Perturbation memory (Guan et al. 2019): the noise scale σ that the embedding of the word k back "
                 "can take before the state changes much; a small σ means the state depends strongly on that "
                 "word. Mean and standard deviation over the sampled windows, per class of that word.")
        _embed_png(doc, sigma_png, "report_sigma.png",
                   "Learned σ against delay per class, mean ± sd over windows (log scale)", "sigma.csv")
        delays = sorted({int(r["delay"]) for r in rows})
        shown = [k for k in delays if k in (0, 1, 2, 4, 8, 11, 16, 24)] or delays[:6]
        by = {(r["class"], int(r["delay"])): r for r in rows}
        doc.table(["class"] + [f"k = {k}: σ (sd)" for k in shown],
                  [[cls] + [f"{float(by[cls, k]['mean_sigma']):.3g} ({float(by[cls, k]['std_sigma']):.2g})"
                            if (cls, k) in by else None for k in shown]
                   for cls in dict.fromkeys(r["class"] for r in rows)])
    else:
        doc.para(f"σ not computed: {MISSING['sigma']}.")
    if os.path.isfile(separation):
        doc.para("TX-Ray (Rethmeier et al. 2020): how much the identity of the most active unit at t tells about the "
                 "tag of the word k back, as a share of that tag's entropy, beside its chance level (model A: the "
                 "trained model, B: its initial weights, when compared).")
        _embed_png(doc, os.path.join(directory, "txray_separation.png"), "report_txray_separation.png",
                   "TX-Ray separation of tags of the word k back, with its chance level", "txray_separation.csv")
    else:
        doc.para(f"TX-Ray not computed: {MISSING['txray']}.")


def build_report(directory, title="State-gradient reproduction report"):
    """Write DIR/report.md, report.html, report_*.png and report_*.csv; returns {name: finding verdict}."""
    analysis.check_dir(directory, "reproduce folder")
    path = lambda *parts: os.path.join(directory, *parts)  # noqa: E731
    table = read_svs(path("svs.csv"))
    pos_classes, freq_classes = class_groups(table)
    overall = table[OVERALL]
    exp_fit, pow_fit = fit_decay(list(overall), list(overall.values()))
    doc = Document(title)

    # -- provenance, contents, then the findings (filled in at the end, judged from the sections below)
    progress = read_progress(directory)
    test = results.read_result_if(path("test_perplexity.json"), "main.py")
    mapping = results.read_result_if(path("pos_mapping.json"), "sg-build-pos-mapping")
    _provenance(doc, directory, progress, test, mapping)
    doc.contents()
    doc.slot("findings")

    # -- the papers' figure
    doc.heading("Sum of singular values of G·D against delay")
    doc.para("G is the average state gradient d c_t / d x_{t-k} over all time steps t and validation windows "
             "(per class: over the occurrences whose word at t-k is in the class), D the Cholesky factor of "
             "the embedding covariance (C = D Dᵀ), so that every embedding direction counts by its spread.")
    if pos_classes:
        doc.figure("report_svs_pos.png", plot_classes(table, pos_classes, "per POS class"),
                   "Sum of singular values of G·D per POS class of the word at t-k (log scale)", "svs.csv")
    if freq_classes:
        bins = read_text_if(path("classes", "freq", "freq_bins.csv"))
        doc.figure("report_svs_freq.png", plot_classes(table, freq_classes, "per training-frequency bin"),
                   "Sum of singular values of G·D per training-frequency bin of the word at t-k (log scale)",
                   "svs.csv")
        if bins:
            rows = list(csv.DictReader(io.StringIO(bins)))
            doc.para("Frequency bins (training counts; <eos> and <unk> have no bin):")
            doc.table(["class", "training count", "words", "training tokens", "validation tokens"],
                      [[r["class"], f"{r['lo']}-{r['hi']}" if r["hi"] else f"{r['lo']}+", int(r["words"]),
                        int(r["train_tokens"]), int(r["valid_tokens"])] for r in rows])
    others = [c for c in table if c != OVERALL and c not in pos_classes and c not in freq_classes]
    if others:
        doc.figure("report_svs_other.png", plot_classes(table, others, "per class"),
                   "Sum of singular values of G·D per class of the word at t-k (log scale)", "svs.csv")

    # -- fits
    doc.heading("Decay of the overall curve: exponential or power law")
    fits_csv = table_csv([[f.model, f.a, f.rate, f.rmse_log, f.delays[0], f.delays[-1]] for f in (exp_fit, pow_fit)],
                         ["model", "a", "tau_or_b", "rmse_log", "first_delay", "last_delay"])
    doc.para("Least squares on log scale over delays ≥ 1: exponential a·exp(−k/τ), power law a·k^(−b). "
             "The error is the root mean square of the residuals of ln(sum).")
    doc.table(["model", "a", "τ or b", "RMS error of ln", "delays"],
              [[f.model, f.a, f.rate, f.rmse_log, f"{f.delays[0]}-{f.delays[-1]}"] for f in (exp_fit, pow_fit)])
    better = "power law" if pow_fit.rmse_log < exp_fit.rmse_log else "exponential"
    doc.para(f"The {better} fits better.")
    doc.figure("report_fits.png", plot_fits(overall, exp_fit, pow_fit),
               "Overall sum of singular values with the two fits (log scale)", "report_fits.csv")

    # -- rankings
    doc.heading("Class ranking by sum of singular values")
    rank_rows = []
    rank_tables = {}
    for group, classes in (("POS", pos_classes), ("frequency", freq_classes)):
        if not classes:
            continue
        ranks = ranking(table, classes, RANK_DELAYS)
        rank_tables[group] = ranks
        if ranks:
            doc.para(f"{group} classes, highest first:")
            doc.table(["delay"] + [f"{i + 1}." for i in range(len(classes))],
                      [[k] + [f"{c} ({s:.3g})" for c, s in order] for k, order in ranks.items()])
        rank_rows += [[group, k, i + 1, c, s] for k, order in ranks.items() for i, (c, s) in enumerate(order)]
    ranking_csv = table_csv(rank_rows, ["group", "delay", "rank", "class", "sum"])

    # -- relative memory
    doc.heading("Relative memory of difference vectors")
    series, cosines, columns = {}, {}, {}
    for file in sorted(glob.glob(path("diff", "*_relative_memory.json"))):
        name = os.path.basename(file)[:-len("_relative_memory.json")]
        series[name] = read_delay_series(file, "sg-relative-memory", "relative_memory")
        cos_path = path("diff", f"{name}_cos_subspace.json")
        cos = read_delay_series(cos_path, "sg-cos-subspace-diff-vector", "cosine")
        if cos:
            cosines[name] = cos
            columns[name] = results.read_result(cos_path, "sg-cos-subspace-diff-vector")["columns"]
    baselines = random_direction_baselines(directory, series, columns)
    memory_rows = [[name, k, values[k], cosines.get(name, {}).get(k), baselines.get(name, ({}, {}))[0].get(k),
                    baselines.get(name, ({}, {}))[1].get(k)] for name, values in series.items() for k in sorted(values)]
    if series:
        doc.para("For a difference vector d between the mean embeddings of two tags (e.g. NNS − NN), "
                 "relative memory = ‖(G·D) d̂‖ / σ_max(G·D) with d̂ = Z d/‖Z d‖: how much of the largest "
                 "gain at delay k goes to that direction (1: fully). Subspace cosine: the share of d̂ in the "
                 "span of the top x right singular vectors of G·D (cos_subspace_diff_vector.py). The dotted "
                 "lines are a random direction's values (the control): relative memory about "
                 "sqrt(‖G·D‖_F² / E) / σ_max(G·D), cosine about sqrt(x / E); a difference vector above them is "
                 "remembered more than an arbitrary direction.")
        doc.figure("report_relative_memory.png", plot_relative_memory(series, cosines, baselines),
                   "Relative memory and subspace cosine of the difference vectors against delay, with a random "
                   "direction's (dotted)", "report_relative_memory.csv")
        doc.table(["difference", "k = 0", "1", "5", "10", "20", "40"],
                  [[name] + [values.get(k) for k in (0,) + RANK_DELAYS] for name, values in series.items()]
                  + [[f"{name}: random direction"] + [baselines[name][0].get(k) for k in (0,) + RANK_DELAYS]
                     for name in series if baselines.get(name, ({}, {}))[0]])
    else:
        doc.para(f"Not computed: {MISSING['diff']}.")

    # -- classifier
    doc.heading("POS classifier on the embeddings")
    classifier = results.read_result_if(path("classifier", "pos.json"), "sg-pos-classifier")
    if classifier:
        rows = [["examples (word, tag)", classifier["examples"], None, None, None],
                ["best cross-validation accuracy", classifier["best_cv_score"], None, None, None]]
        for part in ("valid", "test"):
            score, size = classifier["scores"].get(part), classifier[part]
            baseline = classifier["baselines"].get(part)
            interval = None
            if score is not None and size:
                low, high = uncertainty.wilson(round(score * size), size)
                interval = f"[{low:.4f}, {high:.4f}] of {size}"
            rows.append([f"{'validation' if part == 'valid' else 'test'} accuracy", score, interval,
                         f"{baseline['accuracy']:.4f} (always {baseline['tag']})" if baseline else None,
                         f"{1 / classifier['labels']:.4f} (1 / {classifier['labels']} tags)"
                         if classifier.get("labels") else None])
        doc.para("Accuracy of predicting a word's tag from its embedding, with the Wilson 95% interval of a binomial "
                 "proportion over the part's examples, beside its two controls: the accuracy of always predicting "
                 "the commonest training tag (majority) and of a uniform guess among the tags (chance).")
        doc.table(["quantity", "value", "95% interval", "majority baseline", "chance"], rows)
    else:
        doc.para(f"Not computed: {MISSING['classifier']}.")

    # -- intervals, controls and the findings judged with them
    reps, context = read_replicates(directory)
    interval_findings, comparison_rows = {}, []
    if reps is not None:
        interval_findings, comparison_rows = _interval_sections(doc, reps, pos_classes, freq_classes, overall)

    # -- classes in context
    if context is not None:
        more, rows = _context_section(doc, directory, context, reps, pos_classes)
        interval_findings.update(more)
        comparison_rows += rows

    if reps is None:
        doc.heading("Intervals and class-size controls")
        doc.para(f"Not computed: {MISSING['intervals']}. Without them the findings below are point estimates.")

    _other_measures(doc, directory)

    # -- findings, placed at the top
    lead = Document()
    lead.heading("Findings")
    planted = read_planted_memory(directory)
    if planted:
        lead.para(planted_memory_text(planted))
    point = {
        "singular values shrink with delay": finding_shrink(overall),
        "the decay is fast but not exponential": finding_decay(exp_fit, pow_fit),
        "nouns are remembered best among POS classes": finding_nouns(rank_tables.get("POS", {})),
        "infrequent words are remembered better and longer": finding_frequency(
            table, freq_classes, RANK_DELAYS),
    }
    findings = {}
    for name, (verdict, text) in point.items():
        if name in interval_findings:
            findings[name] = (interval_findings[name], verdict, text)
        else:
            findings[name] = (verdict, None, text) if interval_findings else (verdict, verdict, text)
    for name in CONTEXT_FINDINGS.values():
        if name in interval_findings:
            findings[name] = (interval_findings[name], None, "see 'Word classes in context'")
    panel_rows = []
    if interval_findings:
        lead.table(["finding", "verdict (intervals)", "verdict (point estimates)", "numbers"],
                  [[name, v, pv, text] for name, (v, pv, text) in findings.items()])
        panel = measure_panel(reps[1], None if context is None else context[1], pos_classes, freq_classes,
                              list(overall))
        if len(panel) and len({m for _, by, _ in panel for m in by}) > 1:
            panel_rows = _panel_section(lead, panel)
    else:
        lead.table(["finding", "verdict", "numbers"], [[name, v, text] for name, (v, _, text) in findings.items()])

    if interval_findings:
        lead.para("Rules with intervals (each finding is one family of comparisons, Holm-corrected; a comparison is "
                 f"'above' or 'below' when its adjusted p < {verdicts.ALPHA}): 'singular values shrink' holds when "
                 f"the overall sum falls between every two consecutive delays of {RANK_DELAYS}, does not hold when it "
                 "rises between any; 'fast but not exponential' holds when the power law's RMS log error is below "
                 "the exponential's, does not hold when above; 'nouns best' holds when nouns are above every other "
                 "POS class at every ranking delay, does not hold when some class is above nouns at every ranking "
                 "delay, partly when nouns are above all others at some delay; 'infrequent words better and longer' "
                 "holds when the rarest bin is above the most frequent at every ranking delay and keeps a larger "
                 "share of its delay-1 value at the last, does not hold when none is above and some below, partly "
                 "when some are above. Otherwise: inconclusive. The point-estimate verdicts (the rules after these, without "
                 "intervals) are shown beside them.")
    lead.para("Rules from point estimates: 'singular values shrink' holds when the overall sum falls at every delay "
             "step; 'fast but not exponential' holds when the power law fits ln(sum) better; 'nouns best' holds "
             f"when {REMEMBERED_POS} rank first among the POS classes at every delay of {RANK_DELAYS}, partly "
             "at some; 'infrequent words better and longer' holds when the rarest bin is above the most "
             "frequent at every ranking delay and keeps a larger share of its delay-1 value at the last "
             "ranking delay, partly when one of the two is true.")
    doc.fill("findings", lead)

    files = {
        "report_fits.csv": fits_csv.encode(),
        "report_ranking.csv": ranking_csv.encode(),
        "report_relative_memory.csv": table_csv(memory_rows, ["difference", "delay", "relative_memory",
                                                              "subspace_cosine", "random_relative_memory",
                                                              "random_subspace_cosine"]).encode(),
        "report_findings.csv": table_csv([[n, v, pv, t] for n, (v, pv, t) in findings.items()],
                                         ["finding", "verdict", "point_verdict", "numbers"]).encode(),
    }
    if panel_rows:
        files["report_panel.csv"] = table_csv(panel_rows, ["finding", "measure", "verdict", "effect",
                                                           "across_measures"]).encode()
    if comparison_rows:
        files["report_comparisons.csv"] = table_csv(comparison_rows, ["finding", "comparison", "estimate", "se", "lo",
                                                                      "hi", "p", "p_holm", "sign"]).encode()
    files.update(doc.figures)
    files["report.md"] = doc.markdown().encode()
    files["report.html"] = doc.html_page(title).encode()
    for name, data in files.items():
        analysis.atomic_write(path(name), lambda tmp, data=data: open(tmp, "wb").write(data))
    return {name: verdict for name, (verdict, _, _) in findings.items()}
