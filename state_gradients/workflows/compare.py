"""sg-compare: memory profiles of different models on the same corpus, side by side (e.g. an LSTM and a Transformer)."""
# Shape letters: R runs, K delays, C classes.
#
# A side is one model (one RUN folder) or the training seeds of one recipe (several RUN folders,
# pooled as sg-seeds pools them: the seeds' average, the seeds a random effect). Every run must be
# a pass with the same number of windows, target positions, delays, blocks and classes
# (grad_progress.json, when every folder has it) and the same occurrences of every class in every
# block (always): anything else is refused, naming the folders.
# Reads, in each RUN folder (sg-reproduce's layout, or its committed part under docs/results/):
#   intervals/intervals.csv   sg-intervals: bias-corrected SV sums with intervals, noise floors,
#                             size controls (required)
#   intervals/replicates.csv  sg-intervals' leave-one-block-out values (the ratios' intervals)
#   svs.csv                   the point SV sums per class and delay (required: the fits and the
#                             class groups, as the run's own report)
# and, per run, optionally a MODEL folder (weights.npz + dict) and the corpus (--data): parameter
# counts and perplexities on windows that carry no state, the same protocol for every model
# (run_epoch.window_perplexity: a recurrent model's state is reset to zeros at every window).
# Writes into OUT (the schema other tools read; a side of seeds has the seeds' average and its interval in
# every per-label table):
#   compare_models.csv    label, run (the folder's name: one row per model), cell, layers, embedding, size,
#                         parameters, parameters_core
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
#   compare_ranking.csv   label, group (POS | frequency), delay, rank, class, estimate, lo, hi, above_next
#                         (1: separated from the next class by a Holm-adjusted test, 0: not; empty for
#                         the last or without replicates), p_holm_next (ranking_rows)
#   compare_frequency.csv label, delay, class, role (rare | frequent | frequent, size of rare), count,
#                         estimate, lo, hi, noise_floor (classes in context, where the run has them)
#   compare_panel.csv     label, measure (verdicts.MEASURES), delay, value, lo, hi, relative_k0,
#                         relative_k0_lo, relative_k0_hi, relative_k1, relative_k1_lo,
#                         relative_k1_hi (the overall class under every measure the run has, with
#                         its interval and its ratios to delays 0 and 1 with the ratios' intervals)
#   compare_behaviour.csv label, measure (perturbation.MEASURES), delay, count, value, lo, hi: the
#                         overall class of each run's sg-perturb folder (RUN/perturb/, where it has one)
#   compare_contrasts.csv reference (the first side), label, measure, base (k0 | k1: relative to that
#                         delay; empty: as it is; "minus dN": minus its value at context N), delay, scale
#                         (ratio label / reference | difference label - reference), estimate, lo, hi, p,
#                         p_holm (over the delays of one label, measure and base), sign (+1 higher, -1
#                         lower, 0 undecided), df, text_se, between_reference, between_label (the
#                         between-seed variances), value_reference, value_label (contrast_rows)
#   compare_statements.csv reference, label, base (k0 | k1), delay, statement (verdicts.across_models
#                         over the gradient measures), measures (each one's sign in words), behaviour
#                         (the replaced word's loss change at that delay)
#   compare.md, compare_overall.png, compare_pos.png
import csv
import dataclasses
import io
import math
import os

import numpy as np

from state_gradients.classes import token_classes
from state_gradients.core import fileio
from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL
from state_gradients.files.run_folder import RunFolder, check_same_pass
from state_gradients.measures import analysis, intervals, perturbation, uncertainty, verdicts
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
CONTRASTS_CSV, STATEMENTS_CSV = "compare_contrasts.csv", "compare_statements.csv"
CONTRAST_COLUMNS = ["reference", "label", "measure", "base", "delay", "scale", "estimate", "lo", "hi", "p", "p_holm",
                    "sign", "df", "text_se", "between_reference", "between_label", "value_reference", "value_label"]
STATEMENT_COLUMNS = ["reference", "label", "base", "delay", "statement", "measures", "behaviour"]
# Measures whose units compare across models as they are: the output-level Jacobian (log-probability per
# normalised input) and the coherence ratio (a share). The others are of each model's own state (an LSTM's
# cell state, a Transformer's residual stream), so only their ratios to k = 0 and k = 1 compare.
ABSOLUTE_ACROSS_MODELS = ("output_norm", "coherence_ratio")
# sg-perturb's measures in nats (a loss change): compared as differences, as they are; the state changes are
# compared relative to their own k = 0, as the state-gradient measures are
LOSS_MEASURES = ("replacement_loss", "same_class_loss", "truncation_loss", "order_shuffled", "order_reversed",
                 "drop_content", "drop_function", "drop_random")
STATE_MEASURES = ("replacement_state", "replacement_predicted", "same_class_state", "same_class_predicted")
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


@dataclasses.dataclass
class Side:
    """One model (one RUN folder) or one recipe's training seeds (several folders, pooled).

    rows {class: {delay: row}}: intervals.csv's rows with their ratios to delays 0 and 1 (load_run), for seeds
    the seed average with its random-effect interval (verdicts.Pooled); table: svs.csv's curve (the seeds'
    mean); reps: the SV sums' Replicates or Pooled (None without replicates.csv); behaviour {measure:
    Replicates or Pooled}: sg-perturb's overall class ({} without perturb folders).
    """
    label: str
    folders: list
    rows: dict
    table: dict
    reps: object
    behaviour: dict

    @property
    def seeds(self):
        return len(self.folders)


def load_side(label, folders):
    """The Side of RUN folders (UserError naming the folders when seeds cannot be pooled: other classes, blocks or
    occurrences per block, or a run without replicates)."""
    loaded = [load_run(d) for d in folders]
    behaviour = behaviour_replicates(label, folders)
    if len(loaded) == 1:
        rows, table, reps = loaded[0]
        return Side(label, list(folders), rows, table, reps, behaviour)
    if any(run[2] is None for run in loaded):
        raise UserError(f"{label}: pooling seeds needs every run's intervals/{intervals.REPLICATES_CSV}: "
                        f"{', '.join(folders)}")
    if any(run[1].keys() != loaded[0][1].keys() for run in loaded):
        raise UserError(f"{label}: the runs' svs.csv have different classes: {', '.join(folders)}")
    reps = _pooled([run[2] for run in loaded], folders, label)
    table = {cls: {k: float(np.mean([run[1][cls][k] for run in loaded])) for k in by_delay}
             for cls, by_delay in loaded[0][1].items()}
    rows = {}
    for cls, k in reps.value:
        s = reps.statistic(lambda v, key=(cls, k): v[key], [(cls, k)]) if reps.has([(cls, k)]) else \
            {"estimate": math.nan, "lo": math.nan, "hi": math.nan}
        row = {"count": reps.count[(cls, k)], "estimate": s["estimate"], "lo": s["lo"], "hi": s["hi"],
               "noise_floor": float(np.mean([run[0][cls][k]["noise_floor"] for run in loaded]))}
        for base, name in ((0, "normalised"), (1, "relative_k1")):
            row.update(ratio_interval(reps, cls, k, base, name))
        rows.setdefault(cls, {})[k] = row
    return Side(label, list(folders), rows, table, reps, behaviour)


def _pooled(replicates, folders, label):
    try:
        return verdicts.Pooled(replicates)
    except ValueError as err:
        raise UserError(f"{label} ({', '.join(folders)}): {err}") from None


def behaviour_replicates(label, folders):
    """{measure: Replicates (one run) or Pooled (seeds)} of sg-perturb's overall class in every folder's perturb/
    ({} when none has one; UserError when some have and others not, or their targets differ)."""
    found = [perturbation.read_outputs(RunFolder(d).perturb) for d in folders]
    if all(f is None for f in found):
        return {}
    if any(f is None for f in found):
        raise UserError(f"{label}: some runs have an sg-perturb folder, others not: {', '.join(folders)}")
    out = {}
    for measure, what in perturbation.MEASURES.items():
        runs = []
        for rows, replicate_rows in found:
            mine = [r for r in rows if r["measure"] == measure and r["class"] == OVERALL]
            reps = [{**r, "block_positions": r["block_count"]} for r in replicate_rows
                    if r["measure"] == measure and r["class"] == OVERALL]
            if mine:
                runs.append(verdicts.Replicates(mine, reps, verdicts.Behaviour(measure, what, measure in LOSS_MEASURES)))
        if len(runs) == len(found):
            out[measure] = runs[0] if len(runs) == 1 else _pooled(runs, folders, f"{label}, {measure}")
    return out


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


def side_behaviour_rows(side):
    """compare_behaviour.csv rows of a Side: one run's perturbation.csv rows as they are (behaviour_rows); seeds'
    averages with their random-effect intervals."""
    if side.seeds == 1:
        return behaviour_rows(side.label, side.folders[0])
    out = []
    for measure, reps in side.behaviour.items():
        for cls, k in sorted(reps.value):
            if reps.has([(cls, k)]):
                st = reps.statistic(lambda v, key=(cls, k): v[key], [(cls, k)])
                out.append({"label": side.label, "measure": measure, "delay": k, "count": reps.count[(cls, k)],
                            "value": st["estimate"], "lo": st["lo"], "hi": st["hi"]})
    return out


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


def _contrast_row(ref, side, measure, base, k, a, b, log, shift=None):
    """One compare_contrasts.csv row: side's value over (log) or minus the reference's, at delay k, relative to
    `base` (a delay: the ratio to it; None: the value itself; shift: the value minus the value at delay shift)."""
    keys = [(OVERALL, k)] + ([(OVERALL, base)] if base is not None else []) + (
        [(OVERALL, shift)] if shift is not None else [])
    if not (a.has(keys) and b.has(keys)):
        return None
    if base is not None:
        def f(v):
            return v[(OVERALL, k)] / v[(OVERALL, base)]
    elif shift is not None:
        def f(v):
            return v[(OVERALL, k)] - v[(OVERALL, shift)]
    else:
        def f(v):
            return v[(OVERALL, k)]
    try:
        c = verdicts.contrast(a, b, f, keys, log=log)
    except ValueError as err:
        raise UserError(f"{ref.label} and {side.label}, {measure}: {err}") from None
    to = (lambda x: math.exp(x)) if log else (lambda x: x)
    name = f"k{base}" if base is not None else f"minus d{shift}" if shift is not None else ""
    return {"reference": ref.label, "label": side.label, "measure": measure, "base": name, "delay": k,
            "scale": "ratio" if log else "difference", "estimate": to(c["estimate"]), "lo": to(c["lo"]),
            "hi": to(c["hi"]), "p": c["p"], "df": c["df"], "text_se": c["text_se"], "between_reference": c["between_a"],
            "between_label": c["between_b"], "value_reference": float(np.mean(c["runs_a"])),
            "value_label": float(np.mean(c["runs_b"]))}


def _delays(a, b):
    return sorted({k for cls, k in a.value if cls == OVERALL} & {k for cls, k in b.value if cls == OVERALL})


def contrast_rows(sides):
    """compare_contrasts.csv: every side against the first (the reference), overall, under every measure the runs
    share. Gradient measures: the ratio of the sides' values relative to k = 0 and to k = 1 (and as they are
    where the units compare across models: ABSOLUTE_ACROSS_MODELS; a share as a difference); sg-perturb's: the
    state changes relative to their k = 0 (ratio), the loss changes as differences in nats, and the truncation's
    also relative to the longest context both measured (its loss with d words minus with the longest, the
    same quantity whatever each model's whole history is). verdicts.contrast gives each interval (the seeds as a
    random effect); Holm's correction runs over the delays of one (side, measure, base); sign is +1 where the
    side is above the reference, -1 below, 0 undecided."""
    ref, out = sides[0], []
    for side in sides[1:]:
        families = []
        for measure, reader in verdicts.MEASURES.items():
            if ref.reps is None or side.reps is None:
                break
            a, b = ref.reps.for_measure(measure), side.reps.for_measure(measure)
            delays = _delays(a, b)
            bases = ([None] if measure in ABSOLUTE_ACROSS_MODELS else []) + ([] if reader.share else [0, 1])
            for base in bases:
                families.append([_contrast_row(ref, side, measure, base, k, a, b, not reader.share)
                                 for k in delays if base is None or (k > base and base in delays)])
        for measure in perturbation.MEASURES:
            if measure not in ref.behaviour or measure not in side.behaviour:
                continue
            a, b = ref.behaviour[measure], side.behaviour[measure]
            delays = _delays(a, b)
            if measure in STATE_MEASURES and 0 in delays:
                families.append([_contrast_row(ref, side, measure, 0, k, a, b, True) for k in delays if k > 0])
            elif measure in LOSS_MEASURES:
                families.append([_contrast_row(ref, side, measure, None, k, a, b, False) for k in delays])
                if measure == "truncation_loss" and len(delays) > 1:
                    families.append([_contrast_row(ref, side, measure, None, k, a, b, False, shift=delays[-1])
                                     for k in delays[:-1]])
        for family in families:
            family = [row for row in family if row is not None]
            # Holm over the tests that exist: a NaN p (a ratio of a value that is not positive) is no test
            tested = [row for row in family if math.isfinite(row["p"])]
            adjusted = uncertainty.holm([row["p"] for row in tested]) if tested else []
            for row in family:
                row.update({"p_holm": math.nan, "sign": 0})
            for row, p in zip(tested, adjusted):
                above = row["estimate"] > (1 if row["scale"] == "ratio" else 0)
                row.update({"p_holm": float(p), "sign": 0 if not p < verdicts.ALPHA else 1 if above else -1})
            out += family
    return out


def statement_rows(contrasts):
    """compare_statements.csv: per side, base (k0, k1) and delay, what the gradient measures say together (the
    stated rule of verdicts.across_models), each measure's sign, and the behavioural loss change's sign at that
    delay (a replaced word k back)."""
    by = {}
    for r in contrasts:
        by.setdefault((r["reference"], r["label"], r["base"], r["delay"]), {})[r["measure"]] = r
    out = []
    for (ref, label, base, k), measures in by.items():          # the sides' order, then the contrasts' (delays up)
        if base not in ("k0", "k1"):
            continue
        gradient = {m: r["sign"] for m, r in measures.items() if m in verdicts.MEASURES}
        if not gradient:
            continue
        loss = by.get((ref, label, "", k), {}).get("replacement_loss")
        # one measure alone cannot say "every measure": it is named instead (older runs have the other measures
        # at a few delays only)
        statement = verdicts.across_models(gradient.values()) if len(gradient) > 1 else \
            f"{_SIGN[next(iter(gradient.values()))]} under {next(iter(gradient))}, the only measure at this delay"
        out.append({"reference": ref, "label": label, "base": base, "delay": k, "statement": statement,
                    "measures": "; ".join(f"{m} {_SIGN[v]}" for m, v in gradient.items()),
                    "behaviour": "" if loss is None else f"replacement_loss {_SIGN[loss['sign']]}"})
    return out


_SIGN = {1: "higher", -1: "lower", 0: "undecided"}


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


MODEL_COLUMNS = ["label", "run", "cell", "layers", "embedding", "size", "parameters", "parameters_core",
                 "valid_ppl_windows", "test_ppl_windows", "num_steps", "stride"]


def model_row(label, model_dir, data_dir, num_steps, stride, run=""):
    """One compare_models.csv row: shape, parameter counts, windowed perplexities (valid and test of data_dir)."""
    from state_gradients.core import lm_data
    from state_gradients.files.saved_model import SavedModel
    from state_gradients.training import run_epoch

    saved = SavedModel(model_dir)
    arrays = saved.read_weights()
    total, core = parameter_counts(arrays)
    model = saved.load()
    row = {"label": label, "run": run, "cell": model.cell_type, "layers": model.num_layers, "embedding": model.embedding_size,
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


def ranking_rows(label, rows, table, reps=None):
    """compare_ranking.csv rows: each group's classes from best to least remembered at each delay, and whether a
    class is above the next one: the difference of their SV sums (verdicts.difference; the seeds a random effect
    on Pooled) with Holm's correction over the adjacent pairs of one group and delay (above_next 1: separated,
    0: not; empty for the last class or without replicates)."""
    pos, freq = findings.class_groups(table)
    out = []
    for group, classes in (("POS", pos), ("frequency", freq)):
        for k in RANK_DELAYS:
            present = [c for c in classes if k in rows.get(c, {}) and math.isfinite(rows[c][k]["estimate"])]
            ranked = sorted(present, key=lambda c: -rows[c][k]["estimate"])
            tests = []
            if reps is not None:
                tests = [verdicts.difference(reps, a, b, k) if reps.has([(a, k), (b, k)]) else None
                         for a, b in zip(ranked, ranked[1:])]
                verdicts.holm_family([t for t in tests if t is not None])
            for i, c in enumerate(ranked):
                test = tests[i] if i < len(tests) else None
                out.append({"label": label, "group": group, "delay": k, "rank": i + 1, "class": c,
                            "estimate": rows[c][k]["estimate"], "lo": rows[c][k]["lo"], "hi": rows[c][k]["hi"],
                            "above_next": None if test is None else int(test.sign == 1),
                            "p_holm_next": None if test is None else test.p_holm})
    return out


def ranking_text(rows, top=3):
    """'verbs > nouns ≈ pronouns': the first `top` classes of compare_ranking.csv rows of one label, group and delay
    in rank order, '>' where a class is separated from the next (above_next), '≈' where it is not, ',' where
    untested."""
    rows = sorted(rows, key=lambda r: int(r["rank"]))[:top]
    text = rows[0]["class"] if rows else ""
    for r, nxt in zip(rows, rows[1:]):
        mark = {"1": " > ", "0": " ≈ "}.get(str(r.get("above_next", "")), ", ")
        text += mark + nxt["class"]
    return text


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


def markdown(sides, models, svs, fits, ranking, frequency):
    """compare.md: the tables of the CSV files, with the figures."""
    labels = [side.label for side in sides]
    lines = [f"# {' vs '.join(labels)}: memory profiles on the same corpus", ""]
    if any(side.seeds > 1 for side in sides):
        lines += ["Each side is one model or the training seeds of one recipe; a side of seeds shows the seeds' "
                  "average, its interval with the seeds as a random effect (the recipe, not one trained model), "
                  "and a single model its own value:", ""]
        lines += [f"- {side.label}: " + (f"{side.seeds} seeds ({', '.join(map(_name, side.folders))})"
                                         if side.seeds > 1 else f"one model ({_name(side.folders[0])})")
                  for side in sides]
        lines.append("")
    if models:
        lines += ["## Models", "", "| label | run | cell | layers | E | H / D | parameters | without embedding, "
                  "positions and output layer | valid perplexity | test perplexity |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in models:
            lines.append(f"| {m['label']} | {m.get('run', '')} | {m['cell']} | {m['layers']} | {m['embedding']} | "
                         f"{m['size']} | "
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
    lines += ["", "## Class rankings (bias-corrected estimates)", "",
              "'>' where a class is above the next by a test (the difference of their SV sums, Holm over the "
              "adjacent pairs), '≈' where no test separates them, ',' where untested (no replicates).", ""]
    for group in ("POS", "frequency"):
        lines += [f"{group}, classes from best to least remembered:", "", "| delay | " + " | ".join(labels) + " |",
                  "|---:|" + "---|" * len(labels)]
        for k in RANK_DELAYS:
            cells = [ranking_text([r for r in ranking if r["label"] == lab and r["group"] == group and r["delay"] == k],
                                  top=len(ranking)) for lab in labels]
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
    """Write OUT's files (see the module comment) for the sides `runs` named `labels`; returns {name: path}.

    runs: one entry per side, a RUN folder (one model) or a list of them (the training seeds of one
    recipe, pooled with the seeds as a random effect); the first side is the reference of
    compare_contrasts.csv. models: MODEL folders, one per RUN folder in the order given (or None);
    data: the corpus folder with valid.txt and test.txt, needed with models; models_csv: instead of
    models, an earlier compare_models.csv whose rows (label, run) are kept.
    """
    groups = [[r] if isinstance(r, (str, os.PathLike)) else list(r) for r in runs]
    folders = [os.fspath(f) for group in groups for f in group]
    if len(groups) < 2:
        raise UserError("sg-compare needs at least two RUN folders (or groups of seeds)")
    if len(labels) != len(groups) or len(set(labels)) != len(labels):
        raise UserError(f"--labels: {len(groups)} distinct names needed, got {','.join(labels)}")
    if len(set(folders)) != len(folders):
        raise UserError(f"a RUN folder is given twice: {', '.join(f for f in folders if folders.count(f) > 1)}")
    if models is not None and len(models) != len(folders):
        raise UserError(f"--models: one folder per run ({len(folders)}), got {len(models)}")
    if models is not None and data is None:
        raise UserError("--models needs --data (the corpus folder with valid.txt and test.txt)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; give a folder (it is created)")
    if models is not None and models_csv is not None:
        raise UserError("give --models or --models-csv, not both")
    check_same_pass(folders)
    run_labels = [(label, os.path.basename(os.path.normpath(f))) for label, group in zip(labels, groups) for f in group]
    kept = kept_model_rows(models_csv, labels, run_labels) if models_csv is not None else None   # before the work
    sides = [load_side(label, [os.fspath(f) for f in group]) for label, group in zip(labels, groups)]
    check_same_positions([side.folders[0] for side in sides], [(side.rows, side.table, side.reps) for side in sides])
    panel = [row for side in sides for row in panel_rows(side.label, side.reps)]
    model_rows = [model_row(lab, m, data, num_steps, stride or num_steps, run=run)
                  for (lab, run), m in zip(run_labels, models)] if models else kept or []
    svs, fits, ranking, frequency = [], [], [], []
    for side in sides:
        svs += svs_rows(side.label, side.rows)
        fits += fit_rows(side.label, side.table)
        ranking += ranking_rows(side.label, side.rows, side.table, side.reps)
        frequency += frequency_rows(side.label, side.rows)
    pos = findings.class_groups(sides[0].table)[0]
    behaviour = [row for side in sides for row in side_behaviour_rows(side)]
    contrasts = contrast_rows(sides)
    statements = statement_rows(contrasts)
    os.makedirs(out, exist_ok=True)
    files = {
        MODELS_CSV: _csv_text(model_rows, MODEL_COLUMNS),
        SVS_CSV: _csv_text(svs, ["label", "class", "delay", "count", "estimate", "lo", "hi", "noise_floor"]
                           + RATIO_COLUMNS),
        FITS_CSV: _csv_text(fits, ["label", "model", "a", "tau_or_b", "rmse_log", "first_delay", "last_delay"]),
        RANKING_CSV: _csv_text(ranking, ["label", "group", "delay", "rank", "class", "estimate", "lo", "hi",
                                         "above_next", "p_holm_next"]),
        FREQUENCY_CSV: _csv_text(frequency, ["label", "delay", "class", "role", "count", "estimate", "lo", "hi",
                                             "noise_floor"]),
        PANEL_CSV: _csv_text(panel, PANEL_COLUMNS),
        BEHAVIOUR_CSV: _csv_text(behaviour, BEHAVIOUR_COLUMNS),
        CONTRASTS_CSV: _csv_text(contrasts, CONTRAST_COLUMNS),
        STATEMENTS_CSV: _csv_text(statements, STATEMENT_COLUMNS),
    }
    paths = {name: os.path.join(out, name) for name in list(files) + [SUMMARY_MD, OVERALL_PNG, POS_PNG]}
    for name, text in files.items():
        fileio.atomic_write_text(paths[name], text)
    body = (markdown(sides, model_rows, svs, fits, ranking, frequency) + contrasts_markdown(contrasts, statements)
            + panel_markdown(labels, panel) + behaviour_markdown(labels, behaviour))
    title, rest = body.split("\n", 1)
    glance = headline_table(out) + (f"\nThe differences, each side against {labels[0]} (ratios of each measure "
                                    "relative to k = 0 or k = 1, ↑ higher, ↓ lower by a Holm-adjusted test; the "
                                    "replaced word's loss change as a difference):\n\n" + statements_table(out)
                                    if statements else "")
    fileio.atomic_write_text(paths[SUMMARY_MD], f"{title}\n\n## At a glance\n\n{glance}{rest}")
    fileio.write_bytes(paths[OVERALL_PNG], plot_overall(svs, labels))
    fileio.write_bytes(paths[POS_PNG], plot_pos(svs, labels, pos))
    return paths


def kept_model_rows(models_csv, labels, runs=None):
    """The rows of an earlier compare_models.csv (UserError unless they are of exactly these labels)."""
    if not os.path.isfile(models_csv):
        raise UserError(f"--models-csv {models_csv} not found")
    kept = _read(models_csv)
    if {r["label"] for r in kept} != set(labels):
        raise UserError(f"--models-csv {models_csv} has the runs {', '.join(sorted({r['label'] for r in kept}))}, "
                        f"not {', '.join(sorted(labels))}")
    if runs is not None and kept and "run" in kept[0]:
        pairs = [(r["label"], r["run"]) for r in kept]
        if sorted(pairs) != sorted(runs):
            raise UserError(f"--models-csv {models_csv} has the models {pairs}, the runs given are {runs}: one row "
                            "per RUN folder (label, folder name)")
        kept = sorted(kept, key=lambda r: runs.index((r["label"], r["run"])))
    try:
        return [{key: (value if key in ("label", "cell", "run") else float(value) if key.endswith("_ppl_windows")
                       else int(value)) for key, value in r.items()} for r in kept]
    except ValueError:
        raise UserError(f"--models-csv {models_csv}: a value is not a number (expected sg-compare's "
                        f"{MODELS_CSV})") from None


def _perplexities(rows):
    """'valid / test' of one model's compare_models.csv row; of seeds, their means and each seed's values."""
    valid, test = ([float(r[f"{split}_ppl_windows"]) for r in rows] for split in ("valid", "test"))
    text = f"{np.mean(valid):.1f} / {np.mean(test):.1f}"
    if len(rows) > 1:
        text += " (seeds: " + ", ".join(f"{v:.1f} / {t:.1f}" for v, t in zip(valid, test)) + ")"
    return text


def _name(folder):
    return os.path.basename(os.path.normpath(folder))


CONTRAST_DELAYS = (1, 2, 5, 10, 20, 40)


def contrasts_markdown(contrasts, statements):
    """The differences section of compare.md: each side against the reference under every measure, with the
    statements the measures make together."""
    if not contrasts:
        return ""
    lines = ["", "## Differences between the models, with intervals", "",
             "Each side against the first, overall, on the same text (verdicts.contrast: the jackknife over the "
             "blocks both read, the seeds as a random effect on a side of seeds). A ratio side / reference of each "
             "measure relative to its own value at k = 0 or k = 1, or a difference in nats for a loss; "
             "95% interval; ↑ the side is higher, ↓ lower, · undecided (Holm over the delays of a measure).", ""]
    by = {(r["label"], r["measure"], r["base"], int(r["delay"])): r for r in contrasts}
    mark = {1: "↑", -1: "↓", 0: "·"}
    for ref, label in dict.fromkeys((r["reference"], r["label"]) for r in contrasts):
        for base, what in (("k0", "relative to k = 0"), ("k1", "relative to k = 1"),
                           ("", "as it is (units that compare across models; a share as a difference)")):
            measures = [m for m in verdicts.MEASURES if any((label, m, base, k) in by for k in CONTRAST_DELAYS)]
            if not measures:
                continue
            lines += [f"{label} / {ref}, each measure {what}:", "",
                      "| delay | " + " | ".join(measures) + " | together |", "|---:|" + "---:|" * len(measures)
                      + "---|"]
            said = {(s["label"], s["base"], int(s["delay"])): s["statement"] for s in statements}
            for k in CONTRAST_DELAYS:
                cells = [by.get((label, m, base, k)) for m in measures]
                if not any(cells):
                    continue
                lines.append(f"| {k} | " + " | ".join(f"{_interval_text(r, digits=3)} {mark[int(r['sign'])]}" if r
                                                      else "" for r in cells) + f" | {said.get((label, base, k), '')} |")
            lines.append("")
        behaviour = [m for m in perturbation.MEASURES if any(r["label"] == label and r["measure"] == m
                                                             for r in contrasts)]
        if behaviour:
            lines += [f"{label} against {ref}, behaviour (sg-perturb; state changes: ratio relative to k = 0; "
                      "losses: difference in nats):", "", "| measure | delay or context | " + label + " − or / "
                      + ref + " |", "|---|---:|---:|"]
            for r in contrasts:
                if r["label"] == label and r["measure"] in behaviour:
                    what = r["measure"] + (f", {r['base']}" if r["base"] else "")
                    lines.append(f"| {what} | {r['delay']} | {_interval_text(r, digits=3)} {mark[int(r['sign'])]} |")
            lines.append("")
    return "\n".join(lines)


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


STATEMENT_DELAYS = (1, 2, 10, 40)


def statements_table(directory, delays=STATEMENT_DELAYS):
    """The differences table that the README and the results page quote, rebuilt from a comparison folder's
    compare_contrasts.csv and compare_statements.csv: per side against the reference, base (k = 0, k = 1) and
    delay, each gradient measure's ratio with its interval and what the measures say together, and the replaced
    word's loss difference at that delay."""
    contrasts = _read(os.path.join(directory, CONTRASTS_CSV))
    said = {(r["label"], r["base"], int(r["delay"])): r["statement"] for r in _read(os.path.join(directory,
                                                                                             STATEMENTS_CSV))}
    by = {(r["label"], r["measure"], r["base"], int(r["delay"])): r for r in contrasts}
    measures = [m for m in verdicts.MEASURES if any(key[1] == m and key[2] in ("k0", "k1") for key in by)]
    mark = {"1": " ↑", "-1": " ↓", "0": ""}
    lines = ["| side / reference | base | k | " + " | ".join(measures) + " | replaced word's loss, difference (nats) "
             "| the measures together |", "|---|---|---:|" + "---:|" * (len(measures) + 1) + "---|"]
    for ref, label in dict.fromkeys((r["reference"], r["label"]) for r in contrasts):
        for base in ("k0", "k1"):
            for k in delays:
                if (label, base, k) not in said:
                    continue
                cells = [by.get((label, m, base, k)) for m in measures]
                loss = by.get((label, "replacement_loss", "", k))
                lines.append(f"| {label} / {ref} | {base} | {k} | " + " | ".join(
                    _interval_text(r, digits=3) + mark[r["sign"]] if r else "" for r in cells)
                    + f" | {_interval_text(loss, digits=3) + mark[loss['sign']] if loss else ''} | "
                    + f"{said[(label, base, k)]} |")
    return "\n".join(lines) + "\n"


def headline_table(directory):
    """The side-by-side table that the README and the results page quote, rebuilt from a comparison folder's CSVs
    (so a test can check that the quoted table is the committed files')."""
    svs = {(r["label"], r["class"], int(r["delay"])): r for r in _read(os.path.join(directory, SVS_CSV))}
    labels = list(dict.fromkeys(r["label"] for r in _read(os.path.join(directory, FITS_CSV))))
    fits = {(r["label"], r["model"]): r for r in _read(os.path.join(directory, FITS_CSV))}
    ranking = _read(os.path.join(directory, RANKING_CSV))
    models = {}
    for r in _read(os.path.join(directory, MODELS_CSV)):
        models.setdefault(r["label"], []).append(r)
    freq = _read(os.path.join(directory, FREQUENCY_CSV))

    def f(x, digits=3):
        return _g(float(x), digits)

    def cell(row, key="normalised"):
        return _interval_text(row, key, digits=3)

    rows = []
    if models:
        rows.append(["parameters (without embedding, positions and output layer)"] +
                    [f"{int(models[lab][0]['parameters']):,} ({int(models[lab][0]['parameters_core']):,})"
                     for lab in labels])
        rows.append(["perplexity on 200-token windows without carried state, valid / test"] +
                    [_perplexities(models[lab]) for lab in labels])
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
        rows.append([f"POS classes at k = {k}, best first (top 3; '>' separated by a test, '≈' not)"] +
                    [ranking_text([r for r in ranking if r["label"] == lab and r["group"] == "POS"
                                   and int(r["delay"]) == k]) for lab in labels])
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
