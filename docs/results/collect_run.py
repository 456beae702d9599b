"""Copy the committed part of an sg-reproduce folder (report, figures, tables; no .npy, no weights) into docs/results/.

Usage, from the repository root: python docs/results/collect_run.py RUN_DIR docs/results/NAME
The files are those that docs/results/ptb-64e-256h/README.md lists; step_times.tsv is made from
RUN_DIR/steps/*.json (each step's recorded seconds, and the time its record was written).
"""
import datetime
import glob
import json
import os
import shutil
import sys

PATTERNS = ["report.md", "report.html", "report_*.png", "report_*.csv", "svs.csv", "svs.png", "svs_in_context.csv",
            "svs_in_context.png", "diff/*.txt", "intervals/intervals.csv", "intervals/replicates.csv",
            "tagger/tagger.json", "provenance.json", "planted_memory.json", "perturb/perturbation.csv",
            "perturb/perturbation_replicates.csv", "gradients/grad_progress.json"]
RENAMED = {"classifier/pos.log": "classifier.log", "pos_mapping.log": "pos_mapping.log",
           "classes/freq/freq_bins.csv": "freq_bins.csv"}


def collect(run, dest):
    copied = []
    for pattern in PATTERNS:
        for path in sorted(glob.glob(os.path.join(run, pattern))):
            copied.append((path, os.path.join(dest, os.path.relpath(path, run))))
    for source, name in RENAMED.items():
        if os.path.isfile(os.path.join(run, source)):
            copied.append((os.path.join(run, source), os.path.join(dest, name)))
    for path in sorted(glob.glob(os.path.join(run, "in_context", "classes", "ctx_*.txt"))):
        copied.append((path, os.path.join(dest, "in_context_classes", os.path.basename(path))))
    for source, target in copied:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
    steps = []
    for record in glob.glob(os.path.join(run, "steps", "*.json")):
        with open(record, encoding="utf-8") as handle:
            seconds = json.load(handle).get("seconds")
        stamp = datetime.datetime.fromtimestamp(os.path.getmtime(record)).strftime("%Y-%m-%d %H:%M:%S")
        steps.append((stamp, os.path.basename(record)[:-5], seconds))
    with open(os.path.join(dest, "step_times.tsv"), "w", encoding="utf-8") as handle:
        for stamp, name, seconds in sorted(steps):
            handle.write(f"{stamp}\t{name}\t{seconds} s\n")
    return [target for _, target in copied]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    for path in collect(sys.argv[1], sys.argv[2]):
        print("copied", path)
