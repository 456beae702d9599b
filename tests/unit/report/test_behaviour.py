"""The gradient measures beside sg-perturb's: rank correlations across classes with their block jackknife."""
import numpy as np
import pytest

from state_gradients.measures import verdicts
from state_gradients.report import findings

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


def test_rank_correlation_and_its_jackknife_against_numpy():
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
    z = np.arctanh([_pearson(_ranks(g_loo[j]), _ranks(b_loo[j])) for j in range(BLOCKS)])
    # the delete-one-block jackknife of Fisher's z with equal blocks: se² = (N - 1) / N · Σ (z_j − mean z_j)²
    se = np.sqrt((BLOCKS - 1) / BLOCKS * np.sum((z - z.mean()) ** 2))
    assert r["se_z"] == pytest.approx(se, abs=1e-12)
    half = 3.182446305284263 * se                                  # t quantile 0.975 with 3 degrees of freedom
    assert r["lo"] == pytest.approx(np.tanh(np.arctanh(r["rho"]) - half), abs=1e-12)
    assert -1 <= r["lo"] <= r["rho"] <= r["hi"] <= 1
    assert findings.agreement_word({"lo": 0.1, "hi": 0.9}) == "agree"
    assert findings.agreement_word({"lo": -0.9, "hi": -0.1}) == "disagree"
    assert findings.agreement_word({"lo": -0.2, "hi": 0.5}) == "unclear"


def test_too_few_classes_or_other_blocks_give_no_correlation():
    g = np.arange(5.0)
    rows = [{"measure": "replacement_state", "class": c, "delay": 1, "value": float(i)} for i, c in enumerate(CLASSES)]
    three_blocks = [{"measure": "replacement_state", "class": c, "delay": 1, "block": j, "loo": float(i)}
                    for i, c in enumerate(CLASSES) for j in range(3)]
    gradient = _gradient(g, np.tile(g, (BLOCKS, 1)))
    assert findings.rank_agreement(gradient, findings.behaviour_values(rows, three_blocks), CLASSES, [1]) == []
    four = [dict(r, block=j) for r in three_blocks[:1] for j in range(4)]
    assert findings.rank_agreement(gradient, findings.behaviour_values(rows[:3], four), CLASSES, [1]) == []
