"""The committed intervals recomputed by code written from docs/intervals.md alone (no project import in that code)."""
# Shape letters: N blocks.
#
# The recomputation (the functions above the tests) reads the two CSV files with the csv module
# and uses numpy and scipy only: estimate = sv_sum - bias; the ordinary delete-m_j jackknife of
# Busing et al. (pseudo-values h_j·theta - (h_j - 1)·theta_j, centre N·theta - sum (1 - m_j/n)
# theta_j, se² = (1/N) sum (p_j - centre)² / (h_j - 1)); interval estimate -/+ t_{N-1} se; a
# ratio of two rows: f of the estimates with the same jackknife over f(theta_j - bias), the
# block sizes being the mean of the two rows'.
import csv
import glob
import math
import os

import numpy as np
import pytest
import scipy.stats

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "docs", "results")
RUNS = sorted(os.path.dirname(os.path.dirname(p)) for p in glob.glob(os.path.join(RESULTS, "*", "intervals",
                                                                                  "intervals.csv")))


def read(run):
    """({(class, delay): row}, {(class, delay): [(block, loo_sv_sum, block_positions)]}) of a run folder."""
    with open(os.path.join(run, "intervals", "intervals.csv"), encoding="utf-8") as handle:
        rows = {(r["class"], int(r["delay"])): r for r in csv.DictReader(handle)}
    loo = {}
    with open(os.path.join(run, "intervals", "replicates.csv"), encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            loo.setdefault((r["class"], int(r["delay"])), []).append(
                (int(r["block"]), float(r["loo_sv_sum"]), float(r["block_positions"])))
    return rows, {key: sorted(items) for key, items in loo.items()}


def jackknife_se(theta, theta_loo, sizes):
    theta_loo, sizes = np.asarray(theta_loo), np.asarray(sizes)
    n, blocks = sizes.sum(), len(sizes)
    h = n / sizes
    pseudo = h * theta - (h - 1) * theta_loo
    centre = blocks * theta - np.sum((1 - sizes / n) * theta_loo)
    return math.sqrt(np.sum((pseudo - centre) ** 2 / (h - 1)) / blocks)


def sv_row(row, items):
    """(estimate, se, lo, hi) of one intervals.csv row from its sv_sum, bias and replicates."""
    estimate = float(row["sv_sum"]) - float(row["bias"])
    se = jackknife_se(float(row["sv_sum"]), [v for _, v, _ in items], [m for _, _, m in items])
    half = scipy.stats.t.ppf(0.975, len(items) - 1) * se
    return estimate, se, estimate - half, estimate + half


def ratio(rows, loo, top, bottom):
    """(estimate, lo, hi) of row top's estimate over row bottom's."""
    value = lambda key, j=None: (float(rows[key]["sv_sum"]) if j is None else loo[key][j][1]) \
        - float(rows[key]["bias"])  # noqa: E731
    blocks = len(loo[top])
    theta = value(top) / value(bottom)
    theta_loo = [value(top, j) / value(bottom, j) for j in range(blocks)]
    sizes = [(loo[top][j][2] + loo[bottom][j][2]) / 2 for j in range(blocks)]
    half = scipy.stats.t.ppf(0.975, blocks - 1) * jackknife_se(theta, theta_loo, sizes)
    return theta, theta - half, theta + half


# ---- the tests: the recomputation against the committed files and the project's own code ----

def test_there_are_committed_runs_to_check():
    assert len(RUNS) >= 4, RUNS


@pytest.mark.parametrize("run", RUNS, ids=os.path.basename)
def test_every_committed_interval_follows_from_its_replicates(run):
    rows, loo = read(run)
    checked = 0
    for key, row in rows.items():
        if row["sv_sum"] in ("nan", "") or key not in loo or not math.isfinite(float(row["sv_sum"])):
            continue
        if not all(math.isfinite(v) for _, v, _ in loo[key]):
            # a class with all its occurrences in one block has no leave-that-block-out value: no interval
            assert math.isnan(float(row["se"])), key
            continue
        estimate, se, lo, hi = sv_row(row, loo[key])
        # the files hold 6 significant digits (analysis.format_number): agreement to a few units there,
        # relative to the row's largest number (a bias-corrected estimate near 0 keeps the sv_sum's digits)
        scale = max(abs(float(row["sv_sum"])), se)
        for name, mine in (("estimate", estimate), ("se", se), ("lo", lo), ("hi", hi)):
            assert float(row[name]) == pytest.approx(mine, abs=5e-6 * scale), (key, name)
        checked += 1
    assert checked >= 100


def test_ratio_intervals_equal_the_library_and_the_comparison_files():
    from state_gradients.measures import intervals, verdicts

    for run in RUNS:
        rows, loo = read(run)
        reps = verdicts.Replicates(
            intervals.read_csv(os.path.join(run, "intervals", intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS),
            intervals.read_csv(os.path.join(run, "intervals", intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS))
        for k in (1, 10, 40):
            keys = [("overall", k), ("overall", 0)]
            if not all(key in loo for key in keys):
                continue
            mine = ratio(rows, loo, *keys)
            out = reps.statistic(lambda v: v[keys[0]] / v[keys[1]], keys)
            # both from the same 6-digit numbers: float64 agreement
            assert (out["estimate"], out["lo"], out["hi"]) == pytest.approx(mine, rel=1e-9), (run, k)
    comparison = os.path.join(RESULTS, "ptb-lstm-vs-transformer", "compare_svs.csv")
    with open(comparison, encoding="utf-8") as handle:
        quoted = {(r["label"], int(r["delay"])): r for r in csv.DictReader(handle) if r["class"] == "overall"}
    for label, folder in (("LSTM", "ptb-64e-256h-128windows"), ("Transformer", "ptb-transformer-64e-256d")):
        rows, loo = read(os.path.join(RESULTS, folder))
        for k in (1, 10, 40):
            mine = ratio(rows, loo, ("overall", k), ("overall", 0))
            r = quoted[(label, k)]
            got = (float(r["normalised"]), float(r["normalised_lo"]), float(r["normalised_hi"]))
            assert got == pytest.approx(mine, rel=2e-5), (label, k)
