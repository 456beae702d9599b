"""The papers' findings from SV-sum tables and replicates: decay fits, class rankings, rules, families of comparisons."""
# Shape letters: K delays, C classes.
import dataclasses
import math
import re

import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.core.formats import OVERALL  # noqa: F401  (the findings' class of all words)
from state_gradients.measures import intervals, verdicts

FREQ_PREFIX = "freq_"
RANK_DELAYS = (1, 5, 10, 20, 40)
REMEMBERED_POS = "nouns"


@dataclasses.dataclass
class Fit:
    """y ≈ a·exp(−k/tau) ("exponential") or y ≈ a·k^(−b) ("power law"), fitted on log y."""
    model: str
    a: float
    rate: float          # tau for the exponential, b for the power law
    rmse_log: float      # root mean square of the residuals of log y (natural log)
    delays: tuple

    def predict(self, k):
        k = np.asarray(k, dtype=np.float64)
        if self.model == "exponential":
            return self.a * np.exp(-k / self.rate)
        return self.a * k ** (-self.rate)


def fit_decay(delays, values, first_delay=1):
    """(exponential Fit, power-law Fit) of values against delays >= first_delay (least squares on log).

    Both use the same points, so their errors compare. delay 0 is left out by default: the
    power law is undefined there, and delay 0 (the word itself) is not memory.
    """
    delays = np.asarray(delays, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = (delays >= max(first_delay, 1e-12)) & (values > 0)
    k, y = delays[keep], np.log(values[keep])
    if len(k) < 3:
        raise UserError(f"fitting the decay needs at least 3 delays >= {first_delay} with a positive value, "
                        f"got {len(k)}")
    fits = []
    for model, x in (("exponential", k), ("power law", np.log(k))):
        slope, intercept = np.polyfit(x, y, 1)
        rmse = float(np.sqrt(np.mean((intercept + slope * x - y) ** 2)))
        rate = -1.0 / slope if model == "exponential" else -slope
        if model == "exponential" and slope == 0:
            rate = math.inf
        fits.append(Fit(model, float(np.exp(intercept)), float(rate), rmse, tuple(int(d) for d in k)))
    return fits[0], fits[1]


def ranking(table, classes, delays):
    """{delay: [(class, sum)] sorted by decreasing sum} for the delays that every class has."""
    out = {}
    for k in delays:
        if all(k in table[c] for c in classes):
            out[k] = sorted(((c, table[c][k]) for c in classes), key=lambda item: -item[1])
    return out


def class_groups(table):
    """(POS classes in file order, frequency bins rarest first) of an svs table ({class: {delay: sum}})."""
    pos = [c for c in table if c != OVERALL and not c.startswith(FREQ_PREFIX)]
    return pos, sorted((c for c in table if c.startswith(FREQ_PREFIX)), key=freq_sort_key)


def freq_sort_key(name):
    match = re.match(rf"^{FREQ_PREFIX}(\d+)", name)
    return int(match.group(1)) if match else math.inf


# --------------------------------------------------------------------------------------------
# Point-estimate rules (stated in the report)
# --------------------------------------------------------------------------------------------

def finding_shrink(overall):
    delays = sorted(overall)
    drops = sum(overall[b] < overall[a] for a, b in zip(delays, delays[1:]))
    pairs = len(delays) - 1
    last = overall[delays[-1]] / overall[delays[0]]
    verdict = "holds" if drops == pairs else ("partly" if last < 1 else "does not hold")
    return verdict, (f"the sum falls from delay {delays[0]} to {delays[-1]} at {drops} of {pairs} steps; "
                     f"at delay {delays[-1]} it is {last:.3g} of its delay-{delays[0]} value")


def finding_decay(exp_fit, pow_fit):
    better = "power law" if pow_fit.rmse_log < exp_fit.rmse_log else "exponential"
    verdict = "holds" if better == "power law" else "does not hold"
    return verdict, (f"on log scale over delays {exp_fit.delays[0]}-{exp_fit.delays[-1]} the power law "
                     f"(b = {pow_fit.rate:.3g}) leaves an RMS error of {pow_fit.rmse_log:.3g}, the exponential "
                     f"(tau = {exp_fit.rate:.3g}) {exp_fit.rmse_log:.3g}: the {better} fits better")


def finding_nouns(ranks):
    if not ranks:
        return "not computed", "no POS classes"
    firsts = [k for k, order in ranks.items() if order[0][0] == REMEMBERED_POS]
    places = ", ".join(f"{k}: {[c for c, _ in order].index(REMEMBERED_POS) + 1} of {len(order)}"
                       for k, order in ranks.items())
    verdict = "holds" if len(firsts) == len(ranks) else ("partly" if firsts else "does not hold")
    return verdict, f"rank of {REMEMBERED_POS} among the POS classes at delay {places}"


def finding_frequency(table, freq_classes, delays):
    if len(freq_classes) < 2:
        return "not computed", "fewer than two frequency bins"
    rare, frequent = freq_classes[0], freq_classes[-1]
    usable = [k for k in delays if all(k in table[c] for c in freq_classes)]
    above = [k for k in usable if table[rare][k] > table[frequent][k]]
    ordered = [k for k in usable if all(table[a][k] > table[b][k] for a, b in zip(freq_classes, freq_classes[1:]))]
    start = 1 if all(1 in table[c] for c in (rare, frequent)) else min(table[rare])
    far = max(k for k in usable) if usable else None
    longer = None
    if far is not None and table[rare][start] > 0 and table[frequent][start] > 0:
        keep_rare = table[rare][far] / table[rare][start]
        keep_freq = table[frequent][far] / table[frequent][start]
        longer = (keep_rare, keep_freq)
    better = len(above) == len(usable) and usable
    kept_longer = longer is not None and longer[0] > longer[1]
    if better and kept_longer:
        verdict = "holds"
    elif above or kept_longer:
        verdict = "partly"
    else:
        verdict = "does not hold"
    text = (f"{rare} above {frequent} at {len(above)} of {len(usable)} ranking delays; all bins in frequency "
            f"order at {len(ordered)} of {len(usable)}")
    if longer is not None:
        text += (f"; share of the delay-{start} value left at delay {far}: {rare} {longer[0]:.3g}, "
                 f"{frequent} {longer[1]:.3g}")
    return verdict, text


# --------------------------------------------------------------------------------------------
# Families of comparisons with intervals (measures/verdicts.py), under every measure
# --------------------------------------------------------------------------------------------

CONTEXT_FINDINGS = {"nouns": "nouns are remembered best among POS classes (tags in context)",
                    "matched": "nouns above verbs within frequency bins (tags in context)",
                    "types": "infrequent words are remembered better and longer, every word type weighted equally "
                             "(tags in context)",
                    "within_pos": "infrequent words are remembered better within POS classes (tags in context)"}
# a POS x frequency cell enters the within-POS comparison with at least this many occurrences at k = 1 (the
# frequency bins themselves are merged until each has 1,000 validation tokens: sg-freq-classes)
MIN_CELL_OCCURRENCES = 1000
TYPE_WEIGHTED = intervals.TYPE_GROUPS


def type_level_families(reps, pos_classes, freq_classes, overall_delays):
    """{finding: (verdict, family of verdicts.Comparison)} of the type-level classes, judged on reps.

    reps: verdicts.Replicates of one run, or verdicts.Pooled of several seeds; overall_delays:
    the delays of the overall curve (those >= 1 with replicates are fitted).
    """
    fit_delays = [k for k in sorted(overall_delays) if k >= 1 and reps.has([(OVERALL, k)])]
    families = {}
    if len(fit_delays) >= 3:
        families["the decay is fast but not exponential"] = verdicts.finding_decay(reps, OVERALL, fit_delays, fit_decay)
    families["singular values shrink with delay"] = verdicts.finding_shrink(reps, OVERALL, list(RANK_DELAYS))
    if REMEMBERED_POS in pos_classes and len(pos_classes) > 1:
        others = [c for c in pos_classes if c != REMEMBERED_POS]
        families["nouns are remembered best among POS classes"] = verdicts.finding_best(
            reps, REMEMBERED_POS, others, list(RANK_DELAYS))
    if len(freq_classes) >= 2:
        families["infrequent words are remembered better and longer"] = verdicts.finding_rare(
            reps, freq_classes[0], freq_classes[-1], list(RANK_DELAYS), RANK_DELAYS[-1])
    return families


def common_bin_weights(reps):
    """{bin: weight} of the frequency bins where nouns and verbs (in context) both occur: the bins' share of the
    two classes together at k = 1 (empty when there are no such classes)."""
    names = {cls for cls, _ in reps.value}
    bins = sorted((n.split("-", 1)[1] for n in names if n.startswith("nouns-freq_")), key=freq_sort_key)
    # a bin without nouns or verbs has nothing to compare
    counts = {b: [reps.count.get((f"{c}-{b}", 1)) for c in ("nouns", "verbs")] for b in bins}
    counts = {b: sum(pair) for b, pair in counts.items() if all(pair)}
    total = sum(counts.values())
    return {b: n / total for b, n in counts.items()}


def measure_panel(type_level, context, pos_classes, freq_classes, overall_delays):
    """The findings judged under every measure of verdicts.MEASURES that the run has: [(finding, {measure: (verdict,
    effect, comparisons)}, summary)], summary by verdicts.across_measures over the measures that judged it."""
    panel = {}
    for measure in verdicts.MEASURES:
        reps = type_level.for_measure(measure)
        if not reps.has([(OVERALL, 1)]):
            continue
        families = type_level_families(reps, pos_classes, freq_classes, overall_delays)
        if context is not None:
            families.update(context_families(context.for_measure(measure), pos_classes))
        for name, (verdict, family) in families.items():
            panel.setdefault(name, {})[measure] = (verdict, verdicts.family_effect(family), len(family))
    return [(name, by_measure, verdicts.across_measures({m: v for m, (v, _, n) in by_measure.items() if n}))
            for name, by_measure in panel.items()]


def context_families(reps, pos_classes):
    """{finding: (verdict, family)} of the classes in context (named without the ctx_ prefix), judged on reps."""
    names = {cls for cls, _ in reps.value}
    plain = [c for c in pos_classes if c in names]
    families = {}
    if REMEMBERED_POS in plain and len(plain) > 1:
        families[CONTEXT_FINDINGS["nouns"]] = verdicts.finding_best(
            reps, REMEMBERED_POS, [c for c in plain if c != REMEMBERED_POS], list(RANK_DELAYS))
    weights = common_bin_weights(reps)
    if weights:
        families[CONTEXT_FINDINGS["matched"]] = verdicts.frequency_matched(
            reps, "nouns", "verbs", list(weights), list(RANK_DELAYS), weights)
    typed = type_weighted_bins(reps)
    if len(typed) >= 2:
        families[CONTEXT_FINDINGS["types"]] = verdicts.finding_rare(reps, typed[0], typed[-1], list(RANK_DELAYS),
                                                                    RANK_DELAYS[-1])
    cells = pos_frequency_cells(reps, pos_classes)
    if cells:
        families[CONTEXT_FINDINGS["within_pos"]] = verdicts.finding_within(reps, cells, list(RANK_DELAYS))
    return families


def type_weighted_bins(reps):
    """The type-weighted bins freq_BIN+types (sg-intervals' type-group families) of reps, rarest first."""
    names = {cls for cls, _ in reps.value}
    return sorted((n for n in names if n.startswith(FREQ_PREFIX) and n.endswith(TYPE_WEIGHTED)), key=freq_sort_key)


def pos_frequency_cells(reps, pos_classes):
    """{POS class: (its rarest bin's class, its most frequent bin's class)} among its POS x frequency cells
    (NAME-freq_BIN, in context) with at least MIN_CELL_OCCURRENCES at k = 1; classes with fewer than two such cells
    are left out."""
    names = {cls for cls, _ in reps.value}
    out = {}
    for pos in pos_classes:
        cells = sorted((n for n in names if n.startswith(f"{pos}-{FREQ_PREFIX}")
                        and (reps.count.get((n, 1)) or 0) >= MIN_CELL_OCCURRENCES),
                       key=lambda n: freq_sort_key(n.split("-", 1)[1]))
        if len(cells) >= 2:
            out[pos] = (cells[0], cells[-1])
    return out


# --------------------------------------------------------------------------------------------
# The gradient measures beside the behavioural ones (sg-perturb)
# --------------------------------------------------------------------------------------------

# compared across classes with every gradient measure
BEHAVIOUR = ("replacement_state", "replacement_loss", "same_class_state", "same_class_loss")
MIN_RANKED_CLASSES = 4


def behaviour_values(rows, replicates):
    """{(measure, class, delay): (value, [N] leave-one-block-out values)} of sg-perturb's two CSV files."""
    loo = {}
    for r in sorted(replicates, key=lambda r: r["block"]):
        loo.setdefault((r["measure"], r["class"], r["delay"]), []).append(r["loo"])
    return {(r["measure"], r["class"], r["delay"]): (r["value"], np.array(loo.get((r["measure"], r["class"],
                                                                                     r["delay"]), [])))
            for r in rows}


def _spearman(x, y):
    import scipy.stats

    return float(scipy.stats.spearmanr(x, y).statistic)


def _rank_rows(values):
    """Ranks along the last axis (0 .. C - 1; ties broken by order: the class means are continuous)."""
    return np.argsort(np.argsort(values, axis=-1), axis=-1).astype(float)


def _rho_of_ranks(a, b):
    """Spearman's ρ of untied ranks a, b [..., C]: 1 - 6 Σ d² / (C (C² - 1))."""
    c = a.shape[-1]
    return 1.0 - 6.0 * np.sum((a - b) ** 2, axis=-1) / (c * (c * c - 1))


BOOTSTRAP_DRAWS = 2000
EXACT_PERMUTATIONS = 8           # up to this many classes every ordering; beyond, PERMUTATION_DRAWS random ones
PERMUTATION_DRAWS = 20000


def permutation_p(rho, classes, rng):
    """One-sided p of Spearman's ρ among `classes` unrelated rankings: P(ρ' >= ρ) for ρ >= 0, P(ρ' <= ρ) below
    (every ordering of up to EXACT_PERMUTATIONS classes; else PERMUTATION_DRAWS random ones, the observed counted);
    NaN for a NaN ρ (a measure equal in every class)."""
    import itertools

    if not np.isfinite(rho):
        return float("nan")

    base = np.arange(classes, dtype=float)
    if classes <= EXACT_PERMUTATIONS:
        perms, extra = np.array(list(itertools.permutations(range(classes))), float), 0
    else:
        perms, extra = rng.permuted(np.tile(base, (PERMUTATION_DRAWS, 1)), axis=1), 1
    null = _rho_of_ranks(base, perms)
    tol = 1e-12                      # ρ takes values on a grid of 6 / (C (C² - 1)): equal ones count as reached
    hits = np.sum(null >= rho - tol) if rho >= 0 else np.sum(null <= rho + tol)
    return float((hits + extra) / (len(null) + extra))


def _pseudo_draws(value, loo, index):
    """Bootstrap draws [B] of a class mean from its delete-one-block values: the jackknife pseudo-values
    N θ − (N − 1) θ_(−j) resampled by block (index [B, N], the same for every class and measure, so that their
    shared blocks stay shared), inflated by √(N / (N − 1)) so that their variance is the jackknife's."""
    n = len(loo)
    pseudo = n * value - (n - 1) * np.asarray(loo, float)
    return value + np.sqrt(n / (n - 1)) * (pseudo[index].mean(axis=1) - pseudo.mean())


def rank_agreement(gradient, behaviour, classes, delays, seed=0):
    """Spearman's rank correlation across classes between each gradient measure (verdicts.MEASURES, read from
    gradient, a verdicts.Replicates) and each behavioural measure of BEHAVIOUR (behaviour_values), at each delay.

    Three checks, because a rank statistic over a handful of noisy class means can mislead three ways:
      lo, hi     the 95% interval of ρ over a block bootstrap of the class means (the delete-one-block values as
                 jackknife pseudo-values, resampled by block for every class and both measures at once; the
                 percentile and basic intervals spanned: rank_statistics): how precisely the text measures the
                 ranking. A jackknife of ρ
                 itself is no good: ρ is a step function of the means, so its delete-one values are often all
                 equal (a zero-width interval).
      p_perm     the permutation p of ρ (permutation_p): whether that many classes, ranked without any
                 relation, would agree (or disagree) as much.
      p_classes  whether both measures tell the classes apart at all (class_separation_p).
    The verdict needs all three (agreement_word). Returns [{gradient, behaviour, delay, classes, rho, lo, hi, p_perm,
    p_classes}] where both have every class finite, at least MIN_RANKED_CLASSES classes, and the same blocks; seeded
    (seed, and per row its names and delay)."""
    import zlib

    out = []
    for name in verdicts.MEASURES:
        reps = gradient.for_measure(name)
        for measure in BEHAVIOUR:
            for k in delays:
                keys = [c for c in classes if reps.has([(c, k)]) and (measure, c, k) in behaviour
                        and np.isfinite(behaviour[(measure, c, k)][0])
                        and len(behaviour[(measure, c, k)][1]) == len(reps.loo[(c, k)])
                        and np.isfinite(behaviour[(measure, c, k)][1]).all()]
                if len(keys) < MIN_RANKED_CLASSES:
                    continue
                # each row its own draws, so that adding a measure changes no other row's interval
                rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{measure}/{k}".encode())])
                stats = rank_statistics([reps.value[(c, k)] for c in keys], [reps.loo[(c, k)] for c in keys],
                                        [behaviour[(measure, c, k)][0] for c in keys],
                                        [behaviour[(measure, c, k)][1] for c in keys], rng)
                out.append({"gradient": name, "behaviour": measure, "delay": k, "classes": len(keys), **stats})
    return out


def class_separation_p(values, loo):
    """p of Cochran's Q that classes with means values [C] and delete-one-block values loo [C][N] share one mean
    (jackknife standard errors; Q = Σ (θ_c − θ̄)² / se_c² against χ² with C − 1 degrees of freedom): small when the
    measure tells the classes apart beyond its noise."""
    import scipy.stats

    loo = np.asarray(loo, float)
    n = loo.shape[1]
    variance = (n - 1) / n * np.sum((loo - loo.mean(axis=1, keepdims=True)) ** 2, axis=1)
    if not np.all(variance > 0):              # a class without any noise: Q has no scale, the test says nothing
        return float("nan")
    weights = 1.0 / variance
    values = np.asarray(values, float)
    centre = np.sum(weights * values) / np.sum(weights)
    return float(scipy.stats.chi2.sf(np.sum(weights * (values - centre) ** 2), len(values) - 1))


def rank_statistics(g, g_loo, b, b_loo, rng):
    """{rho, lo, hi, p_perm, p_classes} of class means g, b [C] with their delete-one-block values g_loo, b_loo
    [C][N] (the same N blocks): Spearman's ρ, its 95% block-bootstrap interval, its permutation p, and the larger of
    the two measures' class_separation_p (rank_agreement).

    The interval spans both the percentile interval [q2.5, q97.5] of the bootstrap ρ* and the basic (reflected)
    one [2ρ − q97.5, 2ρ − q2.5], clipped to [-1, 1]: noise shrinks a rank correlation of noisy means towards 0 and
    the bootstrap's extra noise shrinks ρ* as much again, which reflecting undoes, while with little noise a near
    tie between two classes makes ρ* discrete, where the percentile interval covers better. In simulated data
    (tests/rank_simulation.py, docs/measures.md) neither alone covers the noise-free ranking's ρ in every regime;
    together they cover it in 90-99.8% of data sets where the classes stand out from the noise."""
    rho = _spearman(g, b)
    blocks = len(g_loo[0])
    index = rng.integers(0, blocks, size=(BOOTSTRAP_DRAWS, blocks))
    g_star = np.stack([_pseudo_draws(v, loo, index) for v, loo in zip(g, g_loo)], axis=1)     # [B, C]
    b_star = np.stack([_pseudo_draws(v, loo, index) for v, loo in zip(b, b_loo)], axis=1)
    q_lo, q_hi = np.percentile(_rho_of_ranks(_rank_rows(g_star), _rank_rows(b_star)), [2.5, 97.5])
    lo, hi = min(q_lo, 2 * rho - q_hi), max(q_hi, 2 * rho - q_lo)
    return {"rho": rho, "lo": float(max(-1.0, lo)), "hi": float(min(1.0, hi)),
            "p_perm": permutation_p(rho, len(g), rng),
            "p_classes": max(class_separation_p(g, g_loo), class_separation_p(b, b_loo))}


AGREEMENT_ALPHA = 0.05


def agreement_word(row):
    """'agree' when the rank correlation's interval lies above 0, unrelated rankings of as many classes would rarely
    agree as much (p_perm < AGREEMENT_ALPHA), and both measures tell the classes apart beyond their noise (p_classes
    < AGREEMENT_ALPHA: else two measures of the same text can rank pure noise alike, through the blocks they
    share); 'disagree' likewise below 0; else 'unclear'."""
    sure = row["p_perm"] < AGREEMENT_ALPHA and row["p_classes"] < AGREEMENT_ALPHA
    return "agree" if row["lo"] > 0 and sure else "disagree" if row["hi"] < 0 and sure else "unclear"
