"""sg-compare: memory profiles of different models on the same corpus, side by side (e.g. an LSTM and a Transformer)."""
# Shape letters: R runs, K delays, C classes.
#
# Reads, in each RUN folder (sg-reproduce's layout, or its committed part under docs/results/):
#   intervals/intervals.csv   sg-intervals: bias-corrected SV sums with intervals, noise floors,
#                             size controls (required)
#   intervals/replicates.csv  sg-intervals' leave-one-block-out values (the ratios' intervals)
#   svs.csv                   the point SV sums per class and delay (required: the fits and the
#                             class groups, as the run's own report)
# and, per run, optionally a MODEL folder (weights.npz + dict) and the corpus (--data): parameter
# counts and perplexities on windows that carry no state, the same protocol for every model
# (run_epoch.window_perplexity: a recurrent model's state is reset to zeros at every window).
# Writes into OUT (the schema other tools read):
#   compare_models.csv    label, cell, layers, embedding, size, parameters, parameters_core
#                         (without embedding, positions and output layer), valid_ppl_windows,
#                         test_ppl_windows, num_steps, stride (empty where no model was given)
#   compare_svs.csv       label, class, delay, count, estimate, lo, hi, noise_floor, normalised,
#                         normalised_lo, normalised_hi (the ratio of the class's estimate at the
#                         delay to its estimate at delay 0, with the interval of that ratio: the
#                         jackknife over the ratio's own replicates, so the delay-0 estimate's
#                         uncertainty is in it), relative_k1, relative_k1_lo, relative_k1_hi (the
#                         same relative to delay 1); NaN where the run has no replicates.csv
#   compare_fits.csv      label, model (exponential | power law), a, tau_or_b, rmse_log, first_delay,
#                         last_delay (fitted to svs.csv's overall curve as the run's report does)
#   compare_ranking.csv   label, group (POS | frequency), delay, rank, class, estimate, lo, hi
#   compare_frequency.csv label, delay, class, role (rare | frequent | frequent, size of rare), count,
#                         estimate, lo, hi, noise_floor (classes in context, where the run has them)
#   compare_panel.csv     label, measure (verdicts.MEASURES), delay, value, lo, hi, relative_k0,
#                         relative_k0_lo, relative_k0_hi, relative_k1, relative_k1_lo,
#                         relative_k1_hi (the overall class under every measure the run has, with
#                         its interval and its ratios to delays 0 and 1 with the ratios' intervals)
#   compare_behaviour.csv label, measure (perturbation.MEASURES), delay, count, value, lo, hi: the
#                         overall class of each run's sg-perturb folder (RUN/perturb/, where it has one)
#   compare.md, compare_overall.png, compare_pos.png
import csv
import io
import math
import os

import numpy as np

from state_gradients.classes import token_classes
from state_gradients.core import fileio
from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL
from state_gradients.files.run_folder import RunFolder
from state_gradients.measures import analysis, intervals, perturbation, verdicts
from state_gradients.plots import figure, palette
from state_gradients.report import findings

MODELS_CSV, SVS_CSV, FITS_CSV, RANKING_CSV, FREQUENCY_CSV = (
    "compare_models.csv", "compare_svs.csv", "compare_fits.csv", "compare_ranking.csv", "compare_frequency.csv")
SUMMARY_MD, OVERALL_PNG, POS_PNG = "compare.md", "compare_overall.png", "compare_pos.png"
RANK_DELAYS = findings.RANK_DELAYS
EMBEDDING_ARRAYS = ("embedding", "positions", "softmax_w", "softmax_b")
RARE, FREQUENT = "freq_1-9", "freq_10000+"
SIZE_CONTROL = f"{FREQUENT}-as-{RARE}-"   # sg-token-classes' frequent tokens subsampled to the rare class's count
RATIO_COLUMNS = ["normalised", "normalised_lo", "normalised_hi", "relative_k1", "relative_k1_lo", "relative_k1_hi"]
PANEL_CSV = "compare_panel.csv"
BEHAVIOUR_CSV = "compare_behaviour.csv"
BEHAVIOUR_COLUMNS = ["label", "measure", "delay", "count", "value", "lo", "hi"]
PANEL_COLUMNS = ["label", "measure", "delay", "value", "lo", "hi", "relative_k0", "relative_k0_lo", "relative_k0_hi",
                 "relative_k1", "relative_k1_lo", "relative_k1_hi"]


def load_run(directory):
    """(interval rows {class: {delay: row}}, svs table {class: {delay: sum}}, verdicts.Replicates or None) of a RUN
    folder; each row also holds its ratios to delays 0 and 1 with their intervals (ratio_interval)."""
    analysis.check_dir(directory, "run folder")
    path = os.path.join(directory, "intervals", intervals.INTERVALS_CSV)
    if not os.path.isfile(path):
        raise UserError(f"{directory}: no intervals/{intervals.INTERVALS_CSV} (sg-reproduce with blocks writes it)")
    flat = intervals.read_csv(path, intervals.INTERVAL_COLUMNS)
    rows = {}
    for r in flat:
        rows.setdefault(r["class"], {})[r["delay"]] = r
    reps_path = os.path.join(directory, "intervals", intervals.REPLICATES_CSV)
    reps = verdicts.Replicates(flat, intervals.read_csv(reps_path, intervals.REPLICATE_COLUMNS)) \
        if os.path.isfile(reps_path) else None
    for cls, by_delay in rows.items():
        for k, r in by_delay.items():
            for base, name in ((0, "normalised"), (1, "relative_k1")):
                r.update(ratio_interval(reps, cls, k, base, name))
    return rows, RunFolder(directory).svs(), reps


def check_same_positions(runs, loaded):
    """UserError unless every run counts the same occurrences of all words at every delay: the same validation
    windows and the same target positions (sg-reproduce --valid-windows, --same-targets), so that the runs'
    statistics are over the same text."""
    first = {k: r["count"] for k, r in loaded[0][0].get(OVERALL, {}).items()}
    for directory, (rows, _, _) in zip(runs[1:], loaded[1:]):
        counts = {k: r["count"] for k, r in rows.get(OVERALL, {}).items()}
        for k in sorted(set(first) & set(counts)):
            if counts[k] != first[k]:
                raise UserError(f"{directory} counts {counts[k]} words at delay {k}, {runs[0]} {first[k]}: the runs "
                                "cover other validation windows or target positions (--valid-windows, "
                                "--same-targets); compare runs over the same text")


def panel_rows(label, reps):
    """compare_panel.csv rows of one run: the overall value of every measure of verdicts.MEASURES at every delay
    where the run has it, with its interval, and its ratios to delays 0 and 1 with the ratios' intervals."""
    out = []
    if reps is None:
        return out
    for measure in verdicts.MEASURES:
        m = reps.for_measure(measure)
        for k in sorted(k for cls, k in m.value if cls == OVERALL):
            if not m.has([(OVERALL, k)]):
                continue
            own = m.statistic(lambda v, k=k: v[(OVERALL, k)], [(OVERALL, k)])
            row = {"label": label, "measure": measure, "delay": k, "value": own["estimate"], "lo": own["lo"],
                   "hi": own["hi"]}
            for base, name in ((0, "relative_k0"), (1, "relative_k1")):
                row.update(ratio_interval(m, OVERALL, k, base, name))
            out.append(row)
    return out


def behaviour_rows(label, directory):
    """compare_behaviour.csv rows of one run: the overall class of its sg-perturb folder ([] without one)."""
    found = perturbation.read_outputs(RunFolder(directory).perturb)
    if found is None:
        return []
    return [{"label": label, **{key: r[key] for key in BEHAVIOUR_COLUMNS[1:]}} for r in found[0]
            if r["class"] == OVERALL]


def behaviour_markdown(labels, rows):
    """The behavioural measures of the runs that have them, side by side per measure and delay."""
    if not rows:
        return ""
    by = {(r["label"], r["measure"], r["delay"]): r for r in rows}
    have = [lab for lab in labels if any(r["label"] == lab for r in rows)]
    lines = ["", "## Behavioural memory (sg-perturb)", "",
             "What each model does when its past is perturbed (docs/measures.md), over all words: a replaced word's "
             "effect on the state (per unit ‖D⁻¹Δx‖) and on the loss at delay k, and the loss increase when the "
             "context is cut to d words, shuffled or thinned beyond d; 95% intervals over the text's blocks.", ""]
    for measure, what in perturbation.MEASURES.items():
        delays = sorted({k for lab, m, k in by if m == measure})
        if not delays:
            continue
        lines += [f"{what}:", "", "| delay | " + " | ".join(have) + " |", "|---:|" + "---:|" * len(have)]
        lines += ["| " + " | ".join([str(k)] + [_interval_text(by[(lab, measure, k)], "value") if (lab, measure, k)
                                                 in by else "n/a" for lab in have]) + " |" for k in delays]
        lines.append("")
    return "\n".join(lines)


def ratio_interval(reps, cls, k, base, name):
    """{name, name_lo, name_hi}: the class's estimate at delay k over its estimate at delay `base`, with the
    jackknife interval of the ratio (all NaN without replicates or where the base is not positive; the
    interval alone NaN for a class without a replicate at one of the two delays: all its occurrences in one
    block)."""
    nan = {name: math.nan, f"{name}_lo": math.nan, f"{name}_hi": math.nan}
    keys = [(cls, k), (cls, base)]
    if reps is None or not all(math.isfinite(reps.value.get(key, math.nan)) for key in keys) \
            or not reps.value[(cls, base)] > 0:
        return nan
    if not reps.has(keys):
        return {**nan, name: reps.value[(cls, k)] / reps.value[(cls, base)]}
    out = reps.statistic(lambda v: v[(cls, k)] / v[(cls, base)], keys)
    return {name: out["estimate"], f"{name}_lo": out["lo"], f"{name}_hi": out["hi"]}


def parameter_counts(arrays):
    """(all parameters, those outside the embedding, positions and output layer) of weights.npz arrays."""
    weights = {n: a for n, a in arrays.items() if np.asarray(a).dtype.kind == "f" and np.asarray(a).ndim}
    total = sum(int(a.size) for a in weights.values())
    return total, total - sum(int(weights[n].size) for n in EMBEDDING_ARRAYS if n in weights)


def model_row(label, model_dir, data_dir, num_steps, stride):
    """One compare_models.csv row: shape, parameter counts, windowed perplexities (valid and test of data_dir)."""
    from state_gradients.core import lm_data
    from state_gradients.files.saved_model import SavedModel
    from state_gradients.training import run_epoch

    saved = SavedModel(model_dir)
    arrays = saved.read_weights()
    total, core = parameter_counts(arrays)
    model = saved.load()
    row = {"label": label, "cell": model.cell_type, "layers": model.num_layers, "embedding": model.embedding_size,
           "size": model.size, "parameters": total, "parameters_core": core, "num_steps": num_steps, "stride": stride}
    for split in ("valid", "test"):
        path = os.path.join(data_dir, f"{split}.txt")
        if not os.path.isfile(path):
            raise UserError(f"--data {data_dir}: no {split}.txt")
        ids = lm_data.words_to_ids(lm_data.read_words(path), saved.word_to_id)
        row[f"{split}_ppl_windows"] = run_epoch.window_perplexity(model, ids, num_steps, stride, what=f"{label} {split}")
    return row


def svs_rows(label, rows):
    out = []
    for cls, by_delay in rows.items():
        for k, r in sorted(by_delay.items()):
            out.append({"label": label, "class": cls, "delay": k, "count": r["count"], "estimate": r["estimate"],
                        "lo": r["lo"], "hi": r["hi"], "noise_floor": r["noise_floor"],
                        **{key: r[key] for key in RATIO_COLUMNS}})
    return out


def fit_rows(label, table):
    overall = table[OVERALL]
    delays = sorted(overall)
    out = []
    for fit in findings.fit_decay(delays, [overall[k] for k in delays]):
        out.append({"label": label, "model": fit.model, "a": fit.a, "tau_or_b": fit.rate, "rmse_log": fit.rmse_log,
                    "first_delay": fit.delays[0], "last_delay": fit.delays[-1]})
    return out


def ranking_rows(label, rows, table):
    pos, freq = findings.class_groups(table)
    out = []
    for group, classes in (("POS", pos), ("frequency", freq)):
        for k in RANK_DELAYS:
            present = [c for c in classes if k in rows.get(c, {}) and math.isfinite(rows[c][k]["estimate"])]
            ranked = sorted(present, key=lambda c: -rows[c][k]["estimate"])
            out += [{"label": label, "group": group, "delay": k, "rank": i + 1, "class": c,
                     "estimate": rows[c][k]["estimate"], "lo": rows[c][k]["lo"], "hi": rows[c][k]["hi"]}
                    for i, c in enumerate(ranked)]
    return out


def frequency_rows(label, rows):
    """The frequency effect and its size control, from the classes in context (ctx_freq_1-9, ctx_freq_10000+ and
    the frequent class subsampled to the rare one's count); [] when the run has no classes in context."""
    prefix = token_classes.CONTEXT_PREFIX
    roles = [(prefix + RARE, "rare"), (prefix + FREQUENT, "frequent")]
    roles += [(c, "frequent, size of rare") for c in sorted(rows) if c.startswith(prefix + SIZE_CONTROL)]
    out = []
    for cls, role in roles:
        for k in RANK_DELAYS:
            r = rows.get(cls, {}).get(k)
            if r is not None:
                out.append({"label": label, "delay": k, "class": cls, "role": role, "count": r["count"],
                            "estimate": r["estimate"], "lo": r["lo"], "hi": r["hi"], "noise_floor": r["noise_floor"]})
    return out


def _csv_text(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else row[c]) for c in columns})
    return buffer.getvalue()


def _figure(rows, cols, width=6.0, height=4.2):
    fig = figure.new_figure(width * cols, height * rows)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _band(ax, series, key, color, label, linestyle="-"):
    k = [r["delay"] for r in series]
    mid = "normalised" if key == "normalised" else "estimate"
    lo, hi = ("normalised_lo", "normalised_hi") if key == "normalised" else ("lo", "hi")
    ax.plot(k, [r[mid] for r in series], color=color, linestyle=linestyle, label=label, marker=".", markersize=3)
    ax.fill_between(k, [max(r[lo], 1e-300) for r in series], [r[hi] for r in series], color=color, alpha=0.15,
                    linewidth=0)


def _axes(ax, title, ylabel):
    # the axis follows the estimates: an interval reaching 0 (a small class at long delays) is cut at the bottom
    # instead of stretching the log axis over decades that hold no estimate
    values = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    ax.set_yscale("log")
    if values:
        ax.set_ylim(min(values) / 2, max(values) * 2)
    ax.set_xlabel("delay k")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)


RUN_STYLES = ("-", "--", ":", "-.")
ABSOLUTE, NORMALISED = "sum of singular values of G·D", "relative to delay 0"


def plot_overall(svs, labels):
    """PNG: the overall SV sum of every run with its interval, absolute and normalised to delay 0; noise floors dotted."""
    fig, axes = _figure(1, 2)
    colors = palette.OTHERS
    for i, label in enumerate(labels):
        series = [r for r in svs if r["label"] == label and r["class"] == OVERALL]
        for ax, key in zip(axes[0], ("estimate", "normalised")):
            _band(ax, series, key, colors[i % len(colors)], label)
        axes[0][0].plot([r["delay"] for r in series], [r["noise_floor"] for r in series], color=colors[i % len(colors)],
                        linestyle=":", linewidth=1, label=f"{label}: noise floor")
    _axes(axes[0][0], "overall: bias-corrected SV sum, jackknife 95% interval", ABSOLUTE)
    _axes(axes[0][1], "overall, normalised to delay 0", NORMALISED)
    fig.tight_layout()
    return _png(fig)


def plot_pos(svs, labels, classes):
    """PNG: per POS class (one colour per class, the shared palette), one row per run, absolute and normalised."""
    fig, axes = _figure(len(labels), 2)
    for row, label in enumerate(labels):
        for cls in [OVERALL] + classes:
            series = [r for r in svs if r["label"] == label and r["class"] == cls]
            if series:
                for ax, key in zip(axes[row], ("estimate", "normalised")):
                    _band(ax, series, key, palette.color(cls), cls)
        _axes(axes[row][0], f"{label}: per POS class", ABSOLUTE)
        _axes(axes[row][1], f"{label}: per POS class, normalised to delay 0", NORMALISED)
    fig.tight_layout()
    return _png(fig)


def _png(fig):
    return figure.png_bytes(fig, dpi=100, stamp=False)


def _g(x, digits=4):
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}g}"


def _interval_text(r, key="estimate", digits=4):
    """'estimate [lo, hi]' of a row (numbers, or the strings of a CSV row), or of its key_lo / key_hi columns (e.g. key
    'normalised')."""
    lo, hi = ("lo", "hi") if key in ("estimate", "value") else (f"{key}_lo", f"{key}_hi")
    value, low, high = (_g(float(r[name]), digits) for name in (key, lo, hi))
    return f"{value} [{low}, {high}]"


def markdown(labels, models, svs, fits, ranking, frequency):
    """compare.md: the tables of the CSV files, with the figures."""
    lines = [f"# {' vs '.join(labels)}: memory profiles on the same corpus", ""]
    if models:
        lines += ["## Models", "", "| run | cell | layers | E | H / D | parameters | without embedding, positions "
                  "and output layer | valid perplexity | test perplexity |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in models:
            lines.append(f"| {m['label']} | {m['cell']} | {m['layers']} | {m['embedding']} | {m['size']} | "
                         f"{m['parameters']:,} | {m['parameters_core']:,} | {m['valid_ppl_windows']:.2f} | "
                         f"{m['test_ppl_windows']:.2f} |")
        lines += ["", f"Perplexities on windows of {models[0]['num_steps']} tokens that carry no state, every "
                  f"{models[0]['stride']} tokens of one stream, every token scored once (a recurrent model's state "
                  "is reset to zeros at every window), for every model alike.", ""]
    lines += ["## Sum of singular values against delay", "", f"![overall]({OVERALL_PNG})", "",
              f"![per POS class]({POS_PNG})", ""]
    header = "| delay | " + " | ".join(f"{lab} | {lab}, relative to k = 0" for lab in labels) + " |"
    lines += ["Overall, bias-corrected estimate [jackknife 95% interval]:", "", header,
              "|---:|" + "---:|" * (2 * len(labels))]
    by = {(r["label"], r["class"], r["delay"]): r for r in svs}
    for k in (0,) + RANK_DELAYS + (49,):
        cells = []
        for lab in labels:
            r = by.get((lab, OVERALL, k))
            cells += [_interval_text(r), _interval_text(r, "normalised")] if r else ["", ""]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", "## Fits of the overall curve (delays 1 onwards, least squares on log)", "",
              "| run | model | a | tau (exponential) or b (power law) | RMS error of ln |", "|---|---|---:|---:|---:|"]
    lines += [f"| {f['label']} | {f['model']} | {_g(f['a'])} | {_g(f['tau_or_b'])} | {_g(f['rmse_log'])} |" for f in fits]
    lines += ["", "## Class rankings (bias-corrected estimates)", ""]
    for group in ("POS", "frequency"):
        lines += [f"{group}, classes from best to least remembered:", "", "| delay | " + " | ".join(labels) + " |",
                  "|---:|" + "---|" * len(labels)]
        for k in RANK_DELAYS:
            cells = [", ".join(r["class"] for r in ranking if r["label"] == lab and r["group"] == group and r["delay"] == k)
                     for lab in labels]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    if frequency:
        lines += ["## The frequency effect and its size control (tokens in context)", "",
                  f"`{token_classes.CONTEXT_PREFIX}{RARE}` (rare words) against `{token_classes.CONTEXT_PREFIX}{FREQUENT}` "
                  "and against the frequent tokens subsampled to the rare class's count (what a class of that size "
                  "gives without being rare): estimate [95% interval] (noise floor).", "",
                  "| run | delay | rare | frequent | frequent, size of rare |", "|---|---:|---|---|---|"]
        for lab in labels:
            for k in RANK_DELAYS:
                cell = {}
                for r in frequency:
                    if r["label"] == lab and r["delay"] == k:
                        cell.setdefault(r["role"], []).append(f"{_interval_text(r)} ({_g(r['noise_floor'], 3)})")
                lines.append(f"| {lab} | {k} | " + " | ".join("; ".join(cell.get(role, []))
                                                            for role in ("rare", "frequent", "frequent, size of rare")) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def compare(runs, labels, out, *, models=None, data=None, num_steps=200, stride=None, models_csv=None):
    """Write OUT's files (see the module comment) for RUN folders `runs` named `labels`; returns {name: path}.

    models: MODEL folders, one per run (or None); data: the corpus folder with valid.txt and test.txt,
    needed with models; models_csv: instead of models, an earlier compare_models.csv whose rows (one
    per label) are kept.
    """
    if len(runs) < 2:
        raise UserError("sg-compare needs at least two RUN folders")
    if len(labels) != len(runs) or len(set(labels)) != len(labels):
        raise UserError(f"--labels: {len(runs)} distinct names needed, got {','.join(labels)}")
    if models is not None and len(models) != len(runs):
        raise UserError(f"--models: one folder per run ({len(runs)}), got {len(models)}")
    if models is not None and data is None:
        raise UserError("--models needs --data (the corpus folder with valid.txt and test.txt)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder (it is created)")
    if models is not None and models_csv is not None:
        raise UserError("give --models or --models-csv, not both")
    loaded = [load_run(d) for d in runs]
    check_same_positions(runs, loaded)
    panel = [row for label, run in zip(labels, loaded) for row in panel_rows(label, run[2])]
    model_rows = [model_row(lab, m, data, num_steps, stride or num_steps) for lab, m in zip(labels, models)] \
        if models else []
    if models_csv is not None:
        if not os.path.isfile(models_csv):
            raise UserError(f"--models-csv {models_csv} not found")
        kept = {r["label"]: r for r in _read(models_csv)}
        if set(kept) != set(labels):
            raise UserError(f"--models-csv {models_csv} has the runs {', '.join(sorted(kept))}, not "
                            f"{', '.join(sorted(labels))}")
        try:
            model_rows = [{key: (value if key in ("label", "cell") else float(value) if key.endswith("_ppl_windows")
                                 else int(value)) for key, value in kept[lab].items()} for lab in labels]
        except ValueError:
            raise UserError(f"--models-csv {models_csv}: a value is not a number (expected sg-compare's "
                            f"{MODELS_CSV})") from None
    svs, fits, ranking, frequency = [], [], [], []
    for label, (rows, table, _) in zip(labels, loaded):
        svs += svs_rows(label, rows)
        fits += fit_rows(label, table)
        ranking += ranking_rows(label, rows, table)
        frequency += frequency_rows(label, rows)
    pos = findings.class_groups(loaded[0][1])[0]
    behaviour = [row for label, run in zip(labels, runs) for row in behaviour_rows(label, run)]
    os.makedirs(out, exist_ok=True)
    files = {
        MODELS_CSV: _csv_text(model_rows, ["label", "cell", "layers", "embedding", "size", "parameters",
                                           "parameters_core", "valid_ppl_windows", "test_ppl_windows", "num_steps",
                                           "stride"]),
        SVS_CSV: _csv_text(svs, ["label", "class", "delay", "count", "estimate", "lo", "hi", "noise_floor"]
                           + RATIO_COLUMNS),
        FITS_CSV: _csv_text(fits, ["label", "model", "a", "tau_or_b", "rmse_log", "first_delay", "last_delay"]),
        RANKING_CSV: _csv_text(ranking, ["label", "group", "delay", "rank", "class", "estimate", "lo", "hi"]),
        FREQUENCY_CSV: _csv_text(frequency, ["label", "delay", "class", "role", "count", "estimate", "lo", "hi",
                                             "noise_floor"]),
        PANEL_CSV: _csv_text(panel, PANEL_COLUMNS),
        BEHAVIOUR_CSV: _csv_text(behaviour, BEHAVIOUR_COLUMNS),
    }
    paths = {name: os.path.join(out, name) for name in list(files) + [SUMMARY_MD, OVERALL_PNG, POS_PNG]}
    for name, text in files.items():
        fileio.atomic_write_text(paths[name], text)
    body = (markdown(labels, model_rows, svs, fits, ranking, frequency) + panel_markdown(labels, panel)
            + behaviour_markdown(labels, behaviour))
    title, rest = body.split("\n", 1)
    fileio.atomic_write_text(paths[SUMMARY_MD], f"{title}\n\n## At a glance\n\n{headline_table(out)}{rest}")
    fileio.write_bytes(paths[OVERALL_PNG], plot_overall(svs, labels))
    fileio.write_bytes(paths[POS_PNG], plot_pos(svs, labels, pos))
    return paths


def _read(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def panel_markdown(labels, panel):
    """The panel section of compare.md: the overall memory of each run under every measure, relative to k = 0."""
    if not panel:
        return ""
    by = {(r["label"], r["measure"], r["delay"]): r for r in panel}
    delays = sorted({r["delay"] for r in panel if r["measure"] != "sv_sum"} or {r["delay"] for r in panel})
    lines = ["", "## Overall memory under each measure", "",
             "The same text under the panel of measures (docs/measures.md): each relative to its own value at "
             "k = 0, with the interval of that ratio (the jackknife over the ratio's replicates), and the "
             "coherence ratio as it is. Measures that need the blocks' grams or the occurrence measures appear at "
             "the delays where the run has them (passes before 2026-12-07 kept grams at 0, 1, 2, 5, 10, 20, 40 "
             "and no occurrence measures).", ""]
    for measure, reader in verdicts.MEASURES.items():
        if not any(r["measure"] == measure for r in panel):
            continue
        # a share in [0, 1] (the coherence ratio) is shown as it is
        key, how = ("value", "") if reader.share else ("relative_k0", ", relative to k = 0")
        lines += [f"{reader.what}{how}:", "", "| delay | " + " | ".join(labels) + " |", "|---:|" + "---:|" * len(labels)]
        for k in delays:
            cells = [by.get((lab, measure, k)) for lab in labels]
            if not any(cells):
                continue
            lines.append(f"| {k} | " + " | ".join(_interval_text(r, key) if r else "" for r in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def headline_table(directory):
    """The side-by-side table that the README and the results page quote, rebuilt from a comparison folder's CSVs
    (so a test can check that the quoted table is the committed files')."""
    svs = {(r["label"], r["class"], int(r["delay"])): r for r in _read(os.path.join(directory, SVS_CSV))}
    labels = list(dict.fromkeys(r["label"] for r in _read(os.path.join(directory, FITS_CSV))))
    fits = {(r["label"], r["model"]): r for r in _read(os.path.join(directory, FITS_CSV))}
    ranking = _read(os.path.join(directory, RANKING_CSV))
    models = {r["label"]: r for r in _read(os.path.join(directory, MODELS_CSV))}
    freq = _read(os.path.join(directory, FREQUENCY_CSV))

    def f(x, digits=3):
        return _g(float(x), digits)

    def cell(row, key="normalised"):
        return _interval_text(row, key, digits=3)

    rows = []
    if models:
        rows.append(["parameters (without embedding, positions and output layer)"] +
                    [f"{int(models[lab]['parameters']):,} ({int(models[lab]['parameters_core']):,})" for lab in labels])
        rows.append(["perplexity on 200-token windows without carried state, valid / test"] +
                    [f"{float(models[lab]['valid_ppl_windows']):.1f} / {float(models[lab]['test_ppl_windows']):.1f}"
                     for lab in labels])
    rows.append(["overall SV sum at k = 0"] + [cell(svs[(lab, OVERALL, 0)], "estimate") for lab in labels])
    for k in (1, 10, 40):
        rows.append([f"relative to k = 0, at k = {k}"] + [cell(svs[(lab, OVERALL, k)]) for lab in labels])
    for k in (10, 40):
        rows.append([f"relative to k = 1, at k = {k}"] + [cell(svs[(lab, OVERALL, k)], "relative_k1")
                                                         for lab in labels])
    panel_path = os.path.join(directory, PANEL_CSV)
    panel = {(r["label"], r["measure"], int(r["delay"])): r for r in _read(panel_path)} \
        if os.path.isfile(panel_path) else {}
    for k in (1, 10, 40):
        if all((lab, "magnitude", k) in panel for lab in labels):
            rows.append([f"RMS magnitude (E‖G·D‖²)^½ relative to k = 0, at k = {k}"]
                        + [cell(panel[(lab, "magnitude", k)], "relative_k0") for lab in labels])
    rows.append(["power law a·k^(−b): b (RMS error of ln)"] +
                [f"{f(fits[(lab, 'power law')]['tau_or_b'])} ({f(fits[(lab, 'power law')]['rmse_log'], 2)})"
                 for lab in labels])
    rows.append(["exponential a·exp(−k/τ): τ (RMS error of ln)"] +
                [f"{f(fits[(lab, 'exponential')]['tau_or_b'])} ({f(fits[(lab, 'exponential')]['rmse_log'], 2)})"
                 for lab in labels])
    for k in (1, 40):
        rows.append([f"POS classes at k = {k}, best first (top 3)"] +
                    [", ".join(r["class"] for r in ranking if r["label"] == lab and r["group"] == "POS"
                               and int(r["delay"]) == k and int(r["rank"]) <= 3) for lab in labels])
    for k in (1, 10):
        by = {}
        for r in (r for r in freq if int(r["delay"]) == k):
            by.setdefault((r["label"], r["role"]), r)          # the first size control of each run
        if all((lab, role) in by for lab in labels for role in ("rare", "frequent", "frequent, size of rare")):
            rows.append([f"in context at k = {k}, SV sums: rare words (freq 1-9) / frequent (10000+) / frequent "
                         "subsampled to the rare count (size control)"] +
                        [" / ".join(f(by[(lab, role)]["estimate"]) for role in ("rare", "frequent",
                                                                                "frequent, size of rare"))
                         for lab in labels])
    lines = ["| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
