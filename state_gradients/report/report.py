"""The reproduction report: build_report reads a reproduction folder and writes report.md, report.html and its tables."""
# The report is made from result files (JSON, core/results.py's schema) and CSV only, never from
# printed output: files/run_folder.py names every file of the folder and its writer; the parts
# that a run did not compute are named in the report with the command that computes them.
#   findings.py   the decay fits, class rankings and the papers' findings (point rules and, with
#                 sg-intervals' replicates, families of comparisons under every measure)
#   sections.py   one function per section, writing into a Document
#   document.py   the renderer (Markdown with figure files, self-contained HTML)
#   figures.py    the figures as PNG bytes; readers.py the replicates and the random-direction control
# Writes into DIR: report.md, report.html (figures embedded), figures report_*.png and the
# tables behind them, report_*.csv.
from state_gradients.core.fileio import table_csv, write_bytes
from state_gradients.files.run_folder import RunFolder
from state_gradients.measures import analysis
from state_gradients.report import readers, sections
from state_gradients.report.document import Document
from state_gradients.report.findings import (OVERALL, RANK_DELAYS, class_groups, finding_decay, finding_frequency,
                                             finding_nouns, finding_shrink, fit_decay)


def build_report(directory, title="State-gradient reproduction report"):
    """Write DIR/report.md, report.html, report_*.png and report_*.csv; returns {name: finding verdict}."""
    analysis.check_dir(directory, "reproduce folder")
    run = RunFolder(directory)
    table = run.svs()
    pos_classes, freq_classes = class_groups(table)
    overall = table[OVERALL]
    exp_fit, pow_fit = fit_decay(list(overall), list(overall.values()))
    doc = Document(title)

    # provenance, contents, then the findings (filled in at the end, judged from the sections below)
    sections.provenance_section(doc, directory, run.progress(), run.test_result(), run.pos_mapping_result())
    doc.contents()
    doc.slot("findings")
    sections.svs_section(doc, run, table, pos_classes, freq_classes)
    fits_csv = sections.fits_section(doc, overall, exp_fit, pow_fit)
    rank_tables, ranking_csv = sections.ranking_section(doc, table, pos_classes, freq_classes)
    memory_rows = sections.relative_memory_section(doc, run)
    sections.classifier_section(doc, run)

    # intervals, controls and the findings judged with them; then the classes in context
    reps, context = readers.read_replicates(directory)
    interval_findings, comparison_rows = {}, []
    if reps is not None:
        interval_findings, comparison_rows = sections.interval_sections(doc, reps, pos_classes, freq_classes,
                                                                         overall)
    if context is not None:
        more, rows = sections.context_section(doc, directory, context, reps, pos_classes)
        interval_findings.update(more)
        comparison_rows += rows
    if reps is None:
        doc.heading("Intervals and class-size controls")
        doc.para(f"Not computed: {sections.MISSING['intervals']}. Without them the findings below are point "
                 "estimates.")
    sections.other_measures_section(doc, directory)
    behaviour_rows = sections.behaviour_section(doc, run, reps, pos_classes, freq_classes)

    point = {
        "singular values shrink with delay": finding_shrink(overall),
        "the decay is fast but not exponential": finding_decay(exp_fit, pow_fit),
        "nouns are remembered best among POS classes": finding_nouns(rank_tables.get("POS", {})),
        "infrequent words are remembered better and longer": finding_frequency(table, freq_classes, RANK_DELAYS),
    }
    lead, findings, panel_rows = sections.findings_section(run, point, interval_findings, reps, context, pos_classes,
                                                           freq_classes, overall)
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
    if behaviour_rows:
        files["report_behaviour.csv"] = table_csv(behaviour_rows, ["gradient_measure", "behaviour", "delay", "classes",
                                                                   "rho", "lo", "hi", "p_perm", "p_classes",
                                                                   "verdict"]).encode()
    if comparison_rows:
        files["report_comparisons.csv"] = table_csv(comparison_rows, ["finding", "comparison", "estimate", "se", "lo",
                                                                      "hi", "p", "p_holm", "sign"]).encode()
    files.update(doc.figures)
    files["report.md"] = doc.markdown().encode()
    files["report.html"] = doc.html_page(title).encode()
    for name, data in files.items():
        write_bytes(run.path(name), data)
    return {name: verdict for name, (verdict, _, _) in findings.items()}
