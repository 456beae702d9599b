"""The Quick-start job on the bundled demo corpus shows the planted long-distance memory."""
import csv

import numpy as np

from aux_scripts import demo


def test_demo_shows_planted_memory(tmp_path):
    logged = []
    ratio = demo.run_demo(str(tmp_path / "out"), long_delay=4, log=logged.append)
    # The verb agrees with the subject noun 1-8 words back, so the nouns' state gradients must
    # stay larger at long delays than those of the i.i.d. fillers (adjectives, adverbs).
    assert ratio > 1.3, ratio
    with open(tmp_path / "out" / "svs_table.csv") as handle:
        rows = list(csv.DictReader(handle))
    long = [r for r in rows if int(r["delay"]) >= 4]
    nouns = np.array([float(r["nouns"]) for r in long])
    fillers = np.array([(float(r["adjectives"]) + float(r["adverbs"])) / 2 for r in long])
    assert abs(np.mean(nouns) / np.mean(fillers) - ratio) < 1e-3 * ratio   # the table says the same
    assert (tmp_path / "out" / "svs.png").read_bytes()[:4] == b"\x89PNG"
    assert any("Planted memory" in line for line in logged)
    # the same report as sg-reproduce's, its figures inline in the HTML
    report_md = (tmp_path / "out" / "report.md").read_text()
    assert "## The papers' findings on this model" in report_md and "(report_svs_pos.png)" in report_md
    assert (tmp_path / "out" / "report.html").read_text().count("data:image/png;base64,") == 2   # classes, fits

    # the same memory by the perturbation measure: nouns get smaller noise scales than fillers
    sigma_ratio, separation = demo.run_other_measures(str(tmp_path / "out"), long_delay=4, log=logged.append)
    assert sigma_ratio > 1.2, sigma_ratio
    # TX-Ray: the trained model's units separate singular from plural nouns (the subject's number)
    # significantly at every delay up to at least 4, the fillers' kind (JJ vs RB) for fewer delays,
    # and training lengthens the noun span beyond what the untrained model's state keeps
    nouns, fillers = separation["a", demo.NUMBER_TAGS], separation["a", demo.FILLER_TAGS]
    assert nouns["span"] >= 4, separation
    assert fillers["span"] < 4, separation
    assert nouns["span"] > separation["b", demo.NUMBER_TAGS]["span"], separation
    assert nouns["excess"] > 0.02 and nouns["excess"] > 3 * max(fillers["excess"], 0.0), separation
    assert any(line.startswith("TX-Ray: the units separate NN,NNS") for line in logged)
