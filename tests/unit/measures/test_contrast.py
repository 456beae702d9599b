"""verdicts.contrast: two models (or two recipes' seeds) on the same text: closed forms and calibrated intervals."""
import numpy as np
import pytest

from state_gradients.measures import verdicts

BLOCKS = 10
KEY = ("overall", 0)


def _run(block_means, per_block=100):
    """Replicates of a mean over BLOCKS equal blocks with these block means (the SV-sum columns, no bias)."""
    y = np.asarray(block_means, np.float64)
    loo = (y.sum() - y) / (len(y) - 1)
    rows = [{"class": KEY[0], "delay": KEY[1], "estimate": float(y.mean()), "bias": 0.0, "count": per_block * len(y)}]
    reps = [{"class": KEY[0], "delay": KEY[1], "block": j, "loo_sv_sum": float(v), "block_positions": per_block}
            for j, v in enumerate(loo)]
    return verdicts.Replicates(rows, reps)


def _group(runs):
    return verdicts.Pooled(runs) if len(runs) > 1 else runs[0]


def _value(v):
    return v[KEY]


def test_two_single_models_are_the_jackknife_of_the_difference_of_their_replicates():
    rng = np.random.default_rng(0)
    text = rng.standard_normal(BLOCKS)
    a, b = 5 + text + 0.1 * rng.standard_normal(BLOCKS), 7 + 2 * text + 0.1 * rng.standard_normal(BLOCKS)
    loo_a, loo_b = (a.sum() - a) / (BLOCKS - 1), (b.sum() - b) / (BLOCKS - 1)
    for log, h in ((False, lambda x: x), (True, np.log)):
        out = verdicts.contrast(_run(a), _run(b), _value, [KEY], log=log)
        d = h(loo_b) - h(loo_a)
        # the ordinary jackknife over equal blocks: se² = (N - 1) / N Σ (d_j - mean d)²
        se = np.sqrt((BLOCKS - 1) / BLOCKS * np.sum((d - d.mean()) ** 2))
        assert out["estimate"] == pytest.approx(h(b.mean()) - h(a.mean()), rel=1e-12)
        assert out["se"] == pytest.approx(se, rel=1e-10) and out["df"] == BLOCKS - 1
        assert out["between_a"] == out["between_b"] == 0.0
    # the text both models read cancels: b = a + 2 exactly has no text uncertainty at all
    exact = verdicts.contrast(_run(a), _run(a + 2), _value, [KEY])
    assert exact["estimate"] == pytest.approx(2, rel=1e-12) and exact["se"] < 1e-12 and exact["p"] < 1e-100


def test_a_side_of_seeds_adds_its_between_seed_variance():
    # three seeds whose text parts are identical: the seed spread is all of the between-seed variance; the
    # contrast's variance is the text part plus the spread's variance over three (the delta method under log)
    rng = np.random.default_rng(1)
    text = 0.2 * rng.standard_normal(BLOCKS)
    offsets = np.array([-0.5, 0.1, 0.4])
    seeds = [_run(10 + o + text) for o in offsets]
    single = _run(8 + text + 0.05 * rng.standard_normal(BLOCKS))
    for log, slope in ((False, 1.0), (True, 1 / (10 + offsets.mean() + text.mean()))):
        out = verdicts.contrast(single, verdicts.Pooled(seeds), _value, [KEY], log=log)
        text_only = verdicts.contrast(single, seeds[0], _value, [KEY], log=log)
        assert out["between_b"] == pytest.approx(np.var(offsets, ddof=1), rel=1e-9) and out["between_a"] == 0
        assert out["se"] ** 2 == pytest.approx(out["text_se"] ** 2 + slope ** 2 * np.var(offsets, ddof=1) / 3,
                                               rel=1e-9)
        if not log:   # the seeds' text parts are the same: the text part is any one seed's (log: at its own level)
            assert out["text_se"] == pytest.approx(text_only["se"], rel=1e-9)
        assert out["runs_b"] == pytest.approx(list(10 + offsets + text.mean()), rel=1e-12)


def test_sides_over_other_blocks_are_refused():
    with pytest.raises(ValueError, match="other blocks"):
        verdicts.contrast(_run(np.ones(BLOCKS)), _run(np.ones(BLOCKS + 1)), _value, [KEY])


# Coverage of the true difference in every regime the real runs can be in: text-dominated (the seeds
# agree), seed-dominated, mixed, run-specific noise only; three seeds a side, three against one model
# (whose own value is then the estimand), one against one, and the log scale. 400 simulated pairs
# each: the binomial se of a 95% coverage is 0.011, so [0.90, 0.99] is 4 se around the nominal level
# plus the Satterthwaite approximation's error at 2 between-seed degrees of freedom (measured 0.92-0.975
# over 1,000 pairs in these regimes). The text-only interval in the seed-dominated regime is the control:
# it must fail there, or the regime would not test the seeds' part.
REGIMES = {  # seed sd, shared text sd, run-specific sd; seeds of side a and b; log scale
    "text-dominated 3 v 3": (0.0, 1.0, 0.2, 3, 3, False),
    "seed-dominated 3 v 3": (1.0, 0.05, 0.05, 3, 3, False),
    "mixed 3 v 3": (0.3, 1.0, 0.3, 3, 3, False),
    "mixed 3 v 1 model": (0.3, 1.0, 0.3, 3, 1, False),
    "run noise only 1 v 1": (0.0, 0.0, 1.0, 1, 1, False),
    "seed-dominated 3 v 3, log": (0.3, 0.015, 0.015, 3, 3, True),
}


@pytest.mark.parametrize("regime", sorted(REGIMES))
def test_interval_coverage_in_every_regime(regime):
    seed_sd, text_sd, run_sd, sa, sb, log = REGIMES[regime]
    rng = np.random.default_rng(sorted(REGIMES).index(regime))
    covered, text_only_covered = [], []
    for _ in range(400):
        text = text_sd * rng.standard_normal(BLOCKS)
        sides, truth = [], []
        for mean, seeds in ((10.0, sa), (10.5, sb)):
            u = seed_sd * rng.standard_normal(seeds)
            sides.append([_run(mean + u[r] + text + run_sd * rng.standard_normal(BLOCKS)) for r in range(seeds)])
            truth.append(mean + (u[0] if seeds == 1 else 0.0))   # one model: its own value is the estimand
        true = np.log(truth[1] / truth[0]) if log else truth[1] - truth[0]
        out = verdicts.contrast(_group(sides[0]), _group(sides[1]), _value, [KEY], log=log)
        covered.append(out["lo"] <= true <= out["hi"])
        half = out["hi"] - out["estimate"]
        narrow = half * out["text_se"] / out["se"] if out["se"] > 0 else 0.0
        text_only_covered.append(abs(out["estimate"] - true) <= narrow)
    assert 0.90 <= np.mean(covered) <= 0.99, f"{regime}: coverage {np.mean(covered):.3f}"
    if regime.startswith("seed-dominated"):
        assert np.mean(text_only_covered) < 0.6, f"{regime}: the text-only interval covers {np.mean(text_only_covered)}"


def test_degenerate_sides_give_nan_not_an_error():
    # a side whose value is 0 has no log ratio; a NaN estimate has no between-seed variance (not 0)
    zero = [_run(np.zeros(BLOCKS)) for _ in range(3)]
    out = verdicts.contrast(verdicts.Pooled(zero), _run(np.ones(BLOCKS)), _value, [KEY], log=True)
    assert np.isnan(out["estimate"]) and np.isnan(out["p"])
    assert np.isnan(verdicts.random_effect(0.1, 9, [1.0, np.nan, 2.0], [0.1, 0.1, 0.1])[1])
