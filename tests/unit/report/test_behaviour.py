"""The gradient measures beside sg-perturb's: rank correlations across classes, their intervals and verdicts."""
import numpy as np
import pytest

from state_gradients.measures import verdicts
from state_gradients.report import findings
from tests import rank_simulation

CLASSES = ["a", "b", "c", "d", "e"]
BLOCKS = 4


def _ranks(x):
    return np.argsort(np.argsort(x)).astype(float)


def _pearson(x, y):
    x, y = x - x.mean(), y - y.mean()
    return float(x @ y / np.sqrt((x @ x) * (y @ y)))


def _gradient(values, loo):
    """verdicts.Replicates of the SV sum only (the other measures' columns NaN) with the given values and loo."""
    nan = float("nan")
    rows, reps = [], []
    for c, cls in enumerate(CLASSES):
        rows.append({"class": cls, "delay": 1, "count": 100.0, "estimate": values[c], "bias": 0.0,
                     "magnitude_sq": nan, "coherence_sq": nan, "occ_nuclear": nan, "output_norm": nan})
        reps += [{"class": cls, "delay": 1, "block": j, "block_positions": 25.0, "block_count": 25.0,
                  "loo_sv_sum": loo[j, c], "loo_magnitude_sq": nan, "loo_coherence_sq": nan,
                  "loo_occ_nuclear": nan, "loo_output_norm": nan} for j in range(BLOCKS)]
    return verdicts.Replicates(rows, reps)


def test_rank_correlation_its_bootstrap_and_permutation_p_against_scipy():
    import scipy.stats

    rng = np.random.default_rng(0)
    g, b = rng.normal(size=5), rng.normal(size=5)
    g_loo, b_loo = g + 0.3 * rng.normal(size=(BLOCKS, 5)), b + 0.3 * rng.normal(size=(BLOCKS, 5))
    rows = [{"measure": "replacement_state", "class": c, "delay": 1, "value": b[i]} for i, c in enumerate(CLASSES)]
    replicates = [{"measure": "replacement_state", "class": c, "delay": 1, "block": j, "loo": b_loo[j, i]}
                  for i, c in enumerate(CLASSES) for j in range(BLOCKS)]
    out = findings.rank_agreement(_gradient(g, g_loo), findings.behaviour_values(rows, replicates), CLASSES, [1])
    assert [(r["gradient"], r["behaviour"]) for r in out] == [("sv_sum", "replacement_state")]
    r = out[0]
    assert r["rho"] == pytest.approx(_pearson(_ranks(g), _ranks(b)), abs=1e-12) and r["classes"] == 5
    assert -1 <= r["lo"] <= r["hi"] <= 1
    # the permutation p: scipy's exact test over the 120 pairings of 5 classes, one-sided in ρ's direction
    exact = scipy.stats.permutation_test((g, b), lambda x, y: scipy.stats.spearmanr(x, y).statistic,
                                         permutation_type="pairings", n_resamples=np.inf,
                                         alternative="greater" if r["rho"] >= 0 else "less")
    assert r["p_perm"] == pytest.approx(exact.pvalue, abs=1e-12)
    # the classes' p: Cochran's Q with the jackknife's standard errors, by hand
    se2 = (BLOCKS - 1) / BLOCKS * np.sum((g_loo - g_loo.mean(axis=0)) ** 2, axis=0)
    centre = np.sum(g / se2) / np.sum(1 / se2)
    q_g = scipy.stats.chi2.sf(np.sum((g - centre) ** 2 / se2), 4)
    assert findings.class_separation_p(g, g_loo.T) == pytest.approx(q_g, rel=1e-12)
    # a class mean's bootstrap draws have the jackknife's variance (2,000 draws: ±3% relative standard error)
    draws = findings._pseudo_draws(g[0], g_loo[:, 0], np.random.default_rng(1).integers(0, BLOCKS, (20000, BLOCKS)))
    assert np.var(draws) == pytest.approx(se2[0], rel=0.05)
    assert findings.agreement_word({"lo": 0.1, "hi": 0.9, "p_perm": 0.01, "p_classes": 0.01}) == "agree"
    assert findings.agreement_word({"lo": -0.9, "hi": -0.1, "p_perm": 0.01, "p_classes": 0.01}) == "disagree"
    assert findings.agreement_word({"lo": 0.1, "hi": 0.9, "p_perm": 0.2, "p_classes": 0.01}) == "unclear"
    assert findings.agreement_word({"lo": 0.1, "hi": 0.9, "p_perm": 0.01, "p_classes": 0.2}) == "unclear"
    assert findings.agreement_word({"lo": -0.2, "hi": 0.5, "p_perm": 0.01, "p_classes": 0.01}) == "unclear"


@pytest.mark.parametrize("regime", rank_simulation.REGIMES)
def test_the_verdicts_are_calibrated_in_every_regime(regime):
    # 100 simulated data sets per regime (tests/rank_simulation.py: half the noise shared by the two measures, as two
    # measures of one text share it). Bounds from the rates that tests/benchmarks/calibrate_rank_agreement.py
    # measures on 400 data sets (docs/measures.md), loosened by 3 binomial standard errors at 100: unrelated measures
    # 'agree' or 'disagree' at most 15% of the time (measured at most 7.2%), related ones 'agree' at least 95%
    # (measured 98.8-100%); the interval covers the true means' ρ at least 85% of the time where the classes stand
    # out from the noise (measured 94-100%), 70% where the noise is as large as the class differences (82-92%)
    _, spread, noise, related = rank_simulation.REGIMES[regime]
    agree, disagree, covered = rank_simulation.rates(regime, 100, seed=list(rank_simulation.REGIMES).index(regime))
    if related:
        assert agree >= 0.95
    else:
        assert agree <= 0.15 and disagree <= 0.15
    if spread:
        assert covered >= (0.85 if noise < spread else 0.70)


def test_exactly_measured_classes_that_rank_alike_by_chance_are_unclear():
    # no noise at all (every delete-one value equals the mean: a zero-width interval) and ρ = 0.6 over 5 classes:
    # the old jackknife of Fisher's z called this 'agree'; unrelated rankings of 5 classes reach 0.6 with p = 0.175
    # (21 of the 120 orderings)
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = np.array([2.0, 1.0, 5.0, 3.0, 4.0])
    stats = findings.rank_statistics(g, np.tile(g[:, None], BLOCKS), b, np.tile(b[:, None], BLOCKS),
                                     np.random.default_rng(0))
    assert stats["rho"] == pytest.approx(0.6) and stats["lo"] == stats["hi"] == pytest.approx(0.6)
    assert stats["p_perm"] == pytest.approx(21 / 120) and findings.agreement_word(stats) == "unclear"
    # without any noise Cochran's Q has no scale: no claim that the classes separate (NaN), nor a p of a NaN ρ
    assert np.isnan(stats["p_classes"])
    assert np.isnan(findings.permutation_p(float("nan"), 5, np.random.default_rng(0)))


def test_too_few_classes_or_other_blocks_give_no_correlation():
    g = np.arange(5.0)
    rows = [{"measure": "replacement_state", "class": c, "delay": 1, "value": float(i)} for i, c in enumerate(CLASSES)]
    three_blocks = [{"measure": "replacement_state", "class": c, "delay": 1, "block": j, "loo": float(i)}
                    for i, c in enumerate(CLASSES) for j in range(3)]
    gradient = _gradient(g, np.tile(g, (BLOCKS, 1)))
    assert findings.rank_agreement(gradient, findings.behaviour_values(rows, three_blocks), CLASSES, [1]) == []
    four = [dict(r, block=j) for r in three_blocks[:1] for j in range(4)]
    assert findings.rank_agreement(gradient, findings.behaviour_values(rows[:3], four), CLASSES, [1]) == []
