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
    import math

    pert = {(r["measure"], r["class"], int(r["delay"])): r
            for r in _rows(RESULTS / "ptb-64e-256h" / "perturb" / "perturbation.csv")}
    beh = {(r["gradient_measure"], r["behaviour"], int(r["delay"])): r
           for r in _rows(RESULTS / "ptb-64e-256h" / "report_behaviour.csv")}

    def iv(measure, k, cls="overall"):
        r = pert[(measure, cls, k)]
        return f"{_g(float(r['value']))} [{_g(float(r['lo']))}, {_g(float(r['hi']))}]"

    def pct(measure, k):
        return f"+{100 * (math.exp(float(pert[(measure, 'overall', k)]['value'])) - 1):.2g}%"

    def mean(measure, cls, k=1):
        return float(pert[(measure, cls, k)]["value"])

    def ratio(x):
        return f"{x:.1f}" if x >= 1 else f"{x:.2f}"

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
    # the verdicts the text states: every gradient measure disagrees with the loss change at k = 1; the weakest
    # agreement with the state change is the coherence ratio's at k = 1
    assert all(r["verdict"] == "disagree" for key, r in beh.items() if key[1] == "replacement_loss" and key[2] == 1)
    weakest = min((r for key, r in beh.items() if key[1] == "replacement_state"), key=lambda r: float(r["rho"]))
    assert (weakest["gradient_measure"], weakest["delay"]) == ("coherence_ratio", "1")
    rare, frequent = "freq_1-9", "freq_10000+"

    def fewest(measure, cls):
        return min(int(float(r["count"])) for (m, c, _), r in pert.items() if m == measure and c == cls)
    counts = {c: fewest("replacement_state", c) for c in ("conjunctions", "pronouns", rare)}
    assert min(int(float(r["count"])) for (m, _, _), r in pert.items()
               if m in ("replacement_state", "truncation_loss", "same_class_state")) == fewest("same_class_state", rare)
    assert all(n >= 300 for n in counts.values()) and fewest("same_class_state", rare) >= 300
    intervals = {(r["class"], int(r["delay"])): r
                 for r in _rows(RESULTS / "ptb-64e-256h" / "intervals" / "intervals.csv")}
    quotes = [f"{iv('replacement_state', 1)} at k = 1, {iv('replacement_state', 10)} at k = 10 and "
              f"{iv('replacement_state', 40)} at k = 40",
              f"{iv('replacement_predicted', 1)}, {iv('replacement_predicted', 10)} and {iv('replacement_predicted', 40)}",
              f"predicted {iv('replacement_predicted', 1, rare)}, measured {iv('replacement_state', 1, rare)}; bin "
              f"10000+: predicted {iv('replacement_predicted', 1, frequent)}, measured "
              f"{iv('replacement_state', 1, frequent)}",
              f"({agree} of {total} rank correlations 'agree'; SV sum {rho('sv_sum', 'replacement_state', 1)} at "
              f"k = 1, {rho('sv_sum', 'replacement_state', 10)} at k = 10; the weakest, the coherence ratio at k = 1, "
              f"{rho('coherence_ratio', 'replacement_state', 1)} with a permutation p of "
              f"{float(beh[('coherence_ratio', 'replacement_state', 1)]['p_perm']):.2g})",
              f"the conjunctions' ({counts['conjunctions']}), the pronouns' ({counts['pronouns']}) and the rarest "
              f"bin's, training count 1-9 ({counts[rare]}; {fewest('same_class_state', rare)} with a same-class",
              f"({int(float(pert[('replacement_state', 'overall', 1)]['count'])):,} occurrences at k = 1; a same-class "
              f"replacement for the {int(float(pert[('same_class_state', 'overall', 1)]['count'])):,} of them",
              f"({iv('replacement_loss', 1)} nats at k = 1, {iv('replacement_loss', 10)} at k = 10",
              f"SV sum {rho('sv_sum', 'replacement_loss', 1)}, every gradient measure 'disagrees' there, the "
              f"output-level measure too ({rho('output_norm', 'replacement_loss', 1)})",
              f"(SV sum {rho('sv_sum', 'replacement_loss', 5)} at k = 5, Cochran's p of the classes "
              f"{float(beh[('sv_sum', 'replacement_loss', 5)]['p_classes']):.2f})",
              f"as much ({iv('same_class_state', 1)} at k = 1) but changes the loss less ({iv('same_class_loss', 1)} "
              f"nats at k = 1, {iv('same_class_loss', 10)} at k = 10 against the unigram draw's "
              f"{iv('replacement_loss', 10)})",
              f"(SV sum {rho('sv_sum', 'same_class_state', 1)} with the state change, "
              f"{rho('sv_sum', 'same_class_loss', 1)} with the loss change, k = 1)"]
    for what, measure in (("the input's change, raw ‖Δx‖", "replacement_input_raw"),
                          ("the input's change, normalised ‖D⁻¹Δx‖", "replacement_input"),
                          ("the state's change per unit ‖D⁻¹Δx‖", "replacement_state"),
                          ("the state's change ‖Δs_t‖", "replacement_state_raw"),
                          ("the loss change (nats)", "replacement_loss"),
                          ("the same with a same-class word", "same_class_loss")):
        quotes.append(f"| {what} | {iv(measure, 1, rare)} | {iv(measure, 1, frequent)} | "
                      f"{ratio(mean(measure, frequent) / mean(measure, rare))} |")
    per_unit = (mean("replacement_loss", frequent) / mean("replacement_state_raw", frequent)) / (
        mean("replacement_loss", rare) / mean("replacement_state_raw", rare))
    scale = [mean("replacement_input", c) / mean("replacement_input_raw", c) for c in (rare, frequent)]
    assert abs(scale[0] / scale[1] - 1) < 0.02, scale                  # "scales both bins alike"
    quotes += [f"the loss moves {per_unit:.1f} times as much per unit of state change",
               f"about {sum(scale) / 2:.1f} times: it is not what puts rare words first",
               f"(per-occurrence nuclear norm {_g(float(intervals[(rare, 1)]['occ_nuclear']))} against "
               f"{_g(float(intervals[(frequent, 1)]['occ_nuclear']))} at k = 1)",
               f"loss's own sensitivity per unit of normalised input ({_g(float(intervals[(rare, 1)]['output_norm']))} "
               f"against {_g(float(intervals[(frequent, 1)]['output_norm']))})",
               f"({iv('replacement_loss', 10, rare)} against {iv('replacement_loss', 10, frequent)})",
               f"d = 50: {iv('truncation_loss', 50)} nats ({pct('truncation_loss', 50)}); d = 100: "
               f"{iv('truncation_loss', 100)} ({pct('truncation_loss', 100)}); d = 200: {iv('truncation_loss', 200)} "
               f"({pct('truncation_loss', 200)})",
               f"d = 50, bins 1000-9999: {iv('truncation_loss', 50, 'freq_1000-9999')}, 10000+: "
               f"{iv('truncation_loss', 50, frequent)}; bin 10-99: {iv('truncation_loss', 50, 'freq_10-99')} at "
               f"d = 50, {iv('truncation_loss', 100, 'freq_10-99')} at d = 100, "
               f"{iv('truncation_loss', 200, 'freq_10-99')} at d = 200 (100-999 at d = 100: "
               f"{iv('truncation_loss', 100, 'freq_100-999')})",
               f"d = 10: determiners {iv('truncation_loss', 10, 'determiners')}, prepositions "
               f"{iv('truncation_loss', 10, 'prepositions')}; nouns {iv('truncation_loss', 10, 'nouns')} at d = 10 "
               f"and {iv('truncation_loss', 50, 'nouns')} at d = 50, verbs {iv('truncation_loss', 50, 'verbs')} at "
               f"d = 50, adjectives {iv('truncation_loss', 10, 'adjectives')} at d = 10 and "
               f"{iv('truncation_loss', 50, 'adjectives')} at d = 50",
               f"beyond 50: shuffled {iv('order_shuffled', 50)} ({pct('order_shuffled', 50)}), reversed "
               f"{iv('order_reversed', 50)}; beyond 100: {iv('order_shuffled', 100)}",
               f"beyond d = 5: {iv('drop_content', 5)} ({pct('drop_content', 5)}), {iv('drop_random', 5)} "
               f"({pct('drop_random', 5)}), {iv('drop_function', 5)} ({pct('drop_function', 5)}); beyond 20: "
               f"{iv('drop_content', 20)}, {iv('drop_random', 20)}, {iv('drop_function', 20)}"]
    # the verdicts' words: shuffling beyond 50 and the determiners at d = 10 are not different from 0
    assert float(pert[("order_shuffled", "overall", 50)]["lo"]) < 0 < float(pert[("order_shuffled", "overall", 50)]["hi"])
    assert float(pert[("truncation_loss", "determiners", 10)]["lo"]) < 0
    assert float(pert[("truncation_loss", "freq_10-99", 200)]["lo"]) > 0
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
