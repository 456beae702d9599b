"""Uncertainty from block sums: a bias-corrected delete-one-block jackknife, noise floor, coherence, magnitude, Holm, Wilson."""
# Shape letters: N blocks, H state, E embedding; "..." is any shape of statistics (classes, delays).
#
# The estimand of a class c at delay k is ‖E[G·D | c, k]‖_*, the sum of singular values of the
# expected state gradient of this model on this text distribution. The plain estimate, the SV
# sum of the validation average, is biased upwards: the noise of an average of n occurrences
# adds singular values of order n^(-1/2) in directions the mean does not fill (the nuclear norm
# is convex), while its sampling error is smaller. The validation text is cut into N contiguous
# blocks (the gradient pass's grad_blocks), treated as independent units of text.
#
# Jackknife: theta = f(all blocks), theta_j = f(all blocks but j), with m_j the size of block j
# (n = sum m_j) and h_j = n / m_j.
#   - Bias: a bias of order n^(-a) grows by rho_j = (n / (n - m_j))^a when block j is left out,
#     so each theta_j - theta estimates (rho_j - 1) times the bias. The generalised jackknife
#     (Gray and Schucany 1972, "The Generalized Jackknife Statistic") removes it:
#         estimate = theta - sum_j (m_j / n) (theta_j - theta) / (rho_j - 1)
#     a = 1/2 for SV-based statistics (the noise term above); a = 1 is the ordinary jackknife
#     (Quenouille), for smooth statistics such as means and the unbiased coherence.
#   - Variance: pseudo-values p_j = theta + (theta - theta_j) / (rho_j - 1), and the weighted
#     delete-m_j jackknife variance of Busing, Meijer and van der Leeden (1999, "Delete-m
#     jackknife for unequal m", Statistics and Computing 9: 3-8):
#         se^2 = (1 / N) sum_j (p_j - estimate)^2 / (h_j - 1)
#     which for a = 1 is exactly theirs and for equal blocks the textbook jackknife variance.
#   - Interval: estimate -/+ t_{N-1, 0.975} se.
# Why not the plain SV sum with a jackknife or bootstrap interval: its bias was 10-100 standard
# errors in the coverage simulation (tests/test_uncertainty.py), so such intervals covered the
# truth in none of the repetitions. The bias-corrected interval covered it in 97-99% there: slightly
# conservative, as jackknife variances of nonlinear statistics are (Efron and Stein 1981).
import concurrent.futures
import math
import os

import numpy as np

SV_EXPONENT = 0.5      # bias order n^(-1/2) of statistics built from singular values
SMOOTH_EXPONENT = 1.0  # bias order n^(-1) of smooth statistics (the ordinary jackknife)
LEVEL = 0.95


def nuclear_norm(matrices):
    """Sum of singular values of [..., H, E] -> [...] (float64); NaN for a matrix with a NaN (an empty average)."""
    matrices = np.asarray(matrices, np.float64)
    out = np.full(matrices.shape[:-2], np.nan)
    finite = np.isfinite(matrices).all(axis=(-2, -1))
    stack = matrices[finite]
    # numpy's batched SVD runs on one core and releases the GIL: one chunk per core (the same LAPACK call
    # per matrix, so the same values); callers keep BLAS at one thread (sg-intervals does)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(cores, max(1, len(stack) // 64))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        parts = pool.map(lambda chunk: np.linalg.svd(chunk, compute_uv=False).sum(axis=-1),
                         np.array_split(stack, workers))
        out[finite] = np.concatenate(list(parts))
    return out


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


def jackknife(full, loo, sizes, exponent=SV_EXPONENT, level=LEVEL):
    """Bias-corrected estimate, standard error and interval of a statistic from its leave-one-block-out values.

    full [...]: the statistic on all blocks; loo [N, ...]: on all blocks but j; sizes [N] or
    [N, ...]: the blocks' sizes m_j. Returns a dict of arrays [...]: value (= full), estimate,
    bias, se, lo, hi, and df (N - 1).
    """
    import scipy.stats  # here: half a second to import, and --help needs none of it

    full = np.asarray(full, np.float64)
    loo = np.asarray(loo, np.float64)
    sizes = np.asarray(sizes, np.float64)
    blocks = loo.shape[0]
    sizes = sizes.reshape(sizes.shape + (1,) * (loo.ndim - sizes.ndim))
    n = sizes.sum(axis=0)
    rho = (n / (n - sizes)) ** exponent
    share = sizes / n
    bias = np.sum(share * (loo - full) / (rho - 1), axis=0)
    estimate = full - bias
    pseudo = full + (full - loo) / (rho - 1)
    h = n / sizes
    se = np.sqrt(np.sum((pseudo - estimate) ** 2 / (h - 1), axis=0) / blocks)
    half = scipy.stats.t.ppf(0.5 + level / 2, blocks - 1) * se
    return {"value": full, "estimate": estimate, "bias": bias, "se": se, "lo": estimate - half,
            "hi": estimate + half, "df": blocks - 1}


def t_pvalue(estimate, se, df):
    """Two-sided p-value of estimate / se against a t distribution with df degrees of freedom (NaN where se is 0)."""
    import scipy.stats  # here: half a second to import, and --help needs none of it

    estimate, se = np.asarray(estimate, np.float64), np.asarray(se, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(se > 0, np.abs(estimate) / se, np.nan)
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


def noise_floor(sums, counts, grad_norm=None, draws=50, seed=0):
    """Expected SV sum of the average's noise alone, per statistic: sums [N, ..., H, E], counts [N, ...] -> [...].

    The centred block sums S_j - m_j·mean carry the average's noise; combined with random signs
    s_j = ±1 and scaled by sqrt(N / (N - 1)) (the centring removes one degree of freedom), the
    noise average (1/n) sum_j s_j (S_j - m_j·mean) has the covariance of the average's noise and
    no mean. The floor is the mean SV sum of `draws` such combinations (times D when given): the
    value that a class with no memory at all would show at this count.
    """
    sums = np.asarray(sums, np.float64)
    counts = np.asarray(counts, np.float64)
    blocks = sums.shape[0]
    full, _ = leave_one_out_means(sums, counts)
    centred = sums - counts[..., None, None] * full[None]
    n = counts.sum(axis=0)[..., None, None]
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(draws, blocks))
    noise = np.tensordot(signs, centred, axes=1) / n * math.sqrt(blocks / (blocks - 1))   # [draws, ..., H, E]
    if grad_norm is not None:
        noise = noise @ grad_norm
    return nuclear_norm(noise).mean(axis=0)     # all draws in one batch of SVDs


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
