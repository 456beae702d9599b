"""The findings' rules with intervals, on hand-made replicates whose differences are clearly signed or clearly not."""
import numpy as np

from state_gradients.measures import verdicts
from state_gradients.report import findings

BLOCKS = 20


def _replicates(curves, spread):
    """Replicates whose leave-one-block-out values scatter by `spread` around each value (seeded)."""
    rng = np.random.default_rng(0)
    rows, reps = [], []
    for cls, values in curves.items():
        for k, v in values.items():
            rows.append({"class": cls, "delay": k, "sv_sum": v, "estimate": v, "bias": 0.0, "count": 100 * BLOCKS})
            # scatter of the replicates: a jackknife se of about spread * sqrt(N - 1)
            noise = rng.standard_normal(BLOCKS)
            for j in range(BLOCKS):
                reps.append({"class": cls, "delay": k, "block": j + 1, "loo_sv_sum": v + spread * (noise[j] - noise.mean()),
                             "block_positions": 100})
    return verdicts.Replicates(rows, reps)


def _curve(scale, delays=findings.RANK_DELAYS):
    return {k: scale / k for k in delays}


def test_best_class_rules():
    # nouns 2x verbs and adjectives at every delay, replicates scattered 1e-4: holds
    reps = _replicates({"nouns": _curve(2.0), "verbs": _curve(1.0), "adjectives": _curve(1.0)}, 1e-4)
    verdict, family = verdicts.finding_best(reps, "nouns", ["verbs", "adjectives"], list(findings.RANK_DELAYS))
    assert verdict == verdicts.HOLDS and len(family) == 10 and all(c.sign == 1 for c in family)
    # verbs above nouns everywhere: does not hold
    reps = _replicates({"nouns": _curve(1.0), "verbs": _curve(2.0), "adjectives": _curve(0.5)}, 1e-4)
    assert verdicts.finding_best(reps, "nouns", ["verbs", "adjectives"], list(findings.RANK_DELAYS))[0] == verdicts.NOT
    # the same values with replicates scattered as widely as the values: nothing is significant
    reps = _replicates({"nouns": _curve(1.0), "verbs": _curve(1.1), "adjectives": _curve(0.9)}, 0.5)
    assert verdicts.finding_best(reps, "nouns", ["verbs", "adjectives"], list(findings.RANK_DELAYS))[0] == \
        verdicts.INCONCLUSIVE
    # above all others at k = 1 only, tied (within noise) later: partly
    nouns = {k: (2.0 if k == 1 else 1.0) / k for k in findings.RANK_DELAYS}
    reps = _replicates({"nouns": nouns, "verbs": _curve(1.0), "adjectives": _curve(1.0)}, 1e-4)
    assert verdicts.finding_best(reps, "nouns", ["verbs", "adjectives"], list(findings.RANK_DELAYS))[0] == \
        verdicts.PARTLY


def test_rare_shrink_and_decay_rules():
    delays = list(findings.RANK_DELAYS)
    reps = _replicates({"freq_1-9": {k: 2.0 / k ** 0.5 for k in delays}, "freq_1000+": _curve(1.0)}, 1e-4)
    verdict, family = verdicts.finding_rare(reps, "freq_1-9", "freq_1000+", delays, 40)
    assert verdict == verdicts.HOLDS and len(family) == 6 and family[-1].estimate > 0
    reps = _replicates({"freq_1-9": _curve(1.0), "freq_1000+": _curve(2.0)}, 1e-4)
    assert verdicts.finding_rare(reps, "freq_1-9", "freq_1000+", delays, 40)[0] == verdicts.NOT
    # the overall curve: falls at every step -> holds; rises at one -> does not hold
    reps = _replicates({"overall": _curve(1.0)}, 1e-5)
    assert verdicts.finding_shrink(reps, "overall", delays)[0] == verdicts.HOLDS
    bump = {**_curve(1.0), 20: 0.5}
    assert verdicts.finding_shrink(_replicates({"overall": bump}, 1e-5), "overall", delays)[0] == verdicts.NOT
    # an exact power law: its RMS log error is 0, the exponential's is not
    power = {k: 3.0 * k ** -0.7 for k in range(1, 30)}
    reps = _replicates({"overall": power}, 1e-6)
    verdict, family = verdicts.finding_decay(reps, "overall", sorted(power), findings.fit_decay)
    assert verdict == verdicts.HOLDS and family[0].estimate > 0


def test_holm_family_adjusts_within_the_family_only():
    reps = _replicates({"a": {1: 1.0}, "b": {1: 0.9}}, 0.004)
    one = verdicts.holm_family([verdicts.difference(reps, "a", "b", 1)])
    assert one[0].p_holm == one[0].p
    three = verdicts.holm_family([verdicts.difference(reps, "a", "b", 1) for _ in range(3)])
    assert all(c.p_holm == min(1.0, 3 * c.p) for c in three)


def test_each_measure_reads_its_columns():
    # the panel's measures from one intervals.csv row and one replicates.csv row, against their definitions
    row = {"estimate": 3.0, "bias": 0.25, "magnitude_sq": 16.0, "coherence_sq": 4.0, "occ_nuclear": 5.0,
           "output_norm": 0.5}
    rep = {"loo_sv_sum": 3.5, "loo_magnitude_sq": 9.0, "loo_coherence_sq": 3.0, "loo_occ_nuclear": 6.0,
           "loo_output_norm": 0.75}
    expected = {"sv_sum": (3.0, 3.25), "magnitude": (4.0, 3.0), "coherence_ratio": (0.25, 1 / 3),
                "occ_nuclear": (5.0, 6.0), "output_norm": (0.5, 0.75)}
    assert set(verdicts.MEASURES) == set(expected)
    for name, (value, loo) in expected.items():
        measure = verdicts.find_measure(name)
        assert measure.name == name and measure.what
        assert measure.value(row) == value and abs(measure.loo(row, rep) - loo) < 1e-15, name
    assert [m for m in verdicts.MEASURES.values() if m.share] == [verdicts.MEASURES["coherence_ratio"]]
    assert np.isnan(verdicts.MEASURES["magnitude"].value({"magnitude_sq": -1.0}))
    try:
        verdicts.find_measure("nuclear")
    except ValueError as err:
        assert "sv_sum" in str(err)
    else:
        raise AssertionError("an unknown measure was accepted")
