"""Findings across seeds: the seed average with seeds as a random effect by hand, the rule, sg-seeds' files and refusals."""
import csv
import os

import numpy as np
import pytest
import scipy.stats

from aux_scripts import seeds as sg_seeds
from state_gradients.measures import intervals
from state_gradients.measures import uncertainty, verdicts
from state_gradients.workflows import seeds

BLOCKS, BLOCK_SIZE = 8, 50
DELAYS = list(range(13)) + [20, 40]


def _curves(nouns_scale):
    """Type-level SV-sum curves: nouns at nouns_scale / (k + 1), verbs at 1 / (k + 1), the rare bin slower."""
    curve = lambda scale, power=1.0: {k: scale / (k + 1) ** power for k in DELAYS}  # noqa: E731
    return {"overall": curve(3.0), "nouns": curve(nouns_scale), "verbs": curve(1.0), "adjectives": curve(0.5),
            "freq_1-9": curve(2.0, 0.8), "freq_10+": curve(1.0)}


def _rows(curves, seed, spread=1e-4):
    """(intervals rows, replicates rows): leave-one-block-out values scattered by `spread` around each value."""
    rng = np.random.default_rng(seed)
    rows, reps = [], []
    for cls, values in curves.items():
        for k, v in values.items():
            rows.append({"class": cls, "delay": k, "count": BLOCKS * BLOCK_SIZE, "sv_sum": v, "estimate": v,
                         "bias": 0.0})
            noise = rng.standard_normal(BLOCKS)
            reps += [{"class": cls, "delay": k, "block": j + 1, "loo_sv_sum": v + spread * (noise[j] - noise.mean()),
                      "block_positions": BLOCK_SIZE} for j in range(BLOCKS)]
    return rows, reps


def _run_folder(path, curves, seed, blocks=BLOCKS):
    """A minimal sg-reproduce folder: svs.csv and intervals/ (the columns sg-seeds reads; the rest NaN)."""
    rows, reps = _rows(curves, seed)
    reps = [r for r in reps if r["block"] <= blocks]
    os.makedirs(path / "intervals")
    fill = lambda items, columns: [{c: r.get(c, float("nan")) for c in columns} for r in items]  # noqa: E731
    (path / "intervals" / intervals.INTERVALS_CSV).write_text(
        intervals.csv_text(fill([{**r, "blocks": blocks} for r in rows], intervals.INTERVAL_COLUMNS),
                           intervals.INTERVAL_COLUMNS))
    (path / "intervals" / intervals.REPLICATES_CSV).write_text(
        intervals.csv_text(fill([{**r, "block_count": BLOCK_SIZE} for r in reps], intervals.REPLICATE_COLUMNS),
                           intervals.REPLICATE_COLUMNS))
    with open(path / "svs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "class", "delay", "sum"])
        writer.writerows(["m", cls, k, repr(v)] for cls, values in curves.items() for k, v in values.items())
    return str(path)


def _ordinary_jackknife_se(full, loo):
    """The textbook jackknife standard error for N equal blocks: pseudo-values N·full - (N - 1)·loo."""
    n = len(loo)
    return np.sqrt(np.var(n * full - (n - 1) * loo, ddof=1) / n)


def test_pooled_is_the_seed_average_with_seeds_as_a_random_effect():
    runs = [verdicts.Replicates(*_rows(_curves(scale), seed, spread=0.001)) for seed, scale in enumerate((2.0, 1.5, 1.8))]
    keys = [("nouns", 5), ("verbs", 5)]
    f = lambda v: v[keys[0]] / v[keys[1]]  # noqa: E731  a nonlinear statistic: averaging f is not f of averages
    out = verdicts.Pooled(runs).statistic(f, keys)
    own = [f(r.value) for r in runs]
    own_loo = [np.array([f({key: r.loo[key][j] for key in keys}) for j in range(BLOCKS)]) for r in runs]
    full, loo = np.mean(own), np.mean(own_loo, axis=0)
    text_se = _ordinary_jackknife_se(full, loo)
    own_se = [_ordinary_jackknife_se(x, xl) for x, xl in zip(own, own_loo)]
    # E[sample variance of the seeds] = tau² + (sum se_i² - S se²) / (S - 1): tau² net of the text part
    between = max(0.0, np.var(own, ddof=1) - (np.sum(np.square(own_se)) - 3 * text_se ** 2) / 2)
    assert between > 0                       # scales 2.0, 1.5, 1.8 differ far beyond the replicates' scatter
    variance = text_se ** 2 + between / 3
    df = variance ** 2 / (text_se ** 4 / (BLOCKS - 1) + (between / 3) ** 2 / 2)
    # float64 sums of a few dozen terms: agreement to about 1e-12 relative
    assert out["estimate"] == pytest.approx(full, rel=1e-12)
    assert out["text_se"] == pytest.approx(text_se, rel=1e-10)
    assert out["between_var"] == pytest.approx(between, rel=1e-10)
    assert out["se"] == pytest.approx(np.sqrt(variance), rel=1e-10)
    assert out["df"] == pytest.approx(df, rel=1e-10)
    half = scipy.stats.t.ppf(0.975, df) * np.sqrt(variance)
    assert (out["lo"], out["hi"]) == pytest.approx((full - half, full + half), rel=1e-10)
    assert out["runs"] == pytest.approx(own, rel=1e-15)
    # one run repeated: no seed variance, so the pooled statistic is that run's (text se, N - 1 df)
    alone = runs[0].statistic(f, keys)
    again = verdicts.Pooled([runs[0], runs[0]]).statistic(f, keys)
    assert (again["estimate"], again["se"], again["df"]) == pytest.approx(
        (alone["estimate"], alone["se"], BLOCKS - 1), rel=1e-12)


def test_a_comparison_counts_by_its_holm_p_whatever_one_seed_says():
    # the random effect's p already holds the seeds' spread: a seed with the other sign does not veto
    significant = dict(name="a − b", estimate=1.0, se=0.1, lo=0.8, hi=1.2, p=1e-4, p_holm=1e-4)
    assert verdicts.Comparison(**significant).sign == 1
    assert verdicts.Comparison(**significant, runs=(1.8, 1.3, -0.1)).sign == 1
    assert not verdicts.Comparison(**significant, runs=(1.8, 1.3, -0.1)).runs_agree
    assert verdicts.Comparison(**{**significant, "p_holm": 0.2}, runs=(1.0, 1.0)).sign == 0
    negative = {**significant, "estimate": -1.0}
    assert verdicts.Comparison(**negative, runs=(-1.0, -0.5)).sign == -1


def test_pooled_refuses_runs_over_other_blocks():
    a = verdicts.Replicates(*_rows(_curves(2.0), 0))
    rows, reps = _rows(_curves(2.0), 1)
    b = verdicts.Replicates(rows, [{**r, "block_positions": BLOCK_SIZE + (r["block"] == 1)} for r in reps])
    with pytest.raises(ValueError, match="other occurrences per block"):
        verdicts.Pooled([a, b])
    # the same block sizes, but the class's own occurrences moved between blocks
    b = verdicts.Replicates(rows, [{**r, "block_count": 1 + (r["block"] == 1)} for r in reps])
    a = verdicts.Replicates(*_rows(_curves(2.0), 0)[:1], [{**r, "block_count": 1} for r in _rows(_curves(2.0), 0)[1]])
    with pytest.raises(ValueError, match="class overall at delay 0 has other occurrences per block"):
        verdicts.Pooled([a, b])
    # the same text, but the SV sums bias-corrected by two methods
    legacy = verdicts.Replicates([{**r, "bias_method": "jackknife-1/2"} for r in rows], reps)
    with pytest.raises(ValueError, match="bias-corrected by jackknife-1/2, run 1's by None"):
        verdicts.Pooled([verdicts.Replicates(rows, reps), legacy])
    # a class that one run lacks
    c = verdicts.Replicates([r for r in rows if r["class"] != "verbs"], [r for r in reps if r["class"] != "verbs"])
    with pytest.raises(ValueError, match="class verbs at delay 0 is in one of runs 1 and 2 only"):
        verdicts.Pooled([a, c])


def test_seeds_files_keep_each_seed_and_the_average_apart(tmp_path):
    # seed a: nouns twice the verbs; seed b: nouns below the verbs; both: nouns far above adjectives
    a = _run_folder(tmp_path / "a", _curves(2.0), 0)
    b = _run_folder(tmp_path / "b", _curves(0.8), 1)
    out = tmp_path / "out"
    assert sg_seeds.main([a, b, "--out", str(out)]) == 0
    with open(out / seeds.FINDINGS_CSV) as handle:
        found = {r["finding"]: r for r in csv.DictReader(handle)}
    best = found["nouns are remembered best among POS classes"]
    assert (best["verdict_a"], best["verdict_b"]) == (verdicts.HOLDS, verdicts.NOT)
    # two seeds this far apart (nouns 2.0 and 0.8 on the same text) leave the recipe's comparisons with about
    # one degree of freedom and a between-seed variance far above the text's: none of the nouns' comparisons
    # counts, not even nouns − adjectives, where both seeds agree in sign
    assert best["verdict"] == verdicts.INCONCLUSIVE
    assert found["infrequent words are remembered better and longer"]["verdict"] == verdicts.HOLDS
    with open(out / seeds.COMPARISONS_CSV) as handle:
        rows = [r for r in csv.DictReader(handle) if r["finding"] == "nouns are remembered best among POS classes"]
    for r in rows:
        agree = r["comparison"].startswith("nouns − adjectives")
        assert (r["signs_agree"], r["sign"]) == (("1", "0") if agree else ("0", "0"))
        low, high = sorted((float(r["estimate_a"]), float(r["estimate_b"])))
        assert (float(r["seed_min"]), float(r["seed_max"])) == (low, high)
    with open(out / seeds.SVS_CSV) as handle:
        nouns = next(r for r in csv.DictReader(handle) if (r["class"], r["delay"]) == ("nouns", "1"))
    # the seed average of the two curves at k = 1 (2.0 / 2 and 0.8 / 2); the replicates' scatter of 1e-4 moves
    # the bias-corrected estimates by at most a few 1e-4
    assert float(nouns["estimate"]) == pytest.approx(0.7, abs=1e-3)
    assert float(nouns["seed_min"]) == pytest.approx(0.4, abs=1e-3)
    md = (out / seeds.SUMMARY_MD).read_text()
    assert "| nouns are remembered best among POS classes | inconclusive | holds | does not hold |" in md


def test_seeds_refusals(tmp_path, capsys):
    a = _run_folder(tmp_path / "a", _curves(2.0), 0)
    assert sg_seeds.main([a, "--out", str(tmp_path / "out")]) == 2
    assert "at least two run folders" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert sg_seeds.main([a, str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'empty'}: no intervals/intervals.csv" in capsys.readouterr().err
    fewer = _run_folder(tmp_path / "fewer", _curves(2.0), 1, blocks=BLOCKS - 1)
    assert sg_seeds.main([a, fewer, "--out", str(tmp_path / "out")]) == 2
    assert f"run 2 has {BLOCKS - 1} blocks, run 1 has {BLOCKS}" in capsys.readouterr().err
    assert sg_seeds.main([a, a, "--out", str(tmp_path / "out")]) == 2
    assert "labels are not unique" in capsys.readouterr().err
    # passes over other windows (their records say so) are refused before anything is read
    import json
    b = _run_folder(tmp_path / "b", _curves(2.0), 2)
    for folder, windows in ((a, 367), (b, 128)):
        os.makedirs(os.path.join(folder, "gradients"), exist_ok=True)
        with open(os.path.join(folder, "gradients", "grad_progress.json"), "w") as handle:
            json.dump({"batches": windows, "time_steps": "all", "delays": [0, 1], "grad_blocks": BLOCKS}, handle)
    assert sg_seeds.main([a, b, "--out", str(tmp_path / "out")]) == 2
    assert "differ in batches (128 vs 367)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
