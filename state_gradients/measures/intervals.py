"""Bias-corrected SV sums of G·D with jackknife intervals, noise floors and coherence from a pass's blocks (sg-intervals' job)."""
# Shape letters: N blocks, D delays, C classes (0 = all words, "overall"), H state, E embedding.
#
# Reads GRAD_DIR/blocks/block_{b}.npz (main.py with grad_blocks N; state_gradients/files/gradient_files.py
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
#     magnitude that their mean keeps, in [0, 1] up to noise; size-free), signal_rank (singular
#     values of the average above the noise's edge), bias_method (BIAS_SIMULATED: the bias
#     simulated from the blocks' noise; BIAS_LEGACY: the generalised jackknife of order 1/2 of
#     files written before 2026-12-07, whose blocks are not kept: restate() gives them the
#     ordinary jackknife's se and keeps their bias). The magnitude and ratio columns exist only
#     at the blocks' gram_delays (every delay since 2026-12-07; 0, 1, 2, 5, 10, 20, 40 before);
#     other delays and blocks without grams give NaN there.
#   replicates.csv  one row per class, delay and block j: the leave-one-block-out values
#     class, delay, block, block_count (occurrences of the class in block j), block_positions
#     (occurrences of all words in block j: the block's size m_j), loo_sv_sum, loo_coherence_sq,
#     loo_magnitude_sq.
#
# Counts are sums of the occurrences' weights: whole numbers (written as integers) unless pos_tokens
# weights tokens. Classes NAME+types-1 .. NAME+types-G (sg-token-classes --type-weighted: a bin's
# word types dealt into G groups, every type weighing the same) also give a class NAME+types, the
# bin with its types weighted equally, whose G "blocks" are the type groups (each group's sums over
# the whole text): its intervals resample types, not text, and its block_positions are the
# groups' sums of weights (about their numbers of types).
#
# state_gradients/measures/uncertainty.py gives the formulas. An interval of any function f of the
# SV sums (differences, ratios, fits) follows from the two files: f of the estimates, and the
# ordinary jackknife (uncertainty.jackknife with exponent None, sizes block_positions) over the
# replicates f(loo_sv_sum - bias) (verdicts.Replicates does this).
import csv
import io
import math
import os
import re

import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL
from state_gradients.files import gradient_files
from state_gradients.measures import analysis, uncertainty

INTERVALS_CSV = "intervals.csv"
REPLICATES_CSV = "replicates.csv"
INTERVAL_COLUMNS = ["class", "delay", "count", "blocks", "sv_sum", "estimate", "bias", "se", "lo", "hi",
                    "noise_floor", "coherence_sq", "coherence_sq_se", "coherence_sq_lo", "coherence_sq_hi",
                    "magnitude_sq", "coherence_ratio", "coherence_ratio_se", "coherence_ratio_lo", "coherence_ratio_hi",
                    "signal_rank", "bias_method"]
# the occurrence measures (blocks of a pass with grad_norm_file; NaN otherwise)
OCCURRENCE_COLUMNS = ["occ_nuclear", "occ_nuclear_se", "occ_nuclear_lo", "occ_nuclear_hi", "output_norm",
                      "output_norm_se", "output_norm_lo", "output_norm_hi", "output_sq", "output_coherence_ratio",
                      "output_coherence_ratio_se", "output_coherence_ratio_lo", "output_coherence_ratio_hi"]
INTERVAL_COLUMNS += OCCURRENCE_COLUMNS
OPTIONAL_COLUMNS = {"signal_rank": "", "bias_method": "jackknife-1/2",    # absent from files written before 2026-12-07
                    **{column: "nan" for column in OCCURRENCE_COLUMNS}}
BIAS_SIMULATED, BIAS_LEGACY = "simulated", OPTIONAL_COLUMNS["bias_method"]
REPLICATE_COLUMNS = ["class", "delay", "block", "block_count", "block_positions", "loo_sv_sum", "loo_coherence_sq",
                     "loo_magnitude_sq", "loo_occ_nuclear", "loo_output_norm", "loo_output_sq",
                     "loo_output_coherence_sq"]
OPTIONAL_COLUMNS.update({column: "nan" for column in REPLICATE_COLUMNS[8:]})


COUNT_COLUMNS = ("count", "block_count", "block_positions")
# the classes of sg-token-classes --type-weighted: NAME+types-G, G = 1, 2, ... -> the family NAME+types
TYPE_GROUP_RE = re.compile(r"^(.+\+types)-([1-9][0-9]*)$")
TYPE_GROUPS = "+types"


def count_value(x):
    """A count as an int when whole (occurrences), else the float sum of weights of a weighted class."""
    x = float(x)
    return int(x) if x.is_integer() else x


def block_arrays(blocks):
    """(sums [N, D, C, H, E] float32, counts [N, D, C], delays, class names with "overall" first, grams {delay:
    [N, C, E(E+1)/2] float32 packed} at the blocks' gram delays, or None for blocks without them) from read_blocks."""
    sums = np.stack([b["sums"] for b in blocks])
    counts = np.stack([b["counts"] for b in blocks]).astype(np.float64)   # sums of weights: whole unless weighted
    names = [OVERALL] + [str(c) for c in blocks[0]["classes"][1:]]
    grams = None
    if all("grams" in b for b in blocks):
        grams = dict(zip((int(k) for k in blocks[0]["gram_delays"]), np.stack([b["grams"] for b in blocks], axis=1)))
    return sums, counts, [int(k) for k in blocks[0]["delays"]], names, grams


def occurrence_arrays(blocks, grad_norm):
    """occurrence [N, D, C, 4 + E] float64 of blocks written with grad_norm_file (None without); UserError when their D
    is not grad_norm (the per-occurrence measures were taken with the pass's D and cannot be rescaled)."""
    if not all("occurrence" in b for b in blocks):
        return None
    if not np.allclose(blocks[0]["norm"], grad_norm, rtol=1e-12, atol=0):
        raise UserError("the blocks' occurrence measures were computed with another gradient normalisation D than "
                        "the one given (grad_norm_file of the pass): give that D")
    occurrence = np.stack([b["occurrence"] for b in blocks]).astype(np.float64)
    if occurrence.shape[-1] != 4 + np.shape(grad_norm)[0]:
        raise UserError(f"the blocks' occurrence measures have {occurrence.shape[-1]} columns, not 4 + E = "
                        f"{4 + np.shape(grad_norm)[0]}: written by another version; rerun the pass")
    return occurrence


def occurrence_statistics(occ, m, positions):
    """Interval columns ({column: [C]}) and replicate columns ({column: [N, C]}) of the occurrence measures at one
    delay: occ [N, C, 4 + E] block sums (state_gradients.occurrence_sums), m [N, C] counts, positions [N] block
    sizes. Means over occurrences (no bias; the nuclear norm's over its sampled occurrences), the output-level
    coherence ratio ‖E[J·D]‖² / E‖J·D‖² with the unbiased cross-block ‖E[J·D]‖²."""
    n = m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        def mean(column, counts=m):
            total, count = occ[..., column].sum(axis=0), counts.sum(axis=0)
            return total / count, (total[None] - occ[..., column]) / (count[None] - counts)
        nuclear, nuclear_loo = mean(0, occ[..., 1])     # over the sampled occurrences, with their own counts
        norm, norm_loo = mean(2)
        square, square_loo = mean(3)
        coh, coh_loo = uncertainty.coherence_squared(occ[..., None, 4:], m)
        ratio_full, ratio_loo = coh / square, coh_loo / square_loo
    if not occ[..., 3].any():            # no output layer (or no occurrence): the J columns are zeros
        norm, square, ratio_full = (np.full(n.shape, np.nan) for _ in range(3))
        norm_loo, square_loo, coh_loo, ratio_loo = (np.full(m.shape, np.nan) for _ in range(4))
    out = {}
    for name, full, loo, exponent in (("occ_nuclear", nuclear, nuclear_loo, None), ("output_norm", norm, norm_loo, None),
                                      ("output_coherence_ratio", ratio_full, ratio_loo, uncertainty.SMOOTH_EXPONENT)):
        j = uncertainty.jackknife(full, loo, positions, exponent=exponent)
        out.update({name: j["value"], f"{name}_se": j["se"],
                    f"{name}_lo": j["lo"], f"{name}_hi": j["hi"]})
    out["output_sq"] = square
    return out, {"loo_occ_nuclear": nuclear_loo, "loo_output_norm": norm_loo, "loo_output_sq": square_loo,
                 "loo_output_coherence_sq": coh_loo}


def statistics(sums, counts, delays, names, grad_norm, draws=50, seed=0, grams=None, occurrence=None):
    """(interval rows, replicate rows) as dicts of INTERVAL_COLUMNS and REPLICATE_COLUMNS, class-major then delay.

    occurrence [N, D, C, 4 + E] (occurrence_arrays) or None (its columns NaN)."""
    blocks = sums.shape[0]
    per_delay = []
    for di, k in enumerate(delays):
        s = sums[:, di].astype(np.float64)                                   # [N, C, H, E]
        m = counts[:, di]                                                    # [N, C]
        full, loo = uncertainty.leave_one_out_means(s, m)
        mean_gd = full @ grad_norm                                           # [C, H, E]: the average G·D
        theta = uncertainty.nuclear_norm(mean_gd)                            # [C]
        theta_loo = uncertainty.nuclear_norm(loo @ grad_norm)                # [N, C]
        positions = m[:, 0]                                                  # block sizes m_j: all words
        noise = uncertainty.simulated_bias(mean_gd, uncertainty.noise_draws(s, m, draws, seed) @ grad_norm)
        sv = uncertainty.jackknife(theta, theta_loo, positions, bias=noise["bias"])
        coh, coh_loo = uncertainty.coherence_squared(s, m, grad_norm)
        co = uncertainty.jackknife(coh, coh_loo, positions, exponent=uncertainty.SMOOTH_EXPONENT)
        floor = noise["noise_floor"]
        if grams is not None and k in grams:
            mag, mag_loo = uncertainty.magnitude_squared(gradient_files.unpack_grams(grams[k]), m, grad_norm)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = uncertainty.jackknife(coh / mag, coh_loo / mag_loo, positions,
                                              exponent=uncertainty.SMOOTH_EXPONENT)
        else:
            mag, mag_loo = np.full(theta.shape, np.nan), np.full(theta_loo.shape, np.nan)
            ratio = {key: np.full(theta.shape, np.nan) for key in ("value", "se", "lo", "hi")}
        if occurrence is not None:
            occ, occ_loo = occurrence_statistics(occurrence[:, di], m, positions)
        else:
            occ = {column: np.full(theta.shape, np.nan) for column in OCCURRENCE_COLUMNS}
            occ_loo = {column: np.full(theta_loo.shape, np.nan) for column in REPLICATE_COLUMNS[8:]}
        per_delay.append((k, m, sv, co, floor, theta_loo, coh_loo, mag, mag_loo, ratio, noise["signal_rank"], occ,
                          occ_loo))
    rows, replicates = [], []
    for c, name in enumerate(names):
        for k, m, sv, co, floor, theta_loo, coh_loo, mag, mag_loo, ratio, rank, occ, occ_loo in per_delay:
            rows.append({"class": name, "delay": k, "count": count_value(m[:, c].sum()), "blocks": blocks,
                         "sv_sum": sv["value"][c], "estimate": sv["estimate"][c], "bias": sv["bias"][c],
                         "se": sv["se"][c], "lo": sv["lo"][c], "hi": sv["hi"][c], "noise_floor": floor[c],
                         "coherence_sq": co["value"][c], "coherence_sq_se": co["se"][c],
                         "coherence_sq_lo": co["lo"][c], "coherence_sq_hi": co["hi"][c],
                         "magnitude_sq": float(mag[c]), "coherence_ratio": ratio["value"][c],
                         "coherence_ratio_se": ratio["se"][c], "coherence_ratio_lo": ratio["lo"][c],
                         "coherence_ratio_hi": ratio["hi"][c], "signal_rank": int(rank[c]),
                         "bias_method": BIAS_SIMULATED, **{key: float(v[c]) for key, v in occ.items()}})
            for j in range(blocks):
                replicates.append({"class": name, "delay": k, "block": j + 1, "block_count": count_value(m[j, c]),
                                   "block_positions": count_value(m[j, 0]), "loo_sv_sum": theta_loo[j, c],
                                   "loo_coherence_sq": coh_loo[j, c], "loo_magnitude_sq": float(mag_loo[j, c]),
                                   **{key: float(v[j, c]) for key, v in occ_loo.items()}})
    return rows, replicates


def type_group_families(names):
    """{family NAME+types: [class index of NAME+types-1, ..., NAME+types-G]} of the classes that sg-token-classes'
    --type-weighted writes (every group 1..G present, G >= 2)."""
    found = {}
    for c, name in enumerate(names):
        match = TYPE_GROUP_RE.match(name)
        if match:
            found.setdefault(match.group(1), {})[int(match.group(2))] = c
    return {family: [groups[g] for g in sorted(groups)] for family, groups in found.items()
            if len(groups) >= 2 and sorted(groups) == list(range(1, len(groups) + 1))}


def type_group_arrays(sums, counts, grams, occurrence, index):
    """The arrays of one family for statistics(), its G type groups as the blocks: every group's sums over the text
    blocks, the family the only class (so that the block sizes m_j are the groups' sums of weights)."""
    regroup = lambda a: np.moveaxis(a[:, :, index].sum(axis=0), 1, 0)[:, :, None]   # noqa: E731  [N, D, C..] -> [G, D, 1..]
    g_sums = regroup(sums.astype(np.float64))
    g_counts = regroup(counts)
    g_grams = None if grams is None else {k: a[:, index].sum(axis=0)[:, None] for k, a in grams.items()}
    g_occ = None if occurrence is None else regroup(occurrence)
    return g_sums, g_counts, g_grams, g_occ


def compute(sums, counts, delays, names, grams, grad_norm, draws=50, seed=0, occurrence=None):
    """statistics() of block_arrays' arrays with D [E, E] (float64), BLAS at one thread; UserError for a D of
    another size."""
    if sums.shape[-1] != np.shape(grad_norm)[0]:
        raise UserError(f"the blocks hold [{sums.shape[-2]}, {sums.shape[-1]}] matrices but the gradient "
                        f"normalisation D is {np.shape(grad_norm)}: the embedding sizes differ")
    # thousands of small SVDs: one BLAS thread each is 4-5x faster than several fighting over 2 cores
    from threadpoolctl import threadpool_limits
    grad_norm = np.asarray(grad_norm, np.float64)
    with threadpool_limits(1):
        rows, replicates = statistics(sums, counts, delays, names, grad_norm, draws, seed, grams, occurrence)
        for family, index in type_group_families(names).items():
            g_sums, g_counts, g_grams, g_occ = type_group_arrays(sums, counts, grams, occurrence, index)
            more, more_replicates = statistics(g_sums, g_counts, delays, [family], grad_norm, draws, seed, g_grams,
                                               g_occ)
            rows += more
            replicates += more_replicates
        return rows, replicates


def csv_text(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: analysis.format_number(value) if isinstance(value, float) else
                         "" if value is None else value for key, value in row.items()})
    return buffer.getvalue()


def from_pass(grad_dir, grad_norm, draws=50, seed=0):
    """compute() of the blocks of the pass in grad_dir: (rows, replicates, class names, delays, number of blocks)."""
    blocks = gradient_files.read_blocks(grad_dir)
    sums, counts, delays, names, grams = block_arrays(blocks)
    if sums.shape[-1] != np.shape(grad_norm)[0]:
        raise UserError(f"the blocks in {grad_dir} hold [{sums.shape[-2]}, {sums.shape[-1]}] matrices but the "
                        f"gradient normalisation D is {np.shape(grad_norm)}: the embedding sizes differ")
    try:
        occurrence = occurrence_arrays(blocks, grad_norm)
    except UserError as err:
        raise UserError(f"{grad_dir}: {err}") from None
    rows, replicates = compute(sums, counts, delays, names, grams, grad_norm, draws, seed, occurrence)
    return rows, replicates, names, delays, sums.shape[0]


def write(directory, rows, replicates):
    """Write replicates.csv, then intervals.csv (the file readers look for first), into directory."""
    os.makedirs(directory, exist_ok=True)
    for name, text in ((REPLICATES_CSV, csv_text(replicates, REPLICATE_COLUMNS)),
                       (INTERVALS_CSV, csv_text(rows, INTERVAL_COLUMNS))):
        analysis.atomic_write_text(os.path.join(directory, name), text)


def read_csv(path, columns):
    """Rows of a CSV written by this tool, numbers as float (int columns as int); UserError naming the file and line.

    OPTIONAL_COLUMNS missing from a file written before them get their defaults (signal_rank None).
    """
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: run sg-intervals first")
    rows = []
    with open(path, encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - set(reader.fieldnames or []) - set(OPTIONAL_COLUMNS)
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected sg-intervals' CSV)")
        defaults = {key: value for key, value in OPTIONAL_COLUMNS.items() if key in columns}
        for lineno, row in enumerate(reader, start=2):
            try:
                rows.append({key: (value if key in ("class", "bias_method") else
                                   (int(value) if value not in ("", "nan") else None) if key == "signal_rank" else
                                   int(value) if key in ("delay", "blocks", "block") else
                                   count_value(float(value)) if key in COUNT_COLUMNS else float(value))
                             for key, value in {**defaults, **row}.items()})
            except ValueError:
                raise UserError(f"{path} line {lineno}: a value is not a number") from None
    return rows


def restate(rows, replicates):
    """Interval rows with the SV sums' se, lo and hi recomputed from the replicates by the ordinary jackknife,
    keeping each row's bias (for files whose blocks are gone: BIAS_LEGACY rows keep their order-1/2 correction)."""
    loo = {}
    for r in replicates:
        loo.setdefault((r["class"], r["delay"]), []).append((r["block"], r["loo_sv_sum"], r["block_positions"]))
    out = []
    for r in rows:
        items = sorted(loo.get((r["class"], r["delay"]), []))
        if not items or not math.isfinite(r["sv_sum"]):
            out.append(dict(r))
            continue
        sv = uncertainty.jackknife(r["sv_sum"], np.array([v for _, v, _ in items]),
                                   np.array([m for _, _, m in items], np.float64), bias=r["bias"])
        out.append({**r, **{key: float(sv[key]) for key in ("estimate", "se", "lo", "hi")}})
    return out
