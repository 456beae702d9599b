"""Benchmark: a gradient pass as 1 process against N shards as N concurrent processes, on the same windows."""
# Prints measured figures only: wall time, total CPU time of the processes, the forward pre-pass
# that gives a shard its entering state, and, with --wiki103, the per-window costs that the
# README's WikiText-103 estimate is computed from (a randomly initialised H 512 model: the cost
# does not depend on the weights).
import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAD_KEYS = {"grad_interm": "cell", "time_step": "all", "max_delay": 50, "grad_average": True, "grad_dump": False,
             "batch_size": 1}


def write_config(base, path, **keys):
    with open(base, encoding="utf-8") as handle:
        text = handle.read()
    text += "".join(f"{k} {v}\n" for k, v in keys.items())
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def run_processes(argvs, threads=None):
    """Run the commands concurrently (threads: TensorFlow's intra-op threads each); (wall s, CPU s, outputs)."""
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for argv in argvs]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for p, out in zip(procs, outputs):
        if p.returncode:
            sys.exit(f"a process failed:\n{out[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, outputs


def bench_shards(args):
    tmp = tempfile.mkdtemp(prefix="bench_shards_")
    main = [sys.executable, "-m", "tf_scripts.main", "--notrain", "--notest"]
    keys = dict(GRAD_KEYS, save_path=os.path.abspath(args.model), valid_batches=args.windows,
                log_dir=os.path.join(tmp, "logs"))
    one = write_config(args.config, os.path.join(tmp, "one.config"), grad_dir=os.path.join(tmp, "one"), **keys)
    split = write_config(args.config, os.path.join(tmp, "split.config"), grad_dir=os.path.join(tmp, "split"), **keys)
    wall1, cpu1, _ = run_processes([main + ["--config", one]])
    threads = max(1, (os.cpu_count() or 1) // args.shards)
    walln, cpun, outs = run_processes([main + ["--config", split, "--shard", f"{i}/{args.shards}"]
                                       for i in range(1, args.shards + 1)], threads=threads)
    pre = [float(m.group(1)) for out in outs for m in re.finditer(r"Forward pass over the \d+ batch\(es\)[^:]*: "
                                                                  r"([\d.]+) s", out)]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aux_scripts.merge_gradients", os.path.join(tmp, "split")], cwd=REPO,
                   check=True, capture_output=True)
    merge = time.perf_counter() - start
    print(f"{args.windows} windows (B 1, T 200, all time steps, 50 delays, averages only) of {args.model}")
    print(f"1 process (all cores):       wall {wall1:7.1f} s   CPU {cpu1:7.1f} s")
    print(f"{args.shards} shards as {args.shards} processes, {threads} thread(s) each: wall {walln:7.1f} s   CPU {cpun:7.1f} s   "
          f"(pre-pass forward: {', '.join(f'{p:.2f} s' for p in pre) or 'none'}; merge process {merge:.1f} s)")
    print(f"speed-up {wall1 / walln:.2f}x on {os.cpu_count()} cores; CPU overhead {100 * (cpun / cpu1 - 1):+.0f}%")
    shutil.rmtree(tmp, ignore_errors=True)


def bench_wiki103(args):
    """Per-window costs of the wiki103 config's model (E 64, H 512, T 200, 50 delays, V 267735), random weights."""
    sys.path.insert(0, REPO)
    import numpy as np
    import tensorflow as tf

    from state_gradients.engine.recurrent import StateGradients
    from state_gradients.models.lm import LanguageModel
    from state_gradients.training import run_epoch

    model = LanguageModel(args.vocab, 64, 512, 1, "LSTM", init_scale=0.05)
    ids = np.random.default_rng(0).integers(0, args.vocab, (1, 200)).astype(np.int32)
    engine = StateGradients(model, layer=0, component=0, time_steps=list(range(200)), max_delay=50, num_steps=200)
    masks = np.ones((1, 1, 200), bool)
    state = model.zero_state(1)
    engine.class_sums(ids, state, masks)                               # trace once
    start = time.perf_counter()
    for _ in range(args.repeat):
        engine.class_sums(ids, state, masks)
    per_window = (time.perf_counter() - start) / args.repeat
    step = run_epoch.make_eval_step(model)
    step(ids, ids, state)
    start = time.perf_counter()
    for _ in range(args.repeat):
        step(ids, ids, state)
    eval_cost = (time.perf_counter() - start) / args.repeat
    print(f"wiki103 model (E 64, H 512, V {args.vocab}), one window of 200, 50 delays, all time steps: "
          f"state gradients {per_window:.2f} s, forward + loss {eval_cost:.2f} s ({tf.__version__}, "
          f"{os.cpu_count()} cores)")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=os.path.join(REPO, "config", "ptb-norm-wsj_64e_256h_steps200.config"))
    parser.add_argument("--model", default=os.path.join(REPO, "models", "ptb-norm-wsj_64e_256h_steps200"),
                        help="save_path of the trained model (checkpoint or weights.npz + dict)")
    parser.add_argument("--windows", type=int, default=8, help="validation windows (valid_batches)")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--wiki103", action="store_true", help="also time one window of the wiki103 model")
    parser.add_argument("--vocab", type=int, default=267735, help="wiki103 vocabulary size")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    bench_shards(args)
    if args.wiki103:
        bench_wiki103(args)


if __name__ == "__main__":
    main()
