"""Time the same gradient pass with two checkouts of this project, interleaved; print each run and the ratio.

Usage (on a quiet machine; the shared PTB model and data by default):
    python tests/benchmarks/pass_side_by_side.py --a OLD_CHECKOUT --b NEW_CHECKOUT [--windows 6] [--repeat 3]
Each run is `main.py --notrain --notest` of one config (B 1, T 200, all time steps, 50 delays,
streaming averages, min(20, windows) blocks: sg-reproduce's pass without the classes) in a fresh process
with that checkout first on sys.path, into a fresh grad_dir; the time is main(argv)'s, with
TensorFlow imported before it (its import is no part of the pass). Runs alternate A, B, A, B, ... so that drifts hit both.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
# TensorFlow is imported before the clock starts: main.py loads it after parsing its arguments
# (since the quiet-terminal change), older checkouts at import, and its import time is no part of a pass
RUN = ("import sys, time; sys.path.insert(0, sys.argv[1]); import tensorflow; from tf_scripts import main; "
       "began = time.perf_counter(); status = main.main(['--notrain', '--notest', '--config', sys.argv[2]]); "
       "print('SECONDS', time.perf_counter() - began, status)")


def _config(folder, model, data, windows, grad_dir):
    """The pass's config: the paper model's keys (config.resolved) with the gradient keys of sg-reproduce."""
    keep = ("basic_cell", "num_layers", "embedding_size", "size", "forget_bias", "init_scale", "softmax", "vocab",
            "num_steps")
    lines = [line for line in open(os.path.join(model, "config.resolved"), encoding="utf-8")
             if line.split() and line.split()[0] in keep]
    lines += [f"{k}\t{v}\n" for k, v in (("data_path", data), ("save_path", os.path.join(folder, "model")),
                                         ("log_dir", os.path.join(folder, "logs")), ("batch_size", 1),
                                         ("grad_interm", "cell"), ("time_step", "all"), ("max_delay", 50),
                                         ("grad_average", True), ("grad_dump", False), ("grad_blocks", min(20, windows)),
                                         ("valid_batches", windows), ("grad_dir", grad_dir))]
    path = grad_dir + ".config"
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a", required=True, help="checkout A (e.g. the code at the start of an issue)")
    parser.add_argument("--b", default=REPO, help="checkout B (default: this one)")
    parser.add_argument("--model", default=os.path.join(SHARED, "models", "ptb-norm-wsj_64e_256h_steps200"))
    parser.add_argument("--data", default=os.path.join(SHARED, "data", "ptb"))
    parser.add_argument("--windows", type=int, default=6, help="validation windows (valid_batches)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="side_by_side_")
    os.makedirs(os.path.join(folder, "model"))
    for name in ("weights.npz", "dict"):       # a copy: the pass writes labels.tsv into save_path
        shutil.copy(os.path.join(args.model, name), os.path.join(folder, "model", name))
    times = {"A": [], "B": []}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for run in range(args.repeat):
        for label, checkout in (("A", args.a), ("B", args.b)):
            grad_dir = os.path.join(folder, f"grads_{label}_{run}")
            config = _config(folder, args.model, args.data, args.windows, grad_dir)
            done = subprocess.run([sys.executable, "-c", RUN, os.path.abspath(checkout), config], env=env,
                                  capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("SECONDS")), None)
            if done.returncode != 0 or line is None or line.split()[2] != "0":
                raise SystemExit(f"run {label}{run} failed:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
            seconds = float(line.split()[1])
            times[label].append(seconds)
            print(f"{label} run {run + 1}: {seconds:.2f} s ({checkout})", flush=True)
            shutil.rmtree(grad_dir)
    a, b = statistics.median(times["A"]), statistics.median(times["B"])
    print(f"median A {a:.2f} s, B {b:.2f} s: B/A = {b / a:.3f} ({args.windows} windows, {args.repeat} runs each)")
    shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
