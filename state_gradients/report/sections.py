"""The report's sections, each writing into a Document from one reproduction folder's files."""
# Shape letters: K delays, C classes.
import csv
import dataclasses
import io
import json
import math
import os

import numpy as np

from state_gradients.core import families, results
from state_gradients.core.fileio import table_csv
from state_gradients.core.formats import OVERALL
from state_gradients.files.run_folder import RunFolder, read_delay_series
from state_gradients.measures import intervals, perturbation, uncertainty, verdicts
from state_gradients.report import document, figures, findings, readers
from state_gradients.report.findings import (CONTEXT_FINDINGS, MIN_CELL_OCCURRENCES, RANK_DELAYS, TYPE_WEIGHTED,
                                             FREQ_PREFIX, REMEMBERED_POS, common_bin_weights, context_families, fit_decay,
                                             freq_sort_key, pos_frequency_cells, ranking, type_level_families,
                                             type_weighted_bins)

MISSING = {   # a part of the report -> the command that computes it
    "classifier": "sg-pos-classifier EMB DICT POSFILE DIR/classifier/pos --result DIR/classifier/pos.json "
                  "(sg-reproduce's classifier step)",
    "diff": "sg-diff-vector, then sg-relative-memory and sg-cos-subspace-diff-vector with --result "
            "DIR/diff/NAME_relative_memory.json and DIR/diff/NAME_cos_subspace.json (sg-reproduce's diff steps)",
    "intervals": "main.py with grad_blocks N, then sg-intervals GRAD_DIR D.npy --out DIR/intervals "
                 "(sg-reproduce does both)",
    "sigma": "sg-interpret-state --config GRAD.config --out DIR/sigma (sg-demo --measures does)",
    "txray": "sg-txray --config GRAD.config --separate NN,NNS --out DIR/txray (sg-demo --measures does)",
    "perturb": "sg-perturb --config GRAD.config --out DIR/perturb (the gradient config with batch_size 1; "
               "sg-reproduce runs it unless --no-perturb)",
}


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


def interval_sections(doc, loaded, pos_classes, freq_classes, overall):
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
            doc.figure(name, figures.plot_intervals(by_key, [OVERALL] + classes, f"per {group}, with noise floors"),
                       f"Bias-corrected SV sums of G·D per {group} with 95% intervals over the text blocks; dotted: "
                       "each class's noise floor, what its count of occurrences gives without memory (log scale)",
                       "intervals/intervals.csv")
    if any(math.isfinite(r["coherence_ratio_se"]) for r in rows if r["class"] in pos_classes):
        doc.figure("report_coherence_pos.png", figures.plot_coherence(by_key, [OVERALL] + pos_classes, "per POS class"),
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


def panel_section(lead, panel):
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


def context_section(doc, directory, context, type_level, pos_classes):
    """Tagger, type-level vs in-context classes, <unk>, frequency-matched nouns vs verbs; ({finding: verdict}, rows)."""
    rows, reps = context
    by_key = {(r["class"], r["delay"]): r for r in rows}
    names = sorted({r["class"] for r in rows})
    doc.heading("Word classes in context")
    run = RunFolder(directory)
    tagger = run.text(run.tagger_json)
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


def provenance_section(doc, directory, progress, test, mapping):
    """The header: how the run was made and what it ran on."""
    from state_gradients.core import version

    run = RunFolder(directory)
    prov = run.provenance() or {}
    commit = version.commit()      # one git call
    config_path, cfg = run.config_values()
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


def planted_memory_text(planted):
    return (f"Planted memory (the demo language's verb agrees with the subject noun 1-8 words back): at delays "
            f"{planted['delays'][0]}..{planted['delays'][-1]} the {planted['remembered']}' SV sum of G·D is "
            f"{planted['ratio']:.2f}x that of the fillers ({' and '.join(planted['fillers'])}); bias-corrected "
            f"{planted['estimate']:.2f}x, 95% interval [{planted['lo']:.2f}, {planted['hi']:.2f}] over "
            f"{planted['blocks']} blocks of the validation text. Above 1: the state keeps the noun longer than the "
            "fillers. The interval is about the text; another training run is another sample of the model "
            "(sg-demo --seed N).")


def _embed_png(doc, source, name, caption, table_name):
    """A figure another tool drew (a PNG in DIR), copied into the report as NAME, if it exists."""
    if os.path.isfile(source):
        with open(source, "rb") as handle:
            doc.figure(name, handle.read(), caption, table_name)


def other_measures_section(doc, directory):
    """σ (sg-interpret-state) and TX-Ray (sg-txray) where the run has them (sg-demo --measures)."""
    run = RunFolder(directory)
    sigma_csv, sigma_png, separation = run.sigma_csv, run.sigma_png, run.txray_csv
    doc.heading("Other memory measures: sigma and TX-Ray")
    _, cfg = run.config_values()
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
        _embed_png(doc, run.txray_png, "report_txray_separation.png",
                   "TX-Ray separation of tags of the word k back, with its chance level", "txray_separation.csv")
    else:
        doc.para(f"TX-Ray not computed: {MISSING['txray']}.")


def svs_section(doc, run, table, pos_classes, freq_classes):
    """The papers' figure: SV sums per POS class, per frequency bin (with the bins) and per other class."""
    doc.heading("Sum of singular values of G·D against delay")
    doc.para("G is the average state gradient d c_t / d x_{t-k} over all time steps t and validation windows "
             "(per class: over the occurrences whose word at t-k is in the class), D the Cholesky factor of "
             "the embedding covariance (C = D Dᵀ), so that every embedding direction counts by its spread.")
    if pos_classes:
        doc.figure("report_svs_pos.png", figures.plot_classes(table, pos_classes, "per POS class"),
                   "Sum of singular values of G·D per POS class of the word at t-k (log scale)", "svs.csv")
    if freq_classes:
        bins = run.text(run.freq_bins)
        doc.figure("report_svs_freq.png", figures.plot_classes(table, freq_classes, "per training-frequency bin"),
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
        doc.figure("report_svs_other.png", figures.plot_classes(table, others, "per class"),
                   "Sum of singular values of G·D per class of the word at t-k (log scale)", "svs.csv")


def fits_section(doc, overall, exp_fit, pow_fit):
    """The two decay fits of the overall curve; returns report_fits.csv's text."""
    doc.heading("Decay of the overall curve: exponential or power law")
    fits_csv = table_csv([[f.model, f.a, f.rate, f.rmse_log, f.delays[0], f.delays[-1]] for f in (exp_fit, pow_fit)],
                         ["model", "a", "tau_or_b", "rmse_log", "first_delay", "last_delay"])
    doc.para("Least squares on log scale over delays ≥ 1: exponential a·exp(−k/τ), power law a·k^(−b). "
             "The error is the root mean square of the residuals of ln(sum).")
    doc.table(["model", "a", "τ or b", "RMS error of ln", "delays"],
              [[f.model, f.a, f.rate, f.rmse_log, f"{f.delays[0]}-{f.delays[-1]}"] for f in (exp_fit, pow_fit)])
    better = "power law" if pow_fit.rmse_log < exp_fit.rmse_log else "exponential"
    doc.para(f"The {better} fits better.")
    doc.figure("report_fits.png", figures.plot_fits(overall, exp_fit, pow_fit),
               "Overall sum of singular values with the two fits (log scale)", "report_fits.csv")
    return fits_csv


def ranking_section(doc, table, pos_classes, freq_classes):
    """The classes ranked by SV sum at each ranking delay; returns ({group: ranking}, report_ranking.csv's text)."""
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
    return rank_tables, table_csv(rank_rows, ["group", "delay", "rank", "class", "sum"])


def relative_memory_section(doc, run):
    """Relative memory and subspace cosine of the difference vectors with their random-direction controls;
    returns report_relative_memory.csv's rows."""
    doc.heading("Relative memory of difference vectors")
    series, cosines, columns = {}, {}, {}
    for name in run.difference_names():
        series[name] = read_delay_series(run.relative_memory_json(name), "sg-relative-memory", "relative_memory")
        cos_path = run.cos_subspace_json(name)
        cos = read_delay_series(cos_path, "sg-cos-subspace-diff-vector", "cosine")
        if cos:
            cosines[name] = cos
            columns[name] = results.read_result(cos_path, "sg-cos-subspace-diff-vector")["columns"]
    baselines = readers.random_direction_baselines(run.root, series, columns)
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
        doc.figure("report_relative_memory.png", figures.plot_relative_memory(series, cosines, baselines),
                   "Relative memory and subspace cosine of the difference vectors against delay, with a random "
                   "direction's (dotted)", "report_relative_memory.csv")
        doc.table(["difference", "k = 0", "1", "5", "10", "20", "40"],
                  [[name] + [values.get(k) for k in (0,) + RANK_DELAYS] for name, values in series.items()]
                  + [[f"{name}: random direction"] + [baselines[name][0].get(k) for k in (0,) + RANK_DELAYS]
                     for name in series if baselines.get(name, ({}, {}))[0]])
    else:
        doc.para(f"Not computed: {MISSING['diff']}.")
    return memory_rows


def classifier_section(doc, run):
    """The POS classifier's accuracy with Wilson intervals beside its majority and chance baselines."""
    doc.heading("POS classifier on the embeddings")
    classifier = run.classifier_result()
    if not classifier:
        doc.para(f"Not computed: {MISSING['classifier']}.")
        return
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


POINT_RULES = ("Rules from point estimates: 'singular values shrink' holds when the overall sum falls at every delay "
               "step; 'fast but not exponential' holds when the power law fits ln(sum) better; 'nouns best' holds "
               f"when {REMEMBERED_POS} rank first among the POS classes at every delay of {RANK_DELAYS}, partly "
               "at some; 'infrequent words better and longer' holds when the rarest bin is above the most "
               "frequent at every ranking delay and keeps a larger share of its delay-1 value at the last "
               "ranking delay, partly when one of the two is true.")
INTERVAL_RULES = (
    "Rules with intervals (each finding is one family of comparisons, Holm-corrected; a comparison is "
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


def findings_section(run, point, interval_findings, reps, context, pos_classes, freq_classes, overall):
    """The Findings that lead the report: (its Document, {finding: (verdict, point verdict, numbers)}, the panel's
    CSV rows). point: {finding: (verdict, numbers)} from the point estimates; interval_findings: {finding: verdict}
    judged with intervals (empty without sg-intervals)."""
    lead = document.Document()
    lead.heading("Findings")
    planted = run.planted_memory()
    if planted:
        lead.para(planted_memory_text(planted))
    found = {}
    for name, (verdict, text) in point.items():
        if name in interval_findings:
            found[name] = (interval_findings[name], verdict, text)
        else:
            found[name] = (verdict, None, text) if interval_findings else (verdict, verdict, text)
    for name in CONTEXT_FINDINGS.values():
        if name in interval_findings:
            found[name] = (interval_findings[name], None, "see 'Word classes in context'")
    panel_rows = []
    if interval_findings:
        lead.table(["finding", "verdict (intervals)", "verdict (point estimates)", "numbers"],
                   [[name, v, pv, text] for name, (v, pv, text) in found.items()])
        panel = findings.measure_panel(reps[1], None if context is None else context[1], pos_classes, freq_classes,
                                       list(overall))
        if len(panel) and len({m for _, by, _ in panel for m in by}) > 1:
            panel_rows = panel_section(lead, panel)
        lead.para(INTERVAL_RULES)
    else:
        lead.table(["finding", "verdict", "numbers"], [[name, v, text] for name, (v, _, text) in found.items()])
    lead.para(POINT_RULES)
    return lead, found, panel_rows


def behaviour_section(doc, run, type_level, pos_classes, freq_classes):
    """sg-perturb's behavioural measures beside the gradient measures (DIR/perturb/); returns report_behaviour.csv's
    rows (the rank correlations), [] when not computed."""
    doc.heading("Behavioural memory beside the state gradients")
    found = perturbation.read_outputs(run.perturb)
    if found is None:
        doc.para(f"Not computed: {MISSING['perturb']}.")
        return []
    rows, replicates = found
    by = {(r["measure"], r["class"], r["delay"]): r for r in rows}

    def overall(measure, delay):
        """The overall class's value [95%] of a measure at a delay (None where not measured)."""
        r = by.get((measure, OVERALL, delay))
        return None if r is None else _interval({"estimate": r["value"], "lo": r["lo"], "hi": r["hi"]})
    doc.para("A state gradient is a sensitivity; what the model does when its past is perturbed is measured beside it "
             "(sg-perturb, after Khandelwal et al. 2018; docs/measures.md). Replacement: the word at t − k replaced by "
             "a unigram draw: the state change ‖Δs_t‖ and the state gradient's first-order prediction ‖G·Δx‖, both "
             "per unit ‖D⁻¹Δx‖, and the loss change at t. Truncation: the loss increase when only the last d words "
             "are read; word order and dropping, against the longest context, on a subsample of those targets (their "
             "counts are in perturbation.csv). Means over the sampled occurrences with 95% intervals over the text's "
             "blocks.")
    delays = sorted({r["delay"] for r in rows if r["measure"] == "replacement_state" and r["class"] == OVERALL})
    doc.table(["delay k", "occurrences", "‖Δs‖ / ‖D⁻¹Δx‖ [95%]", "‖G·Δx‖ / ‖D⁻¹Δx‖ [95%]", "loss change [95%]"],
              [[k, by[("replacement_state", OVERALL, k)]["count"]] + [overall(m, k) for m in perturbation.REPLACEMENT]
               for k in delays])
    if any(r["measure"] == "same_class_state" for r in rows):
        doc.para("The same words replaced by a unigram draw of their own class (the replaced word's first content or "
                 "function class; words in none are left out), and the unigram replacement's sizes apart: the state's "
                 "change ‖Δs_t‖ and the input's, normalised ‖D⁻¹Δx‖ and raw ‖Δx‖ (their quotient is the first "
                 "table's ‖Δs‖ / ‖D⁻¹Δx‖ row by row).")
        doc.table(["delay k", "same-class occurrences"] + [f"{head} [95%]" for head in (
            "same class: ‖Δs‖ / ‖D⁻¹Δx‖", "same class: ‖G·Δx‖ / ‖D⁻¹Δx‖", "same class: loss change", "‖Δs‖",
            "‖D⁻¹Δx‖", "‖Δx‖")],
            [[k, by[("same_class_state", OVERALL, k)]["count"] if ("same_class_state", OVERALL, k) in by else 0]
             + [overall(m, k) for m in perturbation.SAME_CLASS + perturbation.SIZES] for k in delays])
    contexts = sorted({r["delay"] for r in rows if r["measure"] == "truncation_loss" and r["class"] == OVERALL})
    doc.table(["context d", "targets", "loss increase, truncated [95%]"] + [
        f"{name.replace('_', ' ')} [95%]" for name in perturbation.TRUNCATION[1:]],
        [[d, by[("truncation_loss", OVERALL, d)]["count"]]
         + [overall(m, d) for m in perturbation.TRUNCATION] for d in contexts])
    if type_level is None:
        doc.para(f"Rank correlations with the gradient measures need their intervals: {MISSING['intervals']}.")
        return []
    behaviour = findings.behaviour_values(rows, replicates)
    agreement = findings.rank_agreement(type_level[1], behaviour, pos_classes + freq_classes,
                                        [k for k in RANK_DELAYS if k in delays])
    if not agreement:
        doc.para("No rank correlation: the runs share fewer than "
                 f"{findings.MIN_RANKED_CLASSES} classes with values at the same blocks.")
        return []
    doc.para("Do the gradient measures rank the classes (POS classes and frequency bins of the word at t − k) as the "
             "replaced word's effect does? Spearman's rank correlation across the classes at each ranking delay, "
             "with three checks: the 95% interval over a block bootstrap of the class means (how precisely the "
             "text measures the ranking), the permutation p (how often as many classes ranked without any relation "
             "would agree, or disagree, as much) and the classes' p (Cochran's Q, the larger of the two measures': "
             "whether each tells the classes apart beyond its noise at all). 'agree' when the interval lies above 0 "
             f"and both p < {findings.AGREEMENT_ALPHA}, 'disagree' when below 0 and both p < "
             f"{findings.AGREEMENT_ALPHA}, else 'unclear'.")
    doc.table(["gradient measure", "behaviour", "k", "classes", "Spearman ρ [95%]", "permutation p", "classes' p",
               "verdict"],
              [[verdicts.MEASURES[r["gradient"]].what, r["behaviour"].replace("_", " "), r["delay"], r["classes"],
                _interval({"estimate": r["rho"], "lo": r["lo"], "hi": r["hi"]}), f"{r['p_perm']:.2g}",
                f"{r['p_classes']:.2g}", findings.agreement_word(r)] for r in agreement])
    return [[r["gradient"], r["behaviour"], r["delay"], r["classes"], r["rho"], r["lo"], r["hi"], r["p_perm"],
             r["p_classes"], findings.agreement_word(r)] for r in agreement]
