"""Every path of a reproduction folder (sg-reproduce, sg-demo) and typed readers of its TensorFlow-free files."""
# Shape letters: K delays.
#
# DIR/ (the writer of each file in brackets; sg-report reads them, none is parsed from printed output):
#   configs/{model,embedding,gradients}.config   [sg-reproduce] the run's configs (sg-demo: demo_grad.config)
#   model/                              [main.py] the trained model (a SavedModel folder)
#   test_perplexity.json, .txt          [main.py --result] the test perplexity
#   pos_mapping.json, .log, pos_mapping_pos.txt   [sg-build-pos-mapping --result] coverage; the POS-only mapping
#   classes/pos_mapping.txt, classes/*  [sg-build-pos-classes] the POS class files
#   classes/freq/freq_bins.csv          [sg-freq-classes] the frequency bins
#   tagger/tagger.json                  [sg-pos-tagger] held-out accuracy of the tagger (with --pos-data)
#   in_context/                         [sg-token-classes] the tags in context
#   gradients/                          [main.py] averages delay_{k}_avg*.npy, counts, grad_progress.json, blocks/
#   embedding.npy, embedding_{D_norm_grad,Z_norm_emb}.npy   [sg-normalize-equal-variance] D and Z of the embedding
#   svs.csv, svs.png, svs_in_context.*  [sg-plot-svs] the SV sums per class and delay (the papers' figure)
#   intervals/intervals.csv, replicates.csv   [sg-intervals] intervals, per-block replicates
#   classifier/pos.json, classifier/pos_avg_*.npy   [sg-pos-classifier --result] scores; class mean embeddings
#   diff/{A}-{B}.npy, diff/{A}-{B}_{relative_memory,cos_subspace}.{txt,json}   [sg-diff-vector and the two tools]
#   sigma.csv, sigma.png                [sg-interpret-state] σ (sg-demo --measures)
#   txray_separation.csv, .png          [sg-txray] TX-Ray (sg-demo --measures)
#   perturb/perturbation.csv, perturbation_replicates.csv   [sg-perturb] behavioural memory, its replicates
#   planted_memory.json                 [sg-demo] the demo's answer
#   provenance.json                     [sg-reproduce, sg-demo] how the folder was made
#   logs/{step}.out                     [sg-reproduce] each step's printed output
#   report.md, report.html, report_*    [sg-report]
import csv
import dataclasses
import glob
import json
import math
import os

from state_gradients.core import results
from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL
from state_gradients.files.gradient_files import PROGRESS_FILE

CONFIG_CANDIDATES = (os.path.join("configs", "gradients.config"), os.path.join("configs", "demo_grad.config"))


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """The files of one reproduction folder `root` by name; readers return None (or {}) for a part not computed."""
    root: str

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    # -- what the steps write
    configs = property(lambda self: self.path("configs"))
    model = property(lambda self: self.path("model"))
    logs = property(lambda self: self.path("logs"))
    test_perplexity_json = property(lambda self: self.path("test_perplexity.json"))
    test_perplexity_txt = property(lambda self: self.path("test_perplexity.txt"))
    pos_mapping_json = property(lambda self: self.path("pos_mapping.json"))
    pos_mapping_log = property(lambda self: self.path("pos_mapping.log"))
    pos_mapping_pos = property(lambda self: self.path("pos_mapping_pos.txt"))
    classes = property(lambda self: self.path("classes"))
    class_mapping = property(lambda self: self.path("classes", "pos_mapping.txt"))
    freq_classes = property(lambda self: self.path("classes", "freq"))
    freq_bins = property(lambda self: self.path("classes", "freq", "freq_bins.csv"))
    tagger = property(lambda self: self.path("tagger"))
    tagger_json = property(lambda self: self.path("tagger", "tagger.json"))
    in_context = property(lambda self: self.path("in_context"))
    gradients = property(lambda self: self.path("gradients"))
    progress_json = property(lambda self: self.path("gradients", PROGRESS_FILE))
    embedding = property(lambda self: self.path("embedding.npy"))
    d_norm = property(lambda self: self.path("embedding_D_norm_grad.npy"))
    z_norm = property(lambda self: self.path("embedding_Z_norm_emb.npy"))
    svs_csv = property(lambda self: self.path("svs.csv"))
    svs_png = property(lambda self: self.path("svs.png"))
    intervals = property(lambda self: self.path("intervals"))
    classifier = property(lambda self: self.path("classifier"))
    classifier_json = property(lambda self: self.path("classifier", "pos.json"))
    diff = property(lambda self: self.path("diff"))
    sigma_csv = property(lambda self: self.path("sigma.csv"))
    sigma_png = property(lambda self: self.path("sigma.png"))
    perturb = property(lambda self: self.path("perturb"))
    txray_csv = property(lambda self: self.path("txray_separation.csv"))
    txray_png = property(lambda self: self.path("txray_separation.png"))
    planted_memory_json = property(lambda self: self.path("planted_memory.json"))
    provenance_json = property(lambda self: self.path(results.PROVENANCE))
    report_md = property(lambda self: self.path("report.md"))
    report_html = property(lambda self: self.path("report.html"))

    def gradient_average(self, k):
        """The pass's overall average G at delay k [H, E] (.npy)."""
        return self.path("gradients", f"delay_{k}_avg.npy")

    def relative_memory_json(self, name):
        return self.path("diff", f"{name}_relative_memory.json")

    def cos_subspace_json(self, name):
        return self.path("diff", f"{name}_cos_subspace.json")

    def log(self, step):
        return self.path("logs", f"{step}.out")

    # -- readers
    def svs(self):
        """{class: {delay: sum}} of svs.csv (required: UserError when missing)."""
        return read_svs(self.svs_csv)

    def text(self, path):
        """The text of one of the folder's files, or None when it does not exist."""
        return open(path, encoding="utf-8").read() if os.path.isfile(path) else None

    def progress(self):
        """gradients/grad_progress.json as a dict ({} when the pass did not write it)."""
        text = self.text(self.progress_json)
        return json.loads(text) if text else {}

    def test_result(self):
        return results.read_result_if(self.test_perplexity_json, "main.py")

    def test_perplexity(self):
        """The test perplexity (main.py --result), or None when not computed."""
        result = self.test_result()
        return None if result is None else result["test_perplexity"]

    def pos_mapping_result(self):
        return results.read_result_if(self.pos_mapping_json, "sg-build-pos-mapping")

    def classifier_result(self):
        return results.read_result_if(self.classifier_json, "sg-pos-classifier")

    def provenance(self):
        return results.read_result_if(self.provenance_json, "provenance")

    def planted_memory(self):
        """The demo's answer (sg-demo's planted_memory.json: remembered, fillers, delays, ratio, estimate, lo, hi,
        blocks), or None."""
        return results.read_result_if(self.planted_memory_json, "sg-demo")

    def difference_names(self):
        """The difference vectors (A-B) that have a relative-memory result, in name order."""
        suffix = "_relative_memory.json"
        return [os.path.basename(f)[:-len(suffix)] for f in sorted(glob.glob(self.path("diff", f"*{suffix}")))]

    def config_values(self):
        """(path, {key: raw value}) of the run's gradient config in configs/, or (None, {})."""
        for relative in CONFIG_CANDIDATES + tuple(sorted(glob.glob(self.path("configs", "*.config")))):
            path = relative if os.path.isabs(relative) else self.path(relative)
            if os.path.isfile(path):
                from state_gradients.core import configuration

                return path, {key: value for _, key, value in configuration.read_config_lines(path)}
        return None, {}


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


def read_delay_series(path, tool, field):
    """{delay: value} of one field of a per-delay result file (sg-relative-memory, sg-cos-subspace-diff-vector),
    NaN for null; None when the file does not exist."""
    result = results.read_result_if(path, tool)
    if result is None:
        return None
    return {int(k): math.nan if v is None else float(v) for k, v in zip(result["delays"], result[field])}


# What makes two gradient passes passes over the same text, targets and classes (grad_progress.json's keys): the
# windows read, the target positions, the delays, the blocks and the classes. A model's own values (its
# perplexity, the config's path, the fingerprint that hashes the model) may differ.
SAME_PASS_KEYS = ("batches", "time_steps", "delays", "grad_blocks", "classes")


def check_same_pass(directories):
    """UserError unless every run folder's gradients/grad_progress.json records the same number of windows, target
    positions in a window, delays, blocks and classes (SAME_PASS_KEYS), or some folders have the file and others
    not; when none has it (committed parts of older runs), the callers' per-block occurrence counts are the
    check. Which windows (the text itself) is checked only through those counts."""
    records = [(d, RunFolder(d).progress()) for d in directories]
    missing = [d for d, r in records if not r]
    if missing and len(missing) < len(records):
        raise UserError(f"{', '.join(missing)}: no gradients/grad_progress.json, while the other runs have one: their "
                        "passes cannot be checked against each other (collect every run with the same tool version)")
    records = [(d, r) for d, r in records if r]
    for directory, record in records[1:]:
        first, want = records[0]
        for key in SAME_PASS_KEYS:
            if record.get(key) != want.get(key):
                raise UserError(f"{directory} and {first}: the gradient passes differ in {key} ("
                                f"{_short(record.get(key))} vs {_short(want.get(key))}): compare and pool runs over "
                                "the same validation windows, targets and classes (sg-reproduce --valid-windows, "
                                "--same-targets, --pos-data)")


def _short(value, limit=60):
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
