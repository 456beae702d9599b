"""The main job on the bundled demo corpus: train, state gradients per POS class, SVD table and plot."""
# Shape letters: H state, E embedding, D delays, C classes.
#
#   data/demo (installed as aux_scripts.demo_data); outputs under --out (demo_output/)
#     -> main.py --config config/demo.config                     (train a small LSTM)
#     -> main.py --notrain --notest --config config/demo_grad.config
#                                          (all time steps, streaming per-class averages)
#     -> embedding from weights.npz -> normalize_equal_variance.py  (D with C = D D^T)
#     -> per class and delay: sum of the singular values of G.D    (table: CSV + stdout)
#     -> plot_svs.py                                               (PNG)
#     -> report.py: report.md / report.html                        (as sg-reproduce writes)
import importlib.util
import os
import shutil

import numpy as np

from state_gradients.core import configuration, fileio, results
from state_gradients.core.errors import UserError
from state_gradients.files.run_folder import RunFolder
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import analysis, interpret_state, intervals, perturbation, plot_svs, txray, verdicts
from state_gradients.report import report
from state_gradients.workflows import lm_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The demo's corpus (data/demo/) and configs (config/demo*.config) are installed as the
# data-only packages aux_scripts.demo_data and aux_scripts.demo_configs (see setup.py).
DATA_PACKAGE, DATA_SOURCE = "aux_scripts.demo_data", os.path.join("data", "demo")
CONFIG_PACKAGE, CONFIG_SOURCE = "aux_scripts.demo_configs", "config"
TRAIN_CONFIG, GRAD_CONFIG = "demo.config", "demo_grad.config"
REMEMBERED = "nouns"                      # the class whose number the verb must agree with
FILLERS = ("adjectives", "adverbs")       # i.i.d. filler words: nothing later depends on them
NUMBER_TAGS, FILLER_TAGS = "NN,NNS", "JJ,RB"   # TX-Ray: the subject's number vs the fillers' kind
TXRAY_MAX_DELAY = 12                       # delays 0..11, as max_delay 12 of demo_grad.config
REPORT_TITLE = "State-gradient report: the demo LSTM"
PERTURB_CONFIG = "demo_perturb.config"
# delays spread over the demo's 12, the report's ranking delays 1, 5 and 10 among them (each delay compiles its own
# steps, which costs more than the demo's windows), 10 targets a window, contexts up to its window; its function
# words are its determiners
PERTURB = perturbation.PerturbOptions(delays=(0, 1, 2, 3, 5, 7, 10, 11), contexts=(1, 2, 3, 5, 8, 12, 25),
                                      targets_per_window=10, function=("determiners",))


def svd_table(grad_dir, d_factor, classes):
    """{class: {delay: sum of singular values of G.D}} for 'overall' and each class."""
    table = {}
    for cls in ["overall"] + classes:
        table[cls] = {k: float(analysis.singular_values(np.load(path, allow_pickle=False), d_factor).sum())
                      for k, path in analysis.list_averages(grad_dir, None if cls == "overall" else cls)}
    return table


def write_table(table, path):
    classes = list(table)
    delays = sorted(table["overall"])
    lines = ["delay," + ",".join(classes)]
    lines += [f"{k}," + ",".join(f"{table[c].get(k, float('nan')):.6g}" for c in classes) for k in delays]
    analysis.atomic_write_text(path, "\n".join(lines) + "\n")
    return lines


def terminal_table(table):
    """The SV-sum table for the terminal: 3 significant digits, right-aligned (the CSV keeps 6)."""
    classes = list(table)
    delays = sorted(table["overall"])
    cells = [["delay"] + classes] + [[str(k)] + [f"{table[c].get(k, float('nan')):.3g}" for c in classes] for k in delays]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in cells]


def memory_ratio(table, long_delay):
    """Mean over long delays of the remembered class's SV sum divided by the fillers' mean."""
    long = [k for k in table[REMEMBERED] if k >= long_delay and all(k in table[f] for f in FILLERS)]
    if not long:
        raise UserError(f"no delay >= {long_delay} in the demo's averages (max_delay too small?)")
    remembered = np.mean([table[REMEMBERED][k] for k in long])
    fillers = np.mean([np.mean([table[f][k] for f in FILLERS]) for k in long])
    return remembered / fillers, long


def memory_ratio_interval(out_dir, long):
    """The remembered/filler ratio over delays `long` with its bias-corrected jackknife estimate and 95% interval.

    From out_dir/intervals/ (sg-intervals over the pass's blocks); the statistic is the ratio of
    memory_ratio, recomputed on every leave-one-block-out replicate.
    """
    folder = os.path.join(out_dir, "intervals")
    reps = verdicts.Replicates(intervals.read_csv(os.path.join(folder, intervals.INTERVALS_CSV),
                                                  intervals.INTERVAL_COLUMNS),
                               intervals.read_csv(os.path.join(folder, intervals.REPLICATES_CSV),
                                                  intervals.REPLICATE_COLUMNS))
    keys = [(c, k) for c in (REMEMBERED,) + FILLERS for k in long]

    def ratio(v):
        return np.mean([v[(REMEMBERED, k)] for k in long]) / np.mean([np.mean([v[(f, k)] for f in FILLERS])
                                                                        for k in long])
    return reps.statistic(ratio, keys)


def resource_dir(package, source):
    """The folder of an installed data package, or, in a source checkout installed with -e (whose
    editable finder does not map data-only packages), the source tree's folder."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    folder = os.path.join(REPO, source)
    if os.path.isdir(folder):
        return folder
    raise UserError(f"the demo's files ({package}) are not installed: reinstall the package (pip install .)")


def _demo_config(name, out_dir, data_dir, seed=None, **mode):
    """A demo config with its data paths pointed at data_dir and its outputs moved under out_dir, saved there."""
    config = configuration.load_config(os.path.join(resource_dir(CONFIG_PACKAGE, CONFIG_SOURCE), name), **mode)
    changes = {}
    if seed is not None:
        if seed < 0:
            raise UserError(f"--seed must be >= 0, got {seed}")
        changes["seed"] = seed

    def data(path):   # the shipped configs name their files under data/demo/
        return os.path.join(data_dir, os.path.relpath(path, DATA_SOURCE))
    for key in ("data_path", "pos_mapping"):
        if getattr(config, key):
            changes[key] = data(getattr(config, key))
    if config.pos_classes:
        changes["pos_classes"] = ",".join(data(p) for p in config.pos_classes.split(","))
    for key in ("save_path", "log_dir", "grad_dir"):
        if getattr(config, key):  # the shipped configs write under demo_output/
            changes[key] = os.path.join(out_dir, os.path.relpath(getattr(config, key), "demo_output"))
    path = os.path.join(out_dir, "configs", name)
    config = configuration.derive(config, path=path, train=mode.get("train", True), valid=mode.get("valid", True),
                                  **changes)
    config.save(path)
    return config, path


def run_demo(out_dir="demo_output", fresh=False, long_delay=4, log=print, seed=None, command=None):
    """Run every step of the demo; returns the remembered/filler ratio of singular-value sums.

    seed: the training seed (None: demo.config's); resuming a model of another seed is refused.
    command: the command line as typed, for the report's provenance (OUT/provenance.json).
    """
    data_dir = resource_dir(DATA_PACKAGE, DATA_SOURCE)
    if fresh and os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    fileio.make_dirs(out_dir, "--out")
    train, train_path = _demo_config(TRAIN_CONFIG, out_dir, data_dir, seed=seed)
    grads, grad_path = _demo_config(GRAD_CONFIG, out_dir, data_dir, train=False, test=False)
    steps = [
        ("training the LSTM", ["--config", train_path, "--notest"]),
        ("state gradients, all time steps, per POS class", ["--notrain", "--notest", "--config", grad_path]),
    ]
    for what, argv in steps:
        log(f"== {what}: main.py {' '.join(argv)}")
        if lm_run.run_command(argv) != 0:
            raise UserError(f"the demo stopped at: {what}")

    embedding = SavedModel.from_config(train).read_weights()["embedding"]
    emb_path = os.path.join(out_dir, "embedding.npy")
    analysis.atomic_save_npy(emb_path, embedding)
    log(f"== normalisation: normalize_equal_variance.py {emb_path}")
    paths = analysis.write_normalisation(emb_path)[1]
    d_path = paths["D_norm_grad"]
    d_factor = np.load(d_path, allow_pickle=False)

    classes = [analysis.class_name(p) for p in grads.pos_class_files()]
    table = svd_table(grads.grad_dir, d_factor, classes)
    table_path = os.path.join(out_dir, "svs_table.csv")
    log("== sum of singular values of G.D per delay and class (" + table_path + ")")
    write_table(table, table_path)
    for line in terminal_table(table):
        log("   " + line)
    figure = os.path.join(out_dir, "svs.png")
    plot_svs.write_plot([grads.grad_dir], ["demo LSTM"], ["overall"] + classes, [d_path], figure)
    ratio, long = memory_ratio(table, long_delay)
    log(f"== plot: {figure}")
    log(f"== intervals over {grads.grad_blocks} blocks of the validation text: sg-intervals")
    intervals.write(os.path.join(out_dir, "intervals"), *intervals.from_pass(grads.grad_dir, d_factor)[:2])
    interval = memory_ratio_interval(out_dir, long)
    run_perturb(out_dir, grads, d_path, log)
    results.write_provenance(out_dir, command, epochs_done=SavedModel.from_config(train).epochs_done())
    write_planted_memory(out_dir, ratio, interval, long, grads.grad_blocks)
    report.build_report(out_dir, title=REPORT_TITLE)
    log(f"== report: {os.path.join(out_dir, 'report.md')} and {os.path.join(out_dir, 'report.html')} "
        "(the same report as sg-reproduce's)")
    log(f"Planted memory: at delays {long[0]}..{long[-1]} the {REMEMBERED}' singular-value sum is "
        f"{ratio:.2f}x that of the fillers ({' and '.join(FILLERS)}); bias-corrected {interval['estimate']:.2f}x, "
        f"95% interval [{interval['lo']:.2f}, {interval['hi']:.2f}] over {grads.grad_blocks} blocks of the text "
        "(the spread over training seeds is larger: docs/getting-started.md)")
    return ratio


def run_perturb(out_dir, grads, d_path, log):
    """sg-perturb on the demo's gradient pass (batch_size 1 for one stream of positions): OUT/perturb/, the report's
    behavioural section; the planted dependency is 1-8 words back, so contexts up to one window suffice."""
    path = os.path.join(out_dir, "configs", PERTURB_CONFIG)
    configuration.derive(grads, path=path, train=False, valid=True, batch_size=1, grad_norm_file=d_path).save(path)
    folder = RunFolder(out_dir).perturb
    log(f"== behavioural memory: sg-perturb --config {path} --out {folder} --function {PERTURB.function[0]}")
    perturbation.write_outputs(perturbation.run_perturbation(path, folder, PERTURB, log=log), folder)


def write_planted_memory(out_dir, ratio, interval, long, blocks):
    """OUT/planted_memory.json: the demo's answer, for the report (schema: RunFolder.planted_memory)."""
    results.write_result(RunFolder(out_dir).planted_memory_json, "sg-demo", remembered=REMEMBERED, fillers=list(FILLERS),
                         delays=[int(k) for k in long], ratio=float(ratio), estimate=float(interval["estimate"]),
                         lo=float(interval["lo"]), hi=float(interval["hi"]), blocks=int(blocks))


def sigma_ratio(result, long_delay):
    """Fillers' mean sigma over the remembered class's at delays >= long_delay (> 1: class remembered)."""
    fillers = np.mean([result.mean_sigma(f, long_delay) for f in FILLERS])
    return fillers / result.mean_sigma(REMEMBERED, long_delay)


def run_other_measures(out_dir, long_delay=4, log=print):
    """(sigma ratio, TX-Ray separation excess): sigma per class (Guan et al.); TX-Ray, trained vs untrained."""
    grad_path = os.path.join(out_dir, "configs", GRAD_CONFIG)
    log("== perturbation memory: interpret_state.measure_sigma (180 windows, t = 24, 12 delays)")
    sigma = interpret_state.measure_sigma(grad_path, interpret_state.SigmaOptions(
        windows=180, time_step=24, max_delay=12, steps=200))
    interpret_state.write_outputs(sigma, os.path.join(out_dir, "sigma"))
    ratio = sigma_ratio(sigma, long_delay)
    log(f"Planted memory by sigma: at delays >= {long_delay} the fillers' noise scale is {ratio:.2f}x the "
        f"{REMEMBERED}' (a smaller sigma: the state depends more on the word)")
    trained_seed = configuration.load_config(os.path.join(out_dir, "configs", TRAIN_CONFIG)).seed
    untrained, untrained_path = _demo_config(TRAIN_CONFIG, os.path.join(out_dir, "untrained"),
                                             resource_dir(DATA_PACKAGE, DATA_SOURCE), seed=trained_seed)
    if lm_run.run_command(["--notrain", "--fresh_weights", "--export_weights", "--config", untrained_path]) != 0:
        raise UserError("the demo stopped exporting the untrained weights")
    log("== TX-Ray: txray.run_txray, trained model (A) vs its initial weights (B, the same seed), hidden state h")
    separate = (NUMBER_TAGS, FILLER_TAGS)
    result = txray.run_txray(grad_path, txray.TxrayOptions(weights_b=untrained.save_path, interm="hidden",
                                                           separate=separate, max_delay=TXRAY_MAX_DELAY))
    txray.write_outputs(result, os.path.join(out_dir, "txray"))
    separation = separation_summary(result, long_delay)
    for tags in separate:
        a, b = separation["a", tags], separation["b", tags]
        log(f"TX-Ray: the units separate {tags} of the word k back up to k = {a['span']} in the trained model, "
            f"k = {b['span']} untrained (p < {txray.SPAN_ALPHA} at every delay up to k); over chance at delays "
            f">= {long_delay}: {a['excess']:.4f} trained, {b['excess']:.4f} untrained")
    report.build_report(out_dir, title=REPORT_TITLE)   # again, now with the figures of these measures
    return ratio, separation


def separation_summary(result, long_delay):
    """{(model 'a'|'b', tags): {span, excess}} of a TxrayResult.

    span: txray.separation_span; excess: mean over delays >= long_delay of separation minus chance.
    """
    summary = {}
    for model in ("a", "b"):
        rows = getattr(result, model).separation
        for tags in dict.fromkeys(r["tags"] for r in rows):
            long = [r["separation"] - r["chance"] for r in rows if r["tags"] == tags and r["delay"] >= long_delay]
            if not long:
                raise UserError(f"no delay >= {long_delay} in the TX-Ray separation")
            summary[model, tags] = {"span": result.separation_span(model, tags), "excess": float(np.mean(long))}
    return summary
