"""Findings across seeds: the seed average's jackknife by hand, the every-seed sign rule, sg-seeds' files and refusals."""
import csv
import os

import numpy as np
import pytest

from aux_scripts.pipeline import seeds
from aux_scripts import seeds as sg_seeds
from aux_scripts.measures import intervals
from aux_scripts.measures import uncertainty, verdicts

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
            rows.append({"class": cls, "delay": k, "count": BLOCKS * BLOCK_SIZE, "sv_sum": v})
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


def _generalised_jackknife(full, loo, exponent):
    """The textbook generalised jackknife for N equal blocks: bias (N - 1)-scaled, se from pseudo-values."""
    n = len(loo)
    rho = (n / (n - 1)) ** exponent
    bias = np.mean(loo - full) / (rho - 1)
    pseudo = full + (full - loo) / (rho - 1)
    return full - bias, np.sqrt(np.var(pseudo, ddof=1) / n)


def test_pooled_is_the_jackknife_of_the_seed_average():
    runs = [verdicts.Replicates(*_rows(_curves(scale), seed, spread=0.01)) for seed, scale in enumerate((2.0, 1.5, 1.8))]
    keys = [("nouns", 5), ("verbs", 5)]
    f = lambda v: v[keys[0]] / v[keys[1]]  # noqa: E731  a nonlinear statistic: averaging f is not f of averages
    out = verdicts.Pooled(runs).statistic(f, keys)
    full = np.mean([f(r.value) for r in runs])
    loo = np.mean([[f({key: r.loo[key][j] for key in keys}) for j in range(BLOCKS)] for r in runs], axis=0)
    estimate, se = _generalised_jackknife(full, loo, uncertainty.SV_EXPONENT)
    # float64 sums of a few dozen terms: agreement to about 1e-15 relative
    assert out["estimate"] == pytest.approx(estimate, rel=1e-12)
    assert out["se"] == pytest.approx(se, rel=1e-12)
    assert out["runs"] == pytest.approx([r.statistic(f, keys)["estimate"] for r in runs], rel=1e-15)
    # one run repeated: the pooled statistic is that run's, bit for bit up to the mean of equal numbers
    alone = runs[0].statistic(f, keys)
    again = verdicts.Pooled([runs[0], runs[0]]).statistic(f, keys)
    assert (again["estimate"], again["se"]) == pytest.approx((alone["estimate"], alone["se"]), rel=1e-15)


def test_a_comparison_counts_only_when_every_seed_has_its_sign():
    significant = dict(name="a − b", estimate=1.0, se=0.1, lo=0.8, hi=1.2, p=1e-4, p_holm=1e-4)
    assert verdicts.Comparison(**significant).sign == 1
    assert verdicts.Comparison(**significant, runs=(0.9, 1.2, 0.1)).sign == 1
    assert verdicts.Comparison(**significant, runs=(1.8, 1.3, -0.1)).sign == 0
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
    # the average (1.4 vs 1.0) is significant, but seed b has the other sign: nouns − verbs never counts,
    # nouns − adjectives always does, so at no delay are nouns above every class
    assert best["verdict"] == verdicts.INCONCLUSIVE
    assert found["infrequent words are remembered better and longer"]["verdict"] == verdicts.HOLDS
    with open(out / seeds.COMPARISONS_CSV) as handle:
        rows = [r for r in csv.DictReader(handle) if r["finding"] == "nouns are remembered best among POS classes"]
    for r in rows:
        agree = r["comparison"].startswith("nouns − adjectives")
        assert (r["signs_agree"], r["sign"]) == (("1", "1") if agree else ("0", "0"))
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
    assert not (tmp_path / "out").exists()
