"""sg-seeds: the papers' findings across training seeds: each seed's verdict, the seed average's interval, the spread."""
# Shape letters: S runs (seeds), N blocks.
#
# Reads, in each RUN folder (sg-reproduce's layout, every run the same config but its seed):
#   intervals/intervals.csv, intervals/replicates.csv   sg-intervals (required)
#   svs.csv                                             the type-level classes and the delays (required)
#   gradients/grad_progress.json, test_perplexity.txt    perplexities (optional)
# Writes into OUT (the schema other tools read):
#   seeds_findings.csv     finding, verdict (pooled rule below), verdict_<label> (each seed alone,
#                          as its report)
#   seeds_comparisons.csv  finding, comparison, estimate, se, lo, hi, p, p_holm, sign,
#                          signs_agree, seed_min, seed_max, estimate_<label>...
#   seeds_svs.csv          class, delay, count, estimate, se, lo, hi, text_se, between_var, df,
#                          seed_min, seed_max, estimate_<label>... (bias-corrected SV sums; ctx_
#                          classes are in context; a class and delay with no occurrence, NaN in
#                          intervals.csv, has no row)
#   seeds.md               the tables with the rule in words
#
# Two sources of variation. Text sampling: the runs are passes over the same text with the same
# blocks, so the seed average of a statistic has a jackknife over those blocks (text_se).
# Training seed: a random effect (verdicts.random_effect): se² = text_se² + between_var / S,
# between_var the seeds' variance net of the text variance each carries, Satterthwaite's df;
# estimate, se, lo, hi and p are of the recipe, not of one trained model. The pooled rule: a
# comparison counts as above (below) when that p, Holm-adjusted within its finding, is below
# verdicts.ALPHA; the finding's verdict follows by the rules of the single-run report.
# signs_agree says whether every seed's own estimate has the average's sign.
import os

from state_gradients.classes import token_classes
from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL
from state_gradients.files.run_folder import RunFolder, check_same_pass
from state_gradients.measures import intervals
from state_gradients.measures import analysis, verdicts
from state_gradients.report import findings, readers
from state_gradients.core.fileio import table_csv
from state_gradients.report.document import Document

FINDINGS_CSV, COMPARISONS_CSV, SVS_CSV, SUMMARY_MD = "seeds_findings.csv", "seeds_comparisons.csv", "seeds_svs.csv", \
    "seeds.md"
COMBINED = ("-as-", "-freq_", "+unk")  # in-context classes left out of seeds.md's table (they are in seeds_svs.csv)


def load_run(directory):
    """(type-level Replicates, in-context Replicates or None, svs table, {perplexity name: value}) of a RUN folder."""
    analysis.check_dir(directory, "run folder")
    run = RunFolder(directory)
    for name in (intervals.INTERVALS_CSV, intervals.REPLICATES_CSV):
        if not os.path.isfile(run.path("intervals", name)):
            raise UserError(f"{directory}: no intervals/{name} (sg-reproduce with blocks writes it)")
    table = run.svs()
    type_level, context = readers.read_replicates(directory)
    perplexity = {"validation (gradient pass)": run.progress().get("perplexity"), "test": run.test_perplexity()}
    return type_level[1], None if context is None else context[1], table, perplexity


def pooled(replicates, directories):
    try:
        return verdicts.Pooled(replicates)
    except ValueError as err:
        raise UserError(f"{', '.join(directories)}: {err}") from None


def families(type_level, context, table):
    """{finding: (verdict, family)} of one Replicates (or Pooled) pair, as report.py forms them."""
    pos, freq = findings.class_groups(table)
    out = findings.type_level_families(type_level, pos, freq, list(table[OVERALL]))
    if context is not None:
        out.update(findings.context_families(context, pos))
    return out


def summarise(directories, labels, out_dir):
    """Judge the findings on every run and on their average; write OUT's files; returns {finding: pooled verdict}."""
    if len(directories) < 2:
        raise UserError("give at least two run folders (one per seed)")
    if len(labels) != len(directories):
        raise UserError(f"--labels has {len(labels)} names for {len(directories)} run folders")
    if len(set(labels)) != len(labels):
        raise UserError(f"the runs' labels are not unique: {', '.join(labels)} (give --labels)")
    check_same_pass(directories)
    runs = [load_run(d) for d in directories]
    table = runs[0][2]
    if any(set(run[2]) != set(table) for run in runs[1:]):
        raise UserError(f"{', '.join(directories)}: the runs' svs.csv have different classes")
    if any((run[1] is None) != (runs[0][1] is None) for run in runs):
        raise UserError(f"{', '.join(directories)}: some runs have classes in context (--pos-data), others not")
    type_pool = pooled([run[0] for run in runs], directories)
    context_pool = None if runs[0][1] is None else pooled([run[1] for run in runs], directories)
    per_seed = [families(run[0], run[1], table) for run in runs]
    pool = families(type_pool, context_pool, table)

    finding_rows, comparison_rows = [], []
    for name, (verdict, family) in pool.items():
        finding_rows.append([name, verdict] + [seed[name][0] if name in seed else None for seed in per_seed])
        for c in family:
            comparison_rows.append([name, c.name, c.estimate, c.se, c.lo, c.hi, c.p, c.p_holm, c.sign,
                                    int(c.runs_agree), min(c.runs), max(c.runs), *c.runs])
    svs_rows = []
    for prefix, reps in (("", type_pool), (token_classes.CONTEXT_PREFIX, context_pool)):
        if reps is None:
            continue
        for cls, k in sorted(reps.value, key=lambda key: (key[0] != OVERALL, key[0], key[1])):
            if prefix and cls == OVERALL or not reps.has([(cls, k)]):
                continue
            s = reps.statistic(lambda v: v[(cls, k)], [(cls, k)])
            svs_rows.append([prefix + cls, k, reps.count[(cls, k)], s["estimate"], s["se"], s["lo"], s["hi"],
                             s["text_se"], s["between_var"], s["df"], min(s["runs"]), max(s["runs"]), *s["runs"]])

    seed_columns = [f"estimate_{label}" for label in labels]
    files = {
        FINDINGS_CSV: table_csv(finding_rows, ["finding", "verdict"] + [f"verdict_{label}" for label in labels]),
        COMPARISONS_CSV: table_csv(comparison_rows, ["finding", "comparison", "estimate", "se", "lo", "hi", "p",
                                                       "p_holm", "sign", "signs_agree", "seed_min", "seed_max"]
                                     + seed_columns),
        SVS_CSV: table_csv(svs_rows, ["class", "delay", "count", "estimate", "se", "lo", "hi", "text_se",
                                             "between_var", "df", "seed_min", "seed_max"] + seed_columns),
        SUMMARY_MD: summary_markdown(directories, labels, runs, finding_rows, comparison_rows, svs_rows,
                                     type_pool.blocks),
    }
    os.makedirs(out_dir, exist_ok=True)
    for name, text in files.items():
        analysis.atomic_write_text(os.path.join(out_dir, name), text)
    return {row[0]: row[1] for row in finding_rows}


def summary_markdown(directories, labels, runs, finding_rows, comparison_rows, svs_rows, blocks):
    doc = Document("The papers' findings across training seeds")
    doc.para(f"{len(runs)} runs of one config that differ only in their training seed, each analysed by "
             f"sg-reproduce over the same validation text in the same {blocks} blocks. The estimand is the recipe "
             "(this config trained with any seed), not one trained model: the seed average of each bias-corrected "
             f"statistic has a 95% interval whose variance adds two parts, the text sampling (the jackknife over the "
             f"blocks the runs share, {blocks - 1} degrees of freedom) and the seeds as a random effect (their "
             "variance net of the text variance each seed carries, over the number of seeds), with Satterthwaite's "
             "degrees of freedom. Each seed's own estimate and their range are shown beside it.")
    doc.table(["run", "folder"] + [f"{name} perplexity" for name in runs[0][3]],
              [[label, directory] + [None if v is None else f"{v:.2f}" for v in run[3].values()]
               for label, directory, run in zip(labels, directories, runs)])
    doc.heading("Verdicts")
    doc.para(f"Pooled rule: a comparison counts as above (below) when the Holm-adjusted p of the seed average, seeds as "
             f"a random effect, is below {verdicts.ALPHA} within its finding; the verdict then follows from those "
             "signs by the single-run report's rules. The per-seed columns are each seed's report alone.")
    doc.table(["finding", "pooled verdict"] + labels, finding_rows)
    doc.heading("Comparisons behind the verdicts")
    doc.para("Seed average (bias-corrected) with its 95% interval (text and seeds) and Holm p, then each seed's "
             "estimate and whether they all have one sign.")
    doc.table(["finding", "comparison", "seed average [95%]", "Holm p", "seed range", "one sign in all seeds"],
              [[r[0], r[1], f"{r[2]:.4g} [{r[4]:.4g}, {r[5]:.4g}]", r[7], f"{r[10]:.4g} to {r[11]:.4g}",
                "yes" if r[9] else "no"] for r in comparison_rows])
    doc.heading("SV sums at the ranking delays")
    doc.para("Bias-corrected SV sum of G·D per class: the seed average with its 95% interval (text and seeds), the "
             "text-sampling se alone, the between-seed sd, and the seeds' range. Where the between-seed sd exceeds "
             "the text se, the training seed moves the answer more than the choice of text does. All delays: "
             "seeds_svs.csv.")
    doc.table(["class", "k", "occurrences", "seed average [95%]", "text se", "between-seed sd", "seed range"],
              [[r[0], r[1], r[2], f"{r[3]:.4g} [{r[5]:.4g}, {r[6]:.4g}]", r[7], r[8] ** 0.5,
                f"{r[10]:.4g} to {r[11]:.4g}"]
               for r in svs_rows if r[1] in findings.RANK_DELAYS and not any(x in r[0] for x in COMBINED)])
    return doc.markdown()
