"""report.py: decay fits on known curves, rankings, findings rules, and the report files from a hand-made svs.csv."""
import csv
import os

import numpy as np
import pytest

from aux_scripts import report as sg_report
from state_gradients.core import results
from state_gradients.core.errors import UserError
from state_gradients.report import document, findings, report


@pytest.mark.parametrize("a,tau", [(3.0, 4.0), (0.5, 20.0)])
def test_exponential_curve_is_recovered_and_fits_better(a, tau):
    delays = np.arange(0, 50)
    exp_fit, pow_fit = findings.fit_decay(delays, a * np.exp(-delays / tau))
    assert exp_fit.a == pytest.approx(a, rel=1e-9) and exp_fit.rate == pytest.approx(tau, rel=1e-9)
    assert exp_fit.rmse_log < 1e-9 < pow_fit.rmse_log
    assert exp_fit.delays == tuple(range(1, 50))          # delay 0 left out for both


@pytest.mark.parametrize("a,b", [(2.0, 1.3), (7.0, 0.4)])
def test_power_law_curve_is_recovered_and_fits_better(a, b):
    delays = np.arange(0, 40)
    values = np.concatenate([[10.0], a * delays[1:] ** -b])   # delay 0 has no power-law value
    exp_fit, pow_fit = findings.fit_decay(delays, values)
    assert pow_fit.a == pytest.approx(a, rel=1e-9) and pow_fit.rate == pytest.approx(b, rel=1e-9)
    assert pow_fit.rmse_log < 1e-9 < exp_fit.rmse_log
    verdict, text = findings.finding_decay(exp_fit, pow_fit)
    assert verdict == "holds" and "power law fits better" in text


def test_fit_rmse_is_the_log_residual_by_hand():
    # ln y = 0, ln 2, 0 at k = 1, 2, 3: the exponential's line is ln 2 / 3 flat; residuals -1/3, 2/3, -1/3 of ln 2
    exp_fit, _ = findings.fit_decay([1, 2, 3], [1.0, 2.0, 1.0])
    assert exp_fit.rate == np.inf or abs(1 / exp_fit.rate) < 1e-12
    assert exp_fit.rmse_log == pytest.approx(np.log(2) * np.sqrt(2) / 3)


def test_fit_needs_three_points():
    with pytest.raises(UserError, match="at least 3 delays"):
        findings.fit_decay([0, 1, 2], [1.0, 0.5, 0.25])


def _table(curves):
    return {cls: {k: v for k, v in enumerate(values)} for cls, values in curves.items()}


def test_ranking_and_findings_by_hand():
    k = np.arange(45)
    table = _table({"overall": 2.0 / (k + 1), "nouns": 3.0 / (k + 1), "verbs": 2.5 / (k + 1) + (k == 5) * 1.0,
                    "freq_1-9": 4.0 / (k + 1) ** 0.8, "freq_10-99": 3.0 / (k + 1), "freq_100+": 1.0 / (k + 1) ** 1.2})
    ranks = findings.ranking(table, ["verbs", "nouns"], findings.RANK_DELAYS)
    assert [c for c, _ in ranks[1]] == ["nouns", "verbs"] and [c for c, _ in ranks[5]] == ["verbs", "nouns"]
    verdict, text = findings.finding_nouns(ranks)
    assert verdict == "partly" and "5: 2 of 2" in text
    assert findings.finding_shrink(table["overall"])[0] == "holds"
    assert findings.finding_shrink({0: 1.0, 1: 0.5, 2: 0.7})[0] == "partly"
    assert findings.finding_shrink({0: 1.0, 1: 1.5})[0] == "does not hold"
    verdict, text = findings.finding_frequency(table, ["freq_1-9", "freq_10-99", "freq_100+"], findings.RANK_DELAYS)
    assert verdict == "holds" and "at 5 of 5" in text
    # the rare bin decays faster and ends below the frequent one: does not hold
    flipped = _table({"freq_1-9": 1.0 / (k + 1) ** 1.2, "freq_100+": 4.0 / (k + 1) ** 0.8})
    assert findings.finding_frequency(flipped, ["freq_1-9", "freq_100+"], findings.RANK_DELAYS)[0] == "does not hold"


def _write_svs(path, curves):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "class", "delay", "sum", "sv1"])
        for cls, values in curves.items():
            for k, v in enumerate(values):
                writer.writerow(["m", cls, k, repr(float(v)), ""])


def test_report_files_from_a_minimal_folder(tmp_path):
    k = np.arange(12)
    _write_svs(tmp_path / "svs.csv", {"overall": 2.0 * np.exp(-k / 3), "nouns": 3.0 * np.exp(-k / 4),
                                      "verbs": 1.0 * np.exp(-k / 2), "freq_1-9": np.exp(-k / 5),
                                      "freq_10+": np.exp(-k / 2)})
    (tmp_path / "diff").mkdir()
    results.write_result(str(tmp_path / "diff" / "A-B_relative_memory.json"), "sg-relative-memory",
                         **{"class": None, "delays": k, "relative_memory": 0.5 / (k + 1)})
    results.write_result(str(tmp_path / "test_perplexity.json"), "main.py", config="x", epochs_done=1,
                         valid_perplexity=None, test_perplexity=123.456)
    # the printed logs are not read: a reworded line cannot change the report
    (tmp_path / "test_perplexity.txt").write_text("Test Perplexity: 999\n")
    verdicts = report.build_report(str(tmp_path))
    assert verdicts["the decay is fast but not exponential"] == "does not hold"
    assert verdicts["nouns are remembered best among POS classes"] == "holds"
    md = (tmp_path / "report.md").read_text()
    assert "| test perplexity (batch 1, one token at a time) | 123.46 |" in md
    assert "| epochs trained | 1 |" in md
    # a missing part names the command that computes it
    assert "POS classifier on the embeddings\n\nNot computed: sg-pos-classifier EMB DICT POSFILE" in md
    assert "Not computed: main.py with grad_blocks N, then sg-intervals" in md
    # provenance first, then the contents, then the findings, before any figure
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["Provenance", "Findings", "Sum of singular values of G·D against delay"]
    contents = next(line for line in md.splitlines() if line.startswith("Contents: "))
    assert all(f"[{h}](#{document.slug(h)})" in contents for h in headings)
    assert md.index("## Findings") < md.index("![")
    assert "| model | a | τ or b | RMS error of ln | delays |\n|---|---:|---:|---:|---|" in md   # numbers right-aligned
    html = (tmp_path / "report.html").read_text()
    for figure in ("report_svs_pos.png", "report_svs_freq.png", "report_fits.png", "report_relative_memory.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({figure})" in md
    assert html.count("data:image/png;base64,") == 4
    with open(tmp_path / "report_fits.csv") as handle:
        rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert float(rows["exponential"]["tau_or_b"]) == pytest.approx(3.0)
    with open(tmp_path / "report_ranking.csv") as handle:
        first = [r for r in csv.DictReader(handle) if r["rank"] == "1" and r["group"] == "frequency"]
    assert [(r["delay"], r["class"]) for r in first] == [("1", "freq_1-9"), ("5", "freq_1-9"), ("10", "freq_1-9")]


def test_report_cli_errors(tmp_path, capsys):
    assert sg_report.main([str(tmp_path)]) == 2
    assert "svs.csv not found" in capsys.readouterr().err
    (tmp_path / "svs.csv").write_text("model,class,delay,sum\nm,nouns,x,1\n")
    assert sg_report.main([str(tmp_path)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert sg_report.main([os.path.join(str(tmp_path), "nowhere")]) == 2


def test_result_files_are_checked(tmp_path):
    path = str(tmp_path / "r.json")
    results.write_result(path, "main.py", test_perplexity=float("nan"), values=np.array([1.0, np.inf]))
    assert results.read_result(path, "main.py") == {"test_perplexity": None, "values": [1.0, None]}
    with pytest.raises(UserError, match="expected version 1 of sg-relative-memory"):
        results.read_result(path, "sg-relative-memory")
    (tmp_path / "bad.json").write_text("Test Perplexity: 1.0\n")
    with pytest.raises(UserError, match="not a JSON result file"):
        results.read_result(str(tmp_path / "bad.json"), "main.py")
    assert results.read_result_if(str(tmp_path / "none.json"), "main.py") is None
