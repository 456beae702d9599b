"""Time a gradient pass of a reproduce folder without blocks, with blocks, with blocks and the occurrence measures, and sg-intervals; print the figures.

Usage (from the folder sg-reproduce ran in, on a quiet machine):
    python tests/benchmarks/pass_overhead.py RUN_DIR [--config gradients.config] [--valid-windows N]
RUN_DIR is sg-reproduce's --out; the passes write into RUN_DIR/bench_*/ (removed afterwards).
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from aux_scripts import intervals as sg_intervals  # noqa: E402
from tf_scripts import main as sg_main  # noqa: E402


def _variant(source, target, grad_dir, blocks, valid_windows, norm=None):
    """A copy of config `source` with its grad_dir moved, grad_blocks set (or removed) and grad_norm_file set to norm
    (or removed)."""
    lines = []
    for line in open(source, encoding="utf-8"):
        key = line.split()[0] if line.split() else ""
        if key in ("grad_dir", "grad_blocks", "log", "grad_norm_file") or (valid_windows and key == "valid_batches"):
            continue
        lines.append(line)
    lines.append(f"grad_dir\t{grad_dir}\nlog\t{os.path.basename(grad_dir)}\n")
    if blocks:
        lines.append(f"grad_blocks\t{blocks}\n")
    if norm:
        lines.append(f"grad_norm_file\t{norm}\n")
    if valid_windows:
        lines.append(f"valid_batches\t{valid_windows}\n")
    with open(target, "w", encoding="utf-8") as handle:
        handle.writelines(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--config", default="gradients.config", help="a config in RUN_DIR/configs/")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--valid-windows", type=int, default=None)
    args = parser.parse_args(argv)
    source = os.path.join(args.run_dir, "configs", args.config)
    figures = {}
    d = os.path.join(args.run_dir, "embedding_D_norm_grad.npy")
    for name, blocks, norm in (("without blocks", 0, None), (f"with {args.blocks} blocks", args.blocks, None),
                               (f"with {args.blocks} blocks and the occurrence measures", args.blocks, d)):
        grad_dir = os.path.join(args.run_dir, f"bench_{blocks}{'_norm' if norm else ''}")
        shutil.rmtree(grad_dir, ignore_errors=True)
        config = grad_dir + ".config"
        _variant(source, config, grad_dir, blocks, args.valid_windows, norm)
        began = time.perf_counter()
        if sg_main.main(["--notrain", "--notest", "--config", config]) != 0:
            raise SystemExit(f"the pass {name} failed")
        figures[name] = time.perf_counter() - began
        if norm:
            began = time.perf_counter()
            if sg_intervals.main([grad_dir, d, "--out", grad_dir + "_intervals"]) != 0:
                raise SystemExit("sg-intervals failed")
            figures["sg-intervals"] = time.perf_counter() - began
        shutil.rmtree(grad_dir, ignore_errors=True)
        shutil.rmtree(grad_dir + "_intervals", ignore_errors=True)
        os.remove(config)
    plain = figures["without blocks"]
    for name, seconds in figures.items():
        print(f"{name}: {seconds:.1f} s")
    with_all = figures[f"with {args.blocks} blocks and the occurrence measures"] + figures["sg-intervals"]
    print(f"occurrence measures / blocks alone: "
          f"{figures[f'with {args.blocks} blocks and the occurrence measures'] / figures[f'with {args.blocks} blocks']:.3f}")
    print(f"with blocks, occurrence measures and intervals / without: {with_all / plain:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
