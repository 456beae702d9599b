"""The figures the README and the docs quote are those of the committed result files, rounded as quoted."""
# Each quote is rebuilt from docs/results/ (the files sg-reproduce and the demo benchmark wrote)
# and must appear verbatim in its page: a rerun that changes a result file fails here until the
# text follows. Timings are not result files: the pages state them with their date and machine.
import csv

import pytest

from tests.commands import REPO

RESULTS = REPO / "docs" / "results"


def _rows(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _svs():
    return {(r["class"], int(r["delay"])): float(r["sum"]) for r in _rows(RESULTS / "ptb-64e-256h" / "svs.csv")}


def _fits():
    return {r["model"]: r for r in _rows(RESULTS / "ptb-64e-256h" / "report_fits.csv")}


def _g(x):
    return f"{x:.3g}"


def _paper_quotes():
    s, fits = _svs(), _fits()
    power, expo = fits["power law"], fits["exponential"]
    b, rms_power, rms_expo = float(power["tau_or_b"]), float(power["rmse_log"]), float(expo["rmse_log"])
    readme = [
        f"the overall sum falls at every step from delay 0 to 49: {_g(s['overall', 0])} → {_g(s['overall', 49])}",
        f"power law a·k^(−b), b = {b:.2f}, RMS error {rms_power:.2g}; exponential {rms_expo:.2g}",
    ]
    results = [
        f"{_g(s['overall', 0])} → {s['overall', 1]:.2f} (k = 1) → {_g(s['overall', 10])} (k = 10) → "
        f"{_g(s['overall', 49])} (k = 49), {100 * s['overall', 49] / s['overall', 0]:.2f}% of its delay-0 value",
        f"b = {b:.2f} leaves an RMS error of {rms_power:.2g}",
        f"τ = {float(expo['tau_or_b']):.1f} leaves {rms_expo:.2g}",
        f"(k = 1: verbs {_g(s['verbs', 1])}, nouns {_g(s['nouns', 1])}; k = 10: {_g(s['verbs', 10])} vs "
        f"{_g(s['nouns', 10])})",
        f"(k = 40: nouns {_g(s['nouns', 40])}, verbs {_g(s['verbs', 40])}, pronouns {_g(s['pronouns', 40])})",
    ]
    return [("README.md", q) for q in readme] + [("docs/results.md", q) for q in results]


def _frequency_quotes():
    """The type-weighted bins and the POS x frequency cells (classes in context) of the paper model."""
    rows = {(r["class"], int(r["delay"])): r for r in _rows(RESULTS / "ptb-64e-256h" / "intervals" / "intervals.csv")}

    def iv(cls, k):
        r = rows[("ctx_" + cls, k)]
        return f"{_g(float(r['estimate']))} [{_g(float(r['lo']))}, {_g(float(r['hi']))}]"
    rare, frequent = "freq_1-9+types", "freq_10000++types"
    readme = [f"(k = 1: {iv(rare, 1)} against {iv(frequent, 1)})",
              f"(nouns at k = 1: {iv('nouns-freq_1-9', 1)} in bin 1-9 against {iv('nouns-freq_1000-9999', 1)} in "
              "bin 1000-9999;"]
    nouns = ", ".join(f"{iv('nouns-freq_' + b, 1)} ({b})" for b in ("10-99", "100-999"))
    results = [f"k = 1: {iv(rare, 1)} against {iv(frequent, 1)}; k = 10: {iv(rare, 10)} against {iv(frequent, 10)}; "
               f"k = 40: {iv(rare, 40)} against {iv(frequent, 40)}",
               f"(Weighted by occurrence: {iv('freq_1-9', 1)} against {iv('freq_10000+', 1)} at k = 1.)",
               f"nouns {iv('nouns-freq_1-9', 1)} (bin 1-9), {nouns}, {iv('nouns-freq_1000-9999', 1)} (1000-9999)",
               f"verbs {iv('verbs-freq_1-9', 1)}, {iv('verbs-freq_10-99', 1)}, {iv('verbs-freq_100-999', 1)}, "
               f"{iv('verbs-freq_1000-9999', 1)}",
               f"adjectives {iv('adjectives-freq_1-9', 1)} to {iv('adjectives-freq_1000-9999', 1)}",
               f"prepositions {iv('prepositions-freq_10-99', 1)} (10-99) to {iv('prepositions-freq_10000+', 1)} (10000+)",
               f"(10000+, {iv('nouns-freq_10000+', 1)})"]
    comparisons = [r for r in _rows(RESULTS / "ptb-64e-256h" / "report_comparisons.csv")
                   if r["finding"].startswith("infrequent words are remembered better within POS classes")]
    assert all(float(r["sign"]) > 0 for r in comparisons)
    results.append(f"all {len(comparisons)} differences are positive after Holm")
    return [("README.md", q) for q in readme] + [("docs/results.md", q) for q in results]


def _behaviour_quotes():
    """sg-perturb's behavioural measures of the paper model and their rank correlations with the gradient measures."""
    pert = {(r["measure"], r["class"], int(r["delay"])): r
            for r in _rows(RESULTS / "ptb-64e-256h" / "perturb" / "perturbation.csv")}
    beh = {(r["gradient_measure"], r["behaviour"], int(r["delay"])): r
           for r in _rows(RESULTS / "ptb-64e-256h" / "report_behaviour.csv")}

    def iv(measure, k, cls="overall"):
        r = pert[(measure, cls, k)]
        return f"{_g(float(r['value']))} [{_g(float(r['lo']))}, {_g(float(r['hi']))}]"

    def rho(gradient, behaviour, k):
        r = beh[(gradient, behaviour, k)]
        return f"ρ = {float(r['rho']):.2f} [{float(r['lo']):.2f}, {float(r['hi']):.2f}]"
    # "within 11% at every delay from 0 to 40": the prediction's relative error of the overall mean
    delays = sorted(k for m, c, k in pert if m == "replacement_state" and c == "overall")
    worst = max(abs(float(pert[("replacement_predicted", "overall", k)]["value"])
                    / float(pert[("replacement_state", "overall", k)]["value"]) - 1) for k in delays)
    assert delays[0] == 0 and delays[-1] == 40 and worst <= 0.11
    agree = sum(r["verdict"] == "agree" for key, r in beh.items() if key[1] == "replacement_state")
    total = sum(key[1] == "replacement_state" for key in beh)
    quotes = [f"{iv('replacement_state', 1)} at k = 1, {iv('replacement_state', 10)} at k = 10 and "
              f"{iv('replacement_state', 40)} at k = 40",
              f"{iv('replacement_predicted', 1)}, {iv('replacement_predicted', 10)} and {iv('replacement_predicted', 40)}",
              f"({agree} of {total} rank correlations above 0; SV sum {rho('sv_sum', 'replacement_state', 1)} at k = 1, "
              f"{rho('sv_sum', 'replacement_state', 10)} at k = 10)",
              f"({iv('replacement_loss', 1)} nats at k = 1, {iv('replacement_loss', 10)} at k = 10",
              f"SV sum {rho('sv_sum', 'replacement_loss', 1)} at k = 1, {rho('sv_sum', 'replacement_loss', 5)} at k = 5",
              f"the output-level measure too ({rho('output_norm', 'replacement_loss', 1)})",
              f"{iv('replacement_state', 1, 'freq_1-9')} against {iv('replacement_state', 1, 'freq_10000+')} at k = 1",
              f"{iv('replacement_loss', 1, 'freq_1-9')} against {iv('replacement_loss', 1, 'freq_10000+')} nats",
              f"{iv('truncation_loss', 1)} nats at d = 1, {iv('truncation_loss', 10)} at d = 10, "
              f"{iv('truncation_loss', 50)} at d = 50, {iv('truncation_loss', 100)} at d = 100",
              f"not different from 0 at d = 200 ({iv('truncation_loss', 200)})",
              f"beyond d = 20 costs {iv('order_shuffled', 20)}, beyond d = 50 still {iv('order_shuffled', 50)}",
              f"({iv('order_shuffled', 100)})",
              f"content words beyond d = 20 costs {iv('drop_content', 20)}, as many random words "
              f"{iv('drop_random', 20)}, the function words {iv('drop_function', 20)} (beyond d = 2: "
              f"{iv('drop_function', 2)}"]
    return [("docs/results.md", q) for q in quotes]


def _demo_quotes():
    rows = _rows(RESULTS / "demo" / "seeds.csv")

    def span(column, fmt="{:.2f}"):
        values = sorted(float(r[column]) for r in rows)
        return f"{fmt.format(values[0])} - {fmt.format(values[-1])}"
    intervals = ", ".join(f"{float(r['sv_ratio_estimate']):.2f} [{float(r['sv_ratio_lo']):.2f}, "
                          f"{float(r['sv_ratio_hi']):.2f}]" for r in rows)
    return [("docs/getting-started.md", q) for q in (
        span("sv_ratio"), f"95% intervals over 10 text blocks: {intervals}", span("sigma_ratio"),
        span("txray_noun_span", "{:.0f}"), span("txray_filler_span", "{:.0f}"))]


@pytest.mark.parametrize("page, quote", _paper_quotes() + _frequency_quotes() + _behaviour_quotes() + _demo_quotes(),
                         ids=lambda x: x[:60])
def test_quoted_figure_matches_the_result_files(page, quote):
    text = (REPO / page).read_text(encoding="utf-8")
    assert quote in " ".join(text.split()), f"{page} does not quote {quote!r}"



def test_the_lstm_transformer_table_is_the_committed_comparison():
    """The README's and the results page's side-by-side table is headline_table of the committed sg-compare output."""
    from state_gradients.workflows import compare

    table = compare.headline_table(str(RESULTS / "ptb-lstm-vs-transformer"))
    for page in ("README.md", "docs/results.md", "docs/results/ptb-lstm-vs-transformer/README.md"):
        assert table in (REPO / page).read_text(encoding="utf-8"), page
