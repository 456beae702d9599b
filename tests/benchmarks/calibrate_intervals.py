"""Calibration of sg-intervals by simulation: classes with a known ‖μ‖_*, written as block files, through the command."""
# Shape letters: N blocks, D delays (2 here), C classes (the repetitions of one file set), H state, E embedding.
#
# Each regime is a mean μ (k = 0), a smaller mean μ1 = 0.7 μ (k = 1) and a mean with a
# geometric tail μ2 = U diag(s_i · 0.5^i) V^T (k = 2), with isotropic Gaussian noise per
# occurrence whose size is set by the coherence ratio ‖μ‖_F² / E‖G‖_F²; the noise at k = 1 and 2
# is correlated (0.5) with that at k = 0, as the delays of one occurrence are. k = 2 shows the
# method's limit: singular values of the mean below the noise's edge cannot be told from noise
# (to first order they do not raise the SV sum of the average), so they are removed with it and
# the estimate falls short of ‖μ2‖_* by about their sum (reported, not a calibration target). A block's sum of m occurrences is drawn directly (a sum of m Gaussian
# matrices is Gaussian with m times the variance), with multinomial block sizes. Every class of a
# file set is one repetition (the classes share the block sizes, as the classes of a pass share
# the positions); the block files are written in gradient_files' format and read by
# `sg-intervals` (main(argv), in-process) with D = I. Measured per regime and block count, for
# the SV sum at k = 0 and for the ratio k = 1 / k = 0 (its interval from verdicts.Replicates):
# the coverage of the 95% interval, the mean se over the estimates' spread (sd), and the
# estimates' mean error over their spread; and the plain SV sum's error for comparison.
#
#   python tests/benchmarks/calibrate_intervals.py [--reps 1000] [--out docs/results/calibration]
import argparse
import csv
import math
import os
import sys
import tempfile

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from aux_scripts import intervals as sg_intervals  # noqa: E402
from state_gradients.files import gradient_files  # noqa: E402
from state_gradients.measures import intervals, uncertainty, verdicts  # noqa: E402

# name: (H, E, singular values of μ, coherence ratio, occurrences), the four regimes of issue 33
REGIMES = {
    "a": (64, 32, tuple(np.linspace(1.0, 0.2, 32)), 0.1, 20000),
    "b": (64, 32, tuple(np.linspace(1.0, 0.2, 32)), 0.1, 2500),
    "c": (32, 16, (1.0, 0.5, 0.25), 0.05, 2500),
    "d": (32, 16, (1.0, 0.5, 0.25), 0.01, 2500),
}
DESCRIPTIONS = {"a": "H 64 x E 32, full rank, SVs 1 .. 0.2, coherence ratio 0.1, 20,000 occurrences",
                "b": "the same at 2,500 occurrences",
                "c": "H 32 x E 16, SVs 1, 0.5, 0.25, coherence ratio 0.05, 2,500 occurrences",
                "d": "the same at coherence ratio 0.01"}
NOISE_CORRELATION = 0.5     # between the noise at k = 0 and at k = 1 of one occurrence
PER_FILE_SET = 50           # repetitions (classes) per set of block files
COLUMNS = ["regime", "blocks", "reps", "statistic", "truth", "coverage", "se_over_spread", "error_over_spread",
           "plain_error_over_spread", "spread", "mean_se"]


def means(rng, regime):
    """(μ [H, E], μ1 [H, E], μ2 [H, E], per-entry noise sd of one occurrence) of a regime."""
    h, e, svs, ratio, _ = REGIMES[regime]
    r = len(svs)
    u = np.linalg.qr(rng.standard_normal((h, r)))[0]
    v = np.linalg.qr(rng.standard_normal((e, r)))[0]
    mu = u @ np.diag(svs) @ v.T
    mu2 = u @ np.diag(np.array(svs) * 0.5 ** np.arange(r)) @ v.T
    sigma = math.sqrt(np.sum(mu ** 2) * (1 / ratio - 1) / (h * e))
    return mu, 0.7 * mu, mu2, sigma


def write_file_set(folder, rng, delay_means, sigma, occurrences, blocks, classes):
    """Block files of `classes` repetitions of the means at delays 0, 1, ... in GRAD_DIR = folder; returns the block
    sizes [N]."""
    sizes = rng.multinomial(occurrences, np.ones(blocks) / blocks)
    z0 = rng.standard_normal((blocks, classes) + delay_means[0].shape)
    root = np.sqrt(sizes)[:, None, None, None]
    m = sizes[:, None, None, None]
    sums = [m * delay_means[0] + sigma * root * z0]
    for mu in delay_means[1:]:
        z = NOISE_CORRELATION * z0 + math.sqrt(1 - NOISE_CORRELATION ** 2) * rng.standard_normal(z0.shape)
        sums.append(m * mu + sigma * root * z)
    sums = np.stack(sums, axis=1)                                                       # [N, D, C, H, E]
    delays = len(delay_means)
    names = np.array([""] + [f"rep{c}" for c in range(1, classes)])
    os.makedirs(os.path.join(folder, gradient_files.BLOCKS), exist_ok=True)
    for b in range(blocks):
        gradient_files.write_npz(gradient_files.block_path(folder, b + 1), {
            "sums": sums[b].astype(np.float32), "counts": np.full((delays, classes), sizes[b], np.int64),
            "block": np.int64(b + 1), "blocks": np.int64(blocks), "first_batch": np.int64(b),
            "stop_batch": np.int64(b + 1), "delays": np.arange(delays, dtype=np.int64), "classes": names})
    return sizes


def simulate(regime, blocks, reps, seed=0, draws=50, workdir=None):
    """Per repetition: (estimate, se, lo, hi, plain SV sum) at k = 0 ("sv_sum") and k = 2 ("tail"), and (estimate,
    se, lo, hi, NaN) of the ratio k = 1 / k = 0; returns {statistic: (truth, [reps, 5] array)}."""
    rng = np.random.default_rng([seed, ord(regime), blocks])
    mu, mu1, mu2, sigma = means(rng, regime)
    occurrences = REGIMES[regime][4]
    truth0 = float(uncertainty.nuclear_norm(mu))
    truth_ratio = float(uncertainty.nuclear_norm(mu1)) / truth0
    rows = {"sv_sum": [], "ratio": [], "tail": []}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        np.save(os.path.join(tmp, "D.npy"), np.eye(mu.shape[1]))
        done = 0
        while done < reps:
            classes = min(PER_FILE_SET, reps - done)
            folder = os.path.join(tmp, f"set{done}")
            write_file_set(folder, rng, [mu, mu1, mu2], sigma, occurrences, blocks, classes)
            out = os.path.join(folder, "out")
            status = sg_intervals.main([folder, os.path.join(tmp, "D.npy"), "--out", out, "--draws", str(draws),
                                        "--seed", str(done)])
            assert status == 0, status
            table = intervals.read_csv(os.path.join(out, intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
            reps_table = verdicts.Replicates(table, intervals.read_csv(os.path.join(out, intervals.REPLICATES_CSV),
                                                                       intervals.REPLICATE_COLUMNS))
            for r in table:
                if r["delay"] in (0, 2):
                    rows["sv_sum" if r["delay"] == 0 else "tail"].append(
                        (r["estimate"], r["se"], r["lo"], r["hi"], r["sv_sum"]))
            for name in sorted({r["class"] for r in table}):
                s = reps_table.statistic(lambda v, c=name: v[(c, 1)] / v[(c, 0)], [(name, 1), (name, 0)])
                rows["ratio"].append((s["estimate"], s["se"], s["lo"], s["hi"], math.nan))
            done += classes
    return {"sv_sum": (truth0, np.array(rows["sv_sum"])), "ratio": (truth_ratio, np.array(rows["ratio"])),
            "tail": (float(uncertainty.nuclear_norm(mu2)), np.array(rows["tail"]))}


def summary(truth, values):
    """{coverage, se_over_spread, error_over_spread, plain_error_over_spread, spread, mean_se} of simulate's rows."""
    estimate, se, lo, hi, plain = values.T
    spread = float(np.std(estimate, ddof=1))
    return {"truth": truth, "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
            "se_over_spread": float(np.mean(se)) / spread, "error_over_spread": float(np.mean(estimate) - truth) / spread,
            "plain_error_over_spread": float(np.mean(plain) - truth) / spread if np.isfinite(plain).all() else math.nan,
            "spread": spread, "mean_se": float(np.mean(se))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=1000, help="repetitions per regime and block count (default 1000)")
    parser.add_argument("--blocks", default="10,20", help="block counts (default 10,20)")
    parser.add_argument("--regimes", default="abcd", help="regimes (default abcd)")
    parser.add_argument("--out", default=None, help="folder for calibration.csv (default: print only)")
    args = parser.parse_args(argv)
    lines = []
    for regime in args.regimes:
        print(f"regime {regime}: {DESCRIPTIONS[regime]}")
        for blocks in (int(b) for b in args.blocks.split(",")):
            for statistic, (truth, values) in simulate(regime, blocks, args.reps).items():
                s = summary(truth, values)
                lines.append({"regime": regime, "blocks": blocks, "reps": args.reps, "statistic": statistic, **s})
                print(f"  N {blocks:2d} {statistic:6s}: coverage {s['coverage']:.3f}, se / spread "
                      f"{s['se_over_spread']:.2f}, mean error / spread {s['error_over_spread']:+.2f}"
                      + (f" (plain SV sum {s['plain_error_over_spread']:+.1f})" if statistic != "ratio" else ""),
                      flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "calibration.csv"), "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
            writer.writeheader()
            for line in lines:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in line.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
