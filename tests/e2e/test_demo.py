"""The Quick-start job on the bundled demo corpus shows the planted long-distance memory."""
import csv

import numpy as np
import pytest

from aux_scripts import demo as sg_demo
from state_gradients.measures import perturbation
from state_gradients.workflows import demo


def test_demo_shows_planted_memory(demo_run):
    out, ratio, logged = demo_run
    logged = list(logged)
    # The verb agrees with the subject noun 1-8 words back. Whether the nouns' state-gradient SV sums
    # stay above the i.i.d. fillers' at long delays depends on the training run: over seeds 1-5 on one
    # machine the ratio was 0.73-2.03 (README), and another CPU trains another sample, so its value is
    # reported, not asserted; the properties asserted below held for every seed.
    assert np.isfinite(ratio) and ratio > 0, ratio
    with open(out / "svs_table.csv") as handle:
        rows = list(csv.DictReader(handle))
    long = [r for r in rows if int(r["delay"]) >= 4]
    nouns = np.array([float(r["nouns"]) for r in long])
    fillers = np.array([(float(r["adjectives"]) + float(r["adverbs"])) / 2 for r in long])
    assert abs(np.mean(nouns) / np.mean(fillers) - ratio) < 1e-3 * ratio   # the table says the same
    assert (out / "svs.png").read_bytes()[:4] == b"\x89PNG"
    line = next(line for line in logged if "Planted memory" in line)
    assert "95% interval [" in line
    # the interval's statistic is the same ratio of the bias-corrected SV sums (estimate = sv_sum - bias, from
    # intervals.csv; the table holds the plain ones, whose ratio is `ratio`)
    long_delays = [int(r["delay"]) for r in long]
    interval = demo.memory_ratio_interval(str(out), long_delays)
    with open(out / "intervals" / "intervals.csv") as handle:
        corrected = {(r["class"], int(r["delay"])): float(r["estimate"]) for r in csv.DictReader(handle)}
    want = np.mean([corrected[("nouns", k)] for k in long_delays]) / np.mean(
        [(corrected[("adjectives", k)] + corrected[("adverbs", k)]) / 2 for k in long_delays])
    assert interval["value"] == pytest.approx(want, rel=1e-5) and interval["lo"] < interval["estimate"] < interval["hi"]
    # the same report as sg-reproduce's, its figures inline in the HTML
    report_md = (out / "report.md").read_text()
    assert "## Findings" in report_md and "(report_svs_pos.png)" in report_md
    # the report leads with the demo's answer, the same numbers as the logged line
    assert f"at delays 4..11 the nouns' SV sum of G·D is {ratio:.2f}x that of the fillers" in report_md
    assert report_md.index("Planted memory (the demo language's") < report_md.index("![")
    # classes, fits, intervals with noise floors, the size-free control
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 4
    assert "σ: sg-interpret-state --config GRAD.config" in report_md        # what --measures would add
    # the behavioural check beside it: cutting the context to d words costs the verbs their subject noun while it
    # can be 1-8 words back, so the loss increase is clearly positive up to d = 5, smaller at d = 8 and
    # indistinguishable from 0 once every subject is in the context (d = 12); the report has the section
    assert "## Behavioural memory beside the state gradients" in report_md
    rows, _ = perturbation.read_outputs(str(out / "perturb"))
    cut = {r["delay"]: r for r in rows if r["measure"] == "truncation_loss" and r["class"] == "overall"}
    assert all(cut[d]["lo"] > 0.1 for d in (1, 2, 3, 5)), cut
    assert 0 < cut[8]["value"] < cut[5]["value"] / 3 and cut[12]["lo"] < 0.01, cut

    # the same memory by the perturbation measure: nouns get smaller noise scales than fillers
    sigma_ratio, separation = demo.run_other_measures(str(out), long_delay=4, log=logged.append)
    assert sigma_ratio > 1.1, sigma_ratio                  # seeds 1-5: 1.22-1.65
    # TX-Ray: the trained model's units separate singular from plural nouns (the subject's number)
    # significantly at every delay up to at least 4, the fillers' kind (JJ vs RB) for fewer delays,
    # and training lengthens the noun span beyond what the untrained model's state keeps; above
    # chance at long delays, and more than the fillers (seeds 1-5: spans 5-7 vs 0-3, untrained 3)
    nouns, fillers = separation["a", demo.NUMBER_TAGS], separation["a", demo.FILLER_TAGS]
    assert nouns["span"] >= 4, separation
    assert fillers["span"] < 4, separation
    assert nouns["span"] > separation["b", demo.NUMBER_TAGS]["span"], separation
    assert nouns["excess"] > 0 and nouns["excess"] > 3 * max(fillers["excess"], 0.0), separation
    assert any(line.startswith("TX-Ray: the units separate NN,NNS") for line in logged)
    # the report now holds their figures too
    report_md = (out / "report.md").read_text()
    assert "(report_sigma.png)" in report_md and "(report_txray_separation.png)" in report_md


def test_demo_seed_goes_into_the_training_config(tmp_path):
    from state_gradients.core import configuration

    data = demo.resource_dir(demo.DATA_PACKAGE, demo.DATA_SOURCE)
    for seed, want in ((None, 1), (3, 3)):
        _, path = demo._demo_config(demo.TRAIN_CONFIG, str(tmp_path / str(seed)), data, seed=seed)
        assert configuration.load_config(path).seed == want
    assert sg_demo.main(["--seed", "-1", "--out", str(tmp_path / "bad")]) == 2


def test_demo_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file\n")
    assert sg_demo.main(["--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err == f"sg-demo: error: --out {tmp_path / 'taken'}: {tmp_path / 'taken'} is a file, not a folder\n"
    assert sg_demo.main(["--out", str(tmp_path / "taken" / "below")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_terminal_table_rounds_and_aligns():
    # the terminal gets 3 significant digits in right-aligned columns; svs_table.csv keeps 6
    table = {"overall": {0: 5.123456, 1: 2.5, 10: 0.0712345}, "nouns": {0: 7.1, 1: 3.33333, 10: 0.14}}
    lines = demo.terminal_table(table)
    assert lines == ["delay  overall  nouns", "    0     5.12    7.1", "    1      2.5   3.33",
                     "   10   0.0712   0.14"]
