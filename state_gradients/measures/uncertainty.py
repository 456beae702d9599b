"""Uncertainty from block sums: the SV sum's simulated bias, the delete-one-block jackknife, noise floor, coherence, magnitude, Holm, Wilson."""
# Shape letters: N blocks, B noise draws, H state, E embedding; "..." is any shape of statistics (classes, delays).
#
# The estimand of a class c at delay k is ‖E[G·D | c, k]‖_*, the sum of singular values of the
# expected state gradient of this model on this text distribution. The plain estimate theta, the
# SV sum of the validation average, is biased upwards (the nuclear norm is convex), and the order
# of the bias depends on the regime: where the mean fills every direction well above the noise
# (large classes, small delays) the noise only perturbs its singular values, a bias of order
# n^(-1); where the mean leaves directions empty (low rank, small classes, long delays) the noise
# adds singular values there, a bias of order n^(-1/2). The validation text is cut into N
# contiguous blocks (the gradient pass's grad_blocks), treated as independent units of text.
#
# Bias (simulated_bias): a bootstrap bias estimate around a denoised mean. The average's noise is
# drawn from the blocks' residuals (random-sign combinations of the centred block sums, which
# have the covariance of the average's noise: noise_draws); the denoised mean keeps the singular
# directions of the average above the noise's edge (the draws' mean largest singular value); the
# bias is the mean SV sum of the denoised mean plus a draw (antithetic pairs +-Z) minus the SV
# sum of the denoised mean. The order of the bias is not assumed: the simulation reproduces
# n^(-1) where nothing is cut and n^(-1/2) in the empty directions, whatever the mixture.
# Estimate = theta - bias.
#
# Standard error: the ordinary (a = 1) delete-m_j jackknife of Busing, Meijer and van der Leeden
# (1999, "Delete-m jackknife for unequal m", Statistics and Computing 9: 3-8), with m_j the size
# of block j, n = sum m_j, h_j = n / m_j, theta_j the statistic without block j:
#     pseudo-values p_j = h_j theta - (h_j - 1) theta_j,  J = N theta - sum_j (1 - m_j / n) theta_j,
#     se^2 = (1 / N) sum_j (p_j - J)^2 / (h_j - 1),
# and the interval estimate -/+ t_{N-1, 0.975} se. A derived statistic f (a difference, ratio, fit)
# takes the same jackknife over the replicates f(theta_j - bias): the bias correction shifts every
# replicate alike, so the se is that of f, and the interval is an interval of f itself.
# Why this pair: tests/benchmarks/calibrate_intervals.py simulates four regimes (full rank and
# signal-dominated at 20,000 and 2,500 occurrences; rank 3 and noise-heavy at coherence ratios
# 0.05 and 0.01) at 10 and 20 blocks. The earlier generalised jackknife of order 1/2 had a
# standard error 2.05 times the ordinary one's at 10 blocks and over-corrected the bias of the
# signal-dominated classes; order 1 left most of the bias of the noise-heavy ones; the bias of
# the pair above stays within a fraction of the spread and the se within 0.8-1.25 of it in all
# four (docs/intervals.md gives the figures).
import concurrent.futures
import math
import os

import numpy as np

SMOOTH_EXPONENT = 1.0  # bias order n^(-1) of smooth statistics (the ordinary jackknife)
LEVEL = 0.95


def _finite_map(fn, matrices, tail):
    """fn over the finite matrices of [..., H, E] -> [..., *tail] (NaN where a matrix has a NaN: an empty average).

    numpy's batched SVD runs on one core and releases the GIL: one chunk per core (the same LAPACK
    call per matrix, so the same values); callers keep BLAS at one thread (sg-intervals does).
    """
    matrices = np.asarray(matrices, np.float64)
    out = np.full(matrices.shape[:-2] + tail, np.nan)
    finite = np.isfinite(matrices).all(axis=(-2, -1))
    stack = matrices[finite]
    if len(stack):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(cores, max(1, len(stack) // 64))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            out[finite] = np.concatenate(list(pool.map(fn, np.array_split(stack, workers))))
    return out


def singular_values(matrices):
    """Singular values of [..., H, E] -> [..., min(H, E)], largest first (float64; NaN rows for NaN matrices)."""
    matrices = np.asarray(matrices)
    return _finite_map(lambda chunk: np.linalg.svd(chunk, compute_uv=False), matrices, (min(matrices.shape[-2:]),))


def nuclear_norm(matrices):
    """Sum of singular values of [..., H, E] -> [...] (float64); NaN for a matrix with a NaN (an empty average)."""
    return _finite_map(lambda chunk: np.linalg.svd(chunk, compute_uv=False).sum(axis=-1), matrices, ())


def leave_one_out_means(sums, counts):
    """The mean of all blocks and of all blocks but j: sums [N, ..., H, E], counts [N, ...] -> ([..., H, E], [N, ..., H, E]).

    A statistic with no occurrence left gives NaN.
    """
    sums = np.asarray(sums, np.float64)
    counts = np.asarray(counts, np.float64)
    total, n = sums.sum(axis=0), counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = total / n[..., None, None]
        loo = (total[None] - sums) / (n[None] - counts)[..., None, None]
    return full, loo


def jackknife(full, loo, sizes, exponent=SMOOTH_EXPONENT, level=LEVEL, bias=None):
    """Estimate, standard error and interval of a statistic from its leave-one-block-out values.

    Args:
        full [...]: the statistic on all blocks.
        loo [N, ...]: the statistic on all blocks but j.
        sizes [N] or [N, ...]: the blocks' sizes m_j.
        exponent: the order a of a bias n^(-a) removed by the generalised jackknife (Gray and
            Schucany 1972: estimate = theta - sum_j (m_j / n)(theta_j - theta) / (rho_j - 1),
            rho_j = (n / (n - m_j))^a; 1 is Quenouille's ordinary jackknife), or None for no
            correction (a statistic that is unbiased, or built from bias-corrected replicates).
        bias [...]: a bias estimated elsewhere (simulated_bias), subtracted instead; exponent is
            then ignored.

    Returns:
        dict of arrays [...]: value (= full), estimate, bias, se, lo, hi, df (N - 1). The se is
        always the ordinary delete-m_j jackknife's (module comment), whatever the correction.
    """
    import scipy.stats  # here: half a second to import, and --help needs none of it

    full = np.asarray(full, np.float64)
    loo = np.asarray(loo, np.float64)
    sizes = np.asarray(sizes, np.float64)
    blocks = loo.shape[0]
    sizes = sizes.reshape(sizes.shape + (1,) * (loo.ndim - sizes.ndim))
    n = sizes.sum(axis=0)
    share = sizes / n
    with np.errstate(invalid="ignore", divide="ignore"):     # a statistic with no occurrence is NaN throughout
        if bias is not None:
            bias = np.broadcast_to(np.asarray(bias, np.float64), full.shape)
        elif exponent is None:
            bias = np.zeros(full.shape)
        else:
            rho = (n / (n - sizes)) ** exponent
            bias = np.sum(share * (loo - full) / (rho - 1), axis=0)
        estimate = full - bias
        h = n / sizes
        pseudo = h * full - (h - 1) * loo
        centre = blocks * full - np.sum((1 - share) * loo, axis=0)
        se = np.sqrt(np.sum((pseudo - centre) ** 2 / (h - 1), axis=0) / blocks)
    half = scipy.stats.t.ppf(0.5 + level / 2, blocks - 1) * se
    return {"value": full, "estimate": estimate, "bias": bias, "se": se, "lo": estimate - half,
            "hi": estimate + half, "df": blocks - 1}


def noise_draws(sums, counts, draws=50, seed=0):
    """Draws of the average's noise: sums [N, ..., H, E], counts [N, ...] -> [draws, ..., H, E].

    The centred block sums S_j - m_j·mean carry the average's noise; combined with random signs
    s_j = ±1 and scaled by sqrt(N / (N - 1)) (the centring removes one degree of freedom), the
    noise average (1/n) sum_j s_j (S_j - m_j·mean) has the covariance of the average's noise and
    no mean. A block with no occurrence of a statistic adds nothing to it.
    """
    sums = np.asarray(sums, np.float64)
    counts = np.asarray(counts, np.float64)
    blocks = sums.shape[0]
    full, _ = leave_one_out_means(sums, counts)
    centred = sums - counts[..., None, None] * full[None]
    n = counts.sum(axis=0)[..., None, None]
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, blocks))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.tensordot(signs, centred, axes=1) / n * math.sqrt(blocks / (blocks - 1))


def noise_floor(sums, counts, grad_norm=None, draws=50, seed=0):
    """Expected SV sum of the average's noise alone, per statistic: sums [N, ..., H, E], counts [N, ...] -> [...].

    The mean SV sum of noise_draws (times D when given): the value that a class with no memory
    at all would show at this count.
    """
    noise = noise_draws(sums, counts, draws, seed)
    if grad_norm is not None:
        noise = noise @ grad_norm
    return nuclear_norm(noise).mean(axis=0)     # all draws in one batch of SVDs


def simulated_bias(full, noise):
    """Bias of the SV sum of an average, from draws of its noise around the denoised average (module comment).

    Args:
        full [..., H, E]: the average (times D).
        noise [B, ..., H, E]: draws of its noise (noise_draws, times D).

    Returns:
        dict of arrays [...]: bias (E‖denoised + Z‖_* - ‖denoised‖_*, over the draws and their
        negatives), noise_floor (the draws' mean SV sum), edge (their mean largest singular value)
        and signal_rank (the average's singular values above the edge, those the denoised mean keeps).
        An average without noise (every block alike) has bias 0 and keeps every direction.
    """
    full = np.asarray(full, np.float64)
    noise = np.asarray(noise, np.float64)
    noise_sv = singular_values(noise)                                        # [B, ..., r]
    floor, edge = noise_sv.sum(axis=-1).mean(axis=0), noise_sv[..., 0].mean(axis=0)
    out = np.full(full.shape[:-2], np.nan)
    rank = np.zeros(full.shape[:-2], np.int64)
    denoised = np.full(full.shape, np.nan)
    finite = np.isfinite(full).all(axis=(-2, -1)) & np.isfinite(edge)
    if finite.any():
        u, s, vt = np.linalg.svd(full[finite], full_matrices=False)
        kept = np.where(s > edge[finite][..., None], s, 0.0)
        denoised[finite] = (u * kept[..., None, :]) @ vt
        rank[finite] = np.count_nonzero(kept, axis=-1)
        out[finite] = -kept.sum(axis=-1)
    plus = nuclear_norm(denoised[None] + noise).mean(axis=0)
    minus = nuclear_norm(denoised[None] - noise).mean(axis=0)
    out += (plus + minus) / 2
    return {"bias": out, "noise_floor": floor, "edge": edge, "signal_rank": rank}


def t_pvalue(estimate, se, df):
    """Two-sided p-value of estimate / se against a t distribution with df degrees of freedom.

    se 0 (a statistic that no block changes, e.g. the state gradient of a linear recurrence, which does not
    depend on the input): p 0 for a non-zero estimate, 1 for zero; NaN where se or the estimate is NaN.
    """
    import scipy.stats  # here: half a second to import, and --help needs none of it

    estimate, se = np.asarray(estimate, np.float64), np.asarray(se, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(se > 0, np.abs(estimate) / se, np.where(estimate == 0, 0.0, np.inf))
    t = np.where(np.isnan(se) | np.isnan(estimate), np.nan, t)
    return 2 * scipy.stats.t.sf(t, df)


def holm(pvalues):
    """Holm's step-down adjusted p-values (Holm 1979), same order as given; controls the family-wise error."""
    p = np.asarray(pvalues, np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def coherence_squared(sums, counts, grad_norm=None):
    """Unbiased estimate of ‖E[G·D]‖_F² from cross-block products, on all blocks and on all but j.

    sums [N, ..., H, E], counts [N, ...] -> (full [...], loo [N, ...]). For independent blocks
    E<S_i, S_j> = m_i m_j ‖mu‖_F² (i != j), so (‖sum_j S_j‖² - sum_j ‖S_j‖²) / (n² - sum_j m_j²)
    has expectation ‖mu‖_F²; it is negative when the mean is small next to the noise.
    """
    sums = np.asarray(sums, np.float64)
    counts = np.asarray(counts, np.float64)
    if grad_norm is not None:
        sums = sums @ grad_norm
    total = sums.sum(axis=0)
    own = np.sum(sums ** 2, axis=(-2, -1))                                   # [N, ...]
    n = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = (np.sum(total ** 2, axis=(-2, -1)) - own.sum(axis=0)) / (n ** 2 - np.sum(counts ** 2, axis=0))
        rest = total[None] - sums
        loo = ((np.sum(rest ** 2, axis=(-2, -1)) - (own.sum(axis=0)[None] - own))
               / ((n[None] - counts) ** 2 - (np.sum(counts ** 2, axis=0)[None] - counts ** 2)))
    return full, loo


def magnitude_squared(grams, counts, grad_norm=None):
    """Mean over occurrences of ‖G·D‖_F², on all blocks and on all but j, from the blocks' sums of G^T G.

    grams [N, ..., E, E] (sum over a block's occurrences of G^T G), counts [N, ...] -> (full [...],
    loo [N, ...]). ‖G D‖_F² = trace(D^T G^T G D), so the block sums give it for any D. By Jensen's
    inequality ‖E[G·D]‖_F² <= E‖G·D‖_F²: their ratio (coherence / magnitude) lies in [0, 1], 1 when
    every occurrence has the same G·D, near 0 when they cancel.
    """
    grams = np.asarray(grams, np.float64)
    counts = np.asarray(counts, np.float64)
    if grad_norm is not None:
        q = np.sum((grams @ grad_norm) * grad_norm, axis=(-2, -1))          # trace(D^T S D) [N, ...]
    else:
        q = np.trace(grams, axis1=-2, axis2=-1)
    n = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return q.sum(axis=0) / n, (q.sum(axis=0)[None] - q) / (n[None] - counts)


def wilson(successes, trials, level=LEVEL):
    """(low, high) Wilson score interval of a binomial proportion (scipy's binomtest)."""
    import scipy.stats  # here: half a second to import, and --help needs none of it

    ci = scipy.stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
