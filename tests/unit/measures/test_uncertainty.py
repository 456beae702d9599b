"""The interval code: against plain recomputations, hand-worked cases, and coverage in a simulation with a known answer."""
# Shape letters: N blocks, H state, E embedding.
import numpy as np
import pytest
import scipy.stats

from state_gradients.measures import uncertainty


def _block_sums(rng, mu, sigma, counts, mix=None):
    """Block sums of counts[j] occurrences mu + noise (noise = sigma * mix @ Z, Z iid normal): [N, H, E].

    A sum of m iid Gaussian matrices is Gaussian with m times the variance, so the block sums
    are drawn directly.
    """
    z = rng.standard_normal((len(counts),) + mu.shape)
    if mix is not None:
        z = mix @ z
    return mu[None] * counts[:, None, None] + sigma * z * np.sqrt(counts)[:, None, None]


def test_jackknife_of_a_mean_is_the_mean_and_the_textbook_standard_error():
    # a ratio mean S/n is linear in the blocks: no bias to remove (exponent 1), and the pseudo-
    # values are the block means, so se^2 = (1/N) sum_j (mean_j - mean)^2 m_j / (n - m_j)
    rng = np.random.default_rng(0)
    counts = np.array([3.0, 7, 5, 9, 4, 6])
    sums = rng.normal(size=6) * counts + 2.0 * counts
    n, mean = counts.sum(), sums.sum() / counts.sum()
    loo = (sums.sum() - sums) / (n - counts)
    out = uncertainty.jackknife(mean, loo, counts, exponent=1.0)
    assert out["estimate"] == pytest.approx(mean, rel=1e-13)
    block_means = sums / counts
    se = np.sqrt(np.mean((block_means - mean) ** 2 * counts / (n - counts)))
    assert out["se"] == pytest.approx(se, rel=1e-12)
    half = scipy.stats.t.ppf(0.975, 5) * se
    assert out["lo"] == pytest.approx(mean - half, rel=1e-12) and out["hi"] == pytest.approx(mean + half, rel=1e-12)


def test_jackknife_against_a_plain_recomputation():
    # the ordinary delete-m_j jackknife written out with loops over blocks and a per-block SVD; a given bias
    # moves the centre and leaves the se; an order-1/2 correction is the generalised jackknife's, se unchanged
    rng = np.random.default_rng(1)
    counts = np.array([40, 55, 38, 61, 47])
    sums = _block_sums(rng, rng.normal(size=(6, 4)), 3.0, counts)
    full, loo = uncertainty.leave_one_out_means(sums, counts)
    theta_all, theta_loo = uncertainty.nuclear_norm(full), uncertainty.nuclear_norm(loo)
    n = counts.sum()
    theta = np.linalg.svd(sums.sum(0) / n, compute_uv=False).sum()
    pseudo, loos = [], []
    for j in range(5):
        rest = [i for i in range(5) if i != j]
        theta_j = np.linalg.svd(sum(sums[i] for i in rest) / sum(counts[i] for i in rest), compute_uv=False).sum()
        loos.append(theta_j)
        pseudo.append(n / counts[j] * theta - (n / counts[j] - 1) * theta_j)
    centre = 5 * theta - sum((1 - c / n) * t for c, t in zip(counts, loos))
    se = np.sqrt(sum((p - centre) ** 2 / (n / c - 1) for p, c in zip(pseudo, counts)) / 5)
    half = scipy.stats.t.ppf(0.975, 4) * se
    out = uncertainty.jackknife(theta_all, theta_loo, counts, bias=0.25)
    assert out["value"] == pytest.approx(theta, rel=1e-12)
    assert out["estimate"] == pytest.approx(theta - 0.25, rel=1e-12)
    assert out["se"] == pytest.approx(se, rel=1e-10)
    assert (out["lo"], out["hi"]) == pytest.approx((theta - 0.25 - half, theta - 0.25 + half), rel=1e-10)
    rho = np.sqrt(n / (n - counts))
    half_order = uncertainty.jackknife(theta_all, theta_loo, counts, exponent=0.5)
    assert half_order["estimate"] == pytest.approx(theta - np.sum(counts / n * (np.array(loos) - theta) / (rho - 1)),
                                                   rel=1e-12)
    assert half_order["se"] == pytest.approx(se, rel=1e-10)
    assert uncertainty.jackknife(theta_all, theta_loo, counts, exponent=None)["estimate"] == pytest.approx(theta)


def test_simulated_bias_against_a_plain_recomputation():
    # the documented recipe written out: random signs on the centred block sums, the average's singular
    # directions above the draws' mean largest singular value, antithetic draws around that denoised mean
    rng = np.random.default_rng(5)
    counts = np.array([30, 44, 51, 38, 47, 40])
    mu = np.outer(rng.normal(size=7), rng.normal(size=5))
    sums = _block_sums(rng, mu, 2.0, counts)
    noise = uncertainty.noise_draws(sums, counts, draws=12, seed=3)
    out = uncertainty.simulated_bias(sums.sum(0) / counts.sum(), noise)
    n, mean = counts.sum(), sums.sum(0) / counts.sum()
    signs = np.random.default_rng(3).choice([-1.0, 1.0], size=(12, 6))
    draws = [sum(s * (sums[j] - counts[j] * mean) for j, s in enumerate(row)) / n * np.sqrt(6 / 5) for row in signs]
    np.testing.assert_allclose(noise, draws, rtol=1e-12, atol=1e-15)
    edge = np.mean([np.linalg.svd(z, compute_uv=False)[0] for z in draws])
    u, sv, vt = np.linalg.svd(mean, full_matrices=False)
    keep = sv > edge
    denoised = u[:, keep] @ np.diag(sv[keep]) @ vt[keep]
    nuc = lambda x: np.linalg.svd(x, compute_uv=False).sum()  # noqa: E731
    bias = np.mean([(nuc(denoised + z) + nuc(denoised - z)) / 2 for z in draws]) - sv[keep].sum()
    assert out["bias"] == pytest.approx(bias, rel=1e-10)
    assert out["signal_rank"] == keep.sum() == 1                 # a rank-1 mean well above this noise
    assert out["noise_floor"] == pytest.approx(np.mean([nuc(z) for z in draws]), rel=1e-12)
    # without noise (every block the same multiple of one full-rank matrix: a G that does not depend on the
    # input) the draws are rounding only (~1e-16): no bias, every direction kept, a zero-width interval
    full_rank = rng.normal(size=(7, 5))
    same = np.array([c * full_rank for c in counts])
    clean = uncertainty.simulated_bias(same.sum(0) / n, uncertainty.noise_draws(same, counts, draws=4))
    assert abs(clean["bias"]) <= 1e-12 * nuc(full_rank) and clean["signal_rank"] == 5
    assert clean["noise_floor"] <= 1e-12 * nuc(full_rank)


def test_holm_and_wilson_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(1*0.04, 0.06)
    np.testing.assert_allclose(uncertainty.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    assert uncertainty.holm([0.6, 0.9])[1] == 1.0
    # 8 of 10: centre (0.8 + z^2/20) / (1 + z^2/10), half-width z sqrt(0.016 + z^2/400) / (1 + z^2/10)
    z = scipy.stats.norm.ppf(0.975)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * np.sqrt(0.016 + z * z / 400) / (1 + z * z / 10)
    np.testing.assert_allclose(uncertainty.wilson(8, 10), (centre - half, centre + half), rtol=1e-9)
    assert uncertainty.t_pvalue(0.0, 1.0, 9) == pytest.approx(1.0)


# every regime of the real data: a large signal-dominated class (a), a small one (b), small noise-heavy ones (c, d)
@pytest.mark.parametrize("regime,blocks", [("a", 20), ("b", 10), ("c", 20), ("d", 10)])
def test_calibration_through_sg_intervals(regime, blocks):
    # A reduced run of tests/benchmarks/calibrate_intervals.py (issue 33's check: 1,000 repetitions in
    # four regimes at 10 and 20 blocks, docs/results/calibration/): 150 repetitions in each regime,
    # through the block files and sg-intervals. The targets are coverage 0.92-0.98, mean se within
    # 0.8-1.25 of the estimates' spread, mean error within half the spread; each bound is widened by 3 standard errors
    # of the measured figure at 150 repetitions: a binomial sd sqrt(0.95·0.05/150) = 0.018 for the
    # coverage, about 1/sqrt(2·149) = 0.058 relative for a spread (the se ratio's error), 1/sqrt(150)
    # = 0.082 spreads for the mean error. The plain SV sum is biased by many spreads in the noise-heavy
    # regimes (c, d), more than one in b: the correction must matter.
    from tests.benchmarks import calibrate_intervals

    reps = 150
    out = calibrate_intervals.simulate(regime, blocks, reps, seed=11)
    for statistic in ("sv_sum", "ratio"):
        s = calibrate_intervals.summary(*out[statistic])
        assert 0.92 - 3 * 0.018 <= s["coverage"] <= 0.98 + 3 * 0.018, (statistic, s)
        assert 0.8 * (1 - 3 * 0.058) <= s["se_over_spread"] <= 1.25 * (1 + 3 * 0.058), (statistic, s)
        assert abs(s["error_over_spread"]) <= 0.5 + 3 * 0.082, (statistic, s)
    plain = calibrate_intervals.summary(*out["sv_sum"])["plain_error_over_spread"]
    # (in the large full-rank class (a) the plain SV sum's bias is about 0.4 spreads: nothing to require there)
    if regime != "a":
        assert plain > (10 if regime in "cd" else 0.8), plain


def test_noise_floor_of_pure_noise_matches_its_sv_sum():
    # with no mean, the SV sum of the average IS noise: the floor from random-sign combinations of
    # the centred block sums must estimate its expectation. Averaged over 40 repetitions, both
    # concentrate (sd of one SV sum about 2% here), so 5% is several sd of the difference.
    rng = np.random.default_rng(3)
    floors, values = [], []
    for _ in range(40):
        counts = rng.multinomial(2500, np.ones(20) / 20)
        sums = _block_sums(rng, np.zeros((32, 16)), 1.0, counts)
        floors.append(uncertainty.noise_floor(sums, counts, draws=20, seed=1))
        values.append(uncertainty.nuclear_norm(sums.sum(0) / counts.sum()))
    assert np.mean(floors) == pytest.approx(np.mean(values), rel=0.05)


def test_coherence_is_unbiased_and_its_jackknife_covers():
    # E[estimate] = ‖mu‖_F²: the mean over 200 repetitions lies within 3 of its standard errors
    rng = np.random.default_rng(4)
    mu = np.outer(np.linspace(1, 0, 8), np.linspace(0.5, 1, 4)) * 0.05
    truth = np.sum(mu ** 2)
    values, covered = [], 0
    for _ in range(200):
        counts = rng.multinomial(2500, np.ones(20) / 20)
        sums = _block_sums(rng, mu, 1.0, counts)
        full, loo = uncertainty.coherence_squared(sums, counts)
        values.append(full)
        out = uncertainty.jackknife(full, loo, counts, exponent=uncertainty.SMOOTH_EXPONENT)
        covered += out["lo"] <= truth <= out["hi"]
    assert abs(np.mean(values) - truth) <= 3 * np.std(values) / np.sqrt(200)
    assert 0.9 <= covered / 200 <= 0.99
