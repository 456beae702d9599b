"""Bias-corrected SV sums of G·D with jackknife intervals, noise floors and coherence from a pass's blocks (sg-intervals' job)."""
# Shape letters: N blocks, D delays, C classes (0 = all words, "overall"), H state, E embedding.
#
# Reads GRAD_DIR/blocks/block_{b}.npz (main.py with grad_blocks N; tf_scripts/gradient_files.py
# documents them) and the normalisation D. Writes two CSV files (the schema other tools read):
#
#   intervals.csv   one row per class and delay:
#     class, delay, count (occurrences), blocks (N), sv_sum (SV sum of the average G·D, as
#     svs.csv), estimate, bias, se, lo, hi (bias-corrected SV sum, its jackknife standard error
#     and 95% interval, t with N-1 degrees of freedom), noise_floor (the SV sum that noise alone
#     gives at this count), coherence_sq, coherence_sq_se, coherence_sq_lo, coherence_sq_hi
#     (unbiased ‖E[G·D]‖_F² and its interval), magnitude_sq (the mean over occurrences of
#     ‖G·D‖_F², from the blocks' grams), coherence_ratio, coherence_ratio_se, coherence_ratio_lo,
#     coherence_ratio_hi (coherence_sq / magnitude_sq: the share of the occurrences' squared
#     magnitude that their mean keeps, in [0, 1] up to noise; size-free). Only at the blocks'
#     gram_delays (gradient_files.MAGNITUDE_DELAYS); other delays and blocks without grams (passes
#     before them) give NaN in the magnitude and ratio columns.
#   replicates.csv  one row per class, delay and block j: the leave-one-block-out values
#     class, delay, block, block_count (occurrences of the class in block j), block_positions
#     (occurrences of all words in block j: the block's size m_j), loo_sv_sum, loo_coherence_sq,
#     loo_magnitude_sq.
#
# aux_scripts/uncertainty.py gives the formulas; an interval of any function of the SV sums
# (differences, fits, ratios) follows from replicates.csv with uncertainty.jackknife, the
# sizes being block_positions.
import csv
import io
import os

import numpy as np

from aux_scripts.measures import analysis, uncertainty
from tf_scripts import gradient_files
from tf_scripts.errors import UserError

OVERALL = "overall"
INTERVALS_CSV = "intervals.csv"
REPLICATES_CSV = "replicates.csv"
INTERVAL_COLUMNS = ["class", "delay", "count", "blocks", "sv_sum", "estimate", "bias", "se", "lo", "hi",
                    "noise_floor", "coherence_sq", "coherence_sq_se", "coherence_sq_lo", "coherence_sq_hi",
                    "magnitude_sq", "coherence_ratio", "coherence_ratio_se", "coherence_ratio_lo", "coherence_ratio_hi"]
REPLICATE_COLUMNS = ["class", "delay", "block", "block_count", "block_positions", "loo_sv_sum", "loo_coherence_sq",
                     "loo_magnitude_sq"]


def block_arrays(blocks):
    """(sums [N, D, C, H, E] float32, counts [N, D, C], delays, class names with "overall" first, grams {delay:
    [N, C, E(E+1)/2] float32 packed} at the blocks' gram delays, or None for blocks without them) from read_blocks."""
    sums = np.stack([b["sums"] for b in blocks])
    counts = np.stack([b["counts"] for b in blocks]).astype(np.int64)
    names = [OVERALL] + [str(c) for c in blocks[0]["classes"][1:]]
    grams = None
    if all("grams" in b for b in blocks):
        grams = dict(zip((int(k) for k in blocks[0]["gram_delays"]), np.stack([b["grams"] for b in blocks], axis=1)))
    return sums, counts, [int(k) for k in blocks[0]["delays"]], names, grams


def statistics(sums, counts, delays, names, grad_norm, draws=50, seed=0, grams=None):
    """(interval rows, replicate rows) as dicts of INTERVAL_COLUMNS and REPLICATE_COLUMNS, class-major then delay."""
    blocks = sums.shape[0]
    per_delay = []
    for di, k in enumerate(delays):
        s = sums[:, di].astype(np.float64)                                   # [N, C, H, E]
        m = counts[:, di]                                                    # [N, C]
        full, loo = uncertainty.leave_one_out_means(s, m)
        theta = uncertainty.nuclear_norm(full @ grad_norm)                   # [C]
        theta_loo = uncertainty.nuclear_norm(loo @ grad_norm)                # [N, C]
        positions = m[:, 0]                                                  # block sizes m_j: all words
        sv = uncertainty.jackknife(theta, theta_loo, positions)
        coh, coh_loo = uncertainty.coherence_squared(s, m, grad_norm)
        co = uncertainty.jackknife(coh, coh_loo, positions, exponent=uncertainty.SMOOTH_EXPONENT)
        floor = uncertainty.noise_floor(s, m, grad_norm, draws=draws, seed=seed)
        if grams is not None and k in grams:
            mag, mag_loo = uncertainty.magnitude_squared(gradient_files.unpack_grams(grams[k]), m, grad_norm)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = uncertainty.jackknife(coh / mag, coh_loo / mag_loo, positions,
                                              exponent=uncertainty.SMOOTH_EXPONENT)
        else:
            mag, mag_loo = np.full(theta.shape, np.nan), np.full(theta_loo.shape, np.nan)
            ratio = {key: np.full(theta.shape, np.nan) for key in ("value", "se", "lo", "hi")}
        per_delay.append((k, m, sv, co, floor, theta_loo, coh_loo, mag, mag_loo, ratio))
    rows, replicates = [], []
    for c, name in enumerate(names):
        for k, m, sv, co, floor, theta_loo, coh_loo, mag, mag_loo, ratio in per_delay:
            rows.append({"class": name, "delay": k, "count": int(m[:, c].sum()), "blocks": blocks,
                         "sv_sum": sv["value"][c], "estimate": sv["estimate"][c], "bias": sv["bias"][c],
                         "se": sv["se"][c], "lo": sv["lo"][c], "hi": sv["hi"][c], "noise_floor": floor[c],
                         "coherence_sq": co["value"][c], "coherence_sq_se": co["se"][c],
                         "coherence_sq_lo": co["lo"][c], "coherence_sq_hi": co["hi"][c],
                         "magnitude_sq": float(mag[c]), "coherence_ratio": ratio["value"][c],
                         "coherence_ratio_se": ratio["se"][c], "coherence_ratio_lo": ratio["lo"][c],
                         "coherence_ratio_hi": ratio["hi"][c]})
            for j in range(blocks):
                replicates.append({"class": name, "delay": k, "block": j + 1, "block_count": int(m[j, c]),
                                   "block_positions": int(m[j, 0]), "loo_sv_sum": theta_loo[j, c],
                                   "loo_coherence_sq": coh_loo[j, c], "loo_magnitude_sq": float(mag_loo[j, c])})
    return rows, replicates


def compute(sums, counts, delays, names, grams, grad_norm, draws=50, seed=0):
    """statistics() of block_arrays' arrays with D [E, E] (float64), BLAS at one thread; UserError for a D of
    another size."""
    if sums.shape[-1] != np.shape(grad_norm)[0]:
        raise UserError(f"the blocks hold [{sums.shape[-2]}, {sums.shape[-1]}] matrices but the gradient "
                        f"normalisation D is {np.shape(grad_norm)}: the embedding sizes differ")
    # thousands of small SVDs: one BLAS thread each is 4-5x faster than several fighting over 2 cores
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        return statistics(sums, counts, delays, names, np.asarray(grad_norm, np.float64), draws, seed, grams)


def csv_text(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: analysis.format_number(value) if isinstance(value, float) else value
                         for key, value in row.items()})
    return buffer.getvalue()


def from_pass(grad_dir, grad_norm, draws=50, seed=0):
    """compute() of the blocks of the pass in grad_dir: (rows, replicates, class names, delays, number of blocks)."""
    sums, counts, delays, names, grams = block_arrays(gradient_files.read_blocks(grad_dir))
    if sums.shape[-1] != np.shape(grad_norm)[0]:
        raise UserError(f"the blocks in {grad_dir} hold [{sums.shape[-2]}, {sums.shape[-1]}] matrices but the "
                        f"gradient normalisation D is {np.shape(grad_norm)}: the embedding sizes differ")
    rows, replicates = compute(sums, counts, delays, names, grams, grad_norm, draws, seed)
    return rows, replicates, names, delays, sums.shape[0]


def write(directory, rows, replicates):
    """Write replicates.csv, then intervals.csv (the file readers look for first), into directory."""
    os.makedirs(directory, exist_ok=True)
    for name, text in ((REPLICATES_CSV, csv_text(replicates, REPLICATE_COLUMNS)),
                       (INTERVALS_CSV, csv_text(rows, INTERVAL_COLUMNS))):
        analysis.atomic_write_text(os.path.join(directory, name), text)


def read_csv(path, columns):
    """Rows of a CSV written by this tool, numbers as float (int columns as int); UserError naming the file and line."""
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: run sg-intervals first")
    rows = []
    with open(path, encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected sg-intervals' CSV)")
        for lineno, row in enumerate(reader, start=2):
            try:
                rows.append({key: (value if key == "class" else
                                   int(value) if key in ("delay", "count", "blocks", "block", "block_count",
                                                         "block_positions") else float(value))
                             for key, value in row.items()})
            except ValueError:
                raise UserError(f"{path} line {lineno}: a value is not a number") from None
    return rows
