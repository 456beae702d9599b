"""The papers' findings judged with intervals: statistics of sg-intervals' replicates, Holm within a finding, stated rules."""
# Shape letters: N blocks, S runs (seeds).
#
# A statistic is any function f of the bias-corrected SV sums {(class, delay): estimate}: f of
# the estimates, with the ordinary delete-one-block jackknife over the replicates f(theta_j - bias)
# (intervals.csv's estimate and bias, replicates.csv's loo_sv_sum): a standard error, 95% interval
# and p-value of f itself (state_gradients/measures/uncertainty.py), so that a ratio's interval is the
# ratio's. A finding is a family of such comparisons; Holm's correction runs over the family, and
# a comparison counts as "above" ("below") when its Holm-adjusted p is below ALPHA and its
# estimate is positive (negative). On verdicts.Pooled (several seeds of one recipe over the same
# text) the seeds are a random effect: the variance of the seed average adds the between-seed
# variance, net of the text variance each seed carries, over the number of seeds, with
# Satterthwaite's degrees of freedom; the estimand is then the recipe, not one trained model.
import dataclasses
import math

import numpy as np

from state_gradients.measures import uncertainty

ALPHA = 0.05
HOLDS, PARTLY, NOT, INCONCLUSIVE = "holds", "partly", "does not hold", "inconclusive"

# The panel of memory measures (docs/measures.md), one class each. A measure is read from an
# intervals.csv row (its value on all blocks) and a replicates.csv row (its value without block
# j); adding one is a class here and its line in MEASURES (docs/design.md, "Adding a measure").

def _root(x):
    return math.sqrt(x) if x >= 0 else math.nan


class Measure:
    """One memory measure: `name` (its key in MEASURES and the CSV files), `what` (its heading), `share` (a share in
    [0, 1], shown as it is rather than relative to k = 0)."""
    name = what = ""
    share = False

    def value(self, row):
        """Its value in an intervals.csv row."""
        raise NotImplementedError

    def loo(self, row, replicate):
        """Its value without block j, from the class's intervals.csv row and that block's replicates.csv row."""
        raise NotImplementedError


class SvSum(Measure):
    """The papers' measure, bias-corrected: the correction shifts every replicate alike."""
    name, what = "sv_sum", "SV sum of the mean ‖E[G·D]‖_* (the papers'; bias-corrected)"

    def value(self, row):
        return row["estimate"]

    def loo(self, row, replicate):
        return replicate["loo_sv_sum"] - row["bias"]


class Magnitude(Measure):
    name, what = "magnitude", "RMS magnitude (E‖G·D‖_F²)^½"

    def value(self, row):
        return _root(row["magnitude_sq"])

    def loo(self, row, replicate):
        return _root(replicate["loo_magnitude_sq"])


class CoherenceRatio(Measure):
    name, what, share = "coherence_ratio", "coherence ratio ‖E[G·D]‖_F² / E‖G·D‖_F²", True

    def value(self, row):
        return self._ratio(row, "")

    def loo(self, row, replicate):
        return self._ratio(replicate, "loo_")

    @staticmethod
    def _ratio(source, prefix):
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.float64(source[f"{prefix}coherence_sq"]) / source[f"{prefix}magnitude_sq"])


class OccurrenceMean(Measure):
    """A mean over occurrences that the engine sums per block (column NAME, replicates loo_NAME)."""

    def __init__(self, name, what):
        self.name, self.what = name, what

    def value(self, row):
        return row[self.name]

    def loo(self, row, replicate):
        return replicate[f"loo_{self.name}"]


MEASURES = {measure.name: measure for measure in (
    SvSum(), Magnitude(), OccurrenceMean("occ_nuclear", "per-occurrence nuclear norm E‖G·D‖_*"), CoherenceRatio(),
    OccurrenceMean("output_norm", "output level E‖d log p(w_t+1) / d x_t−k · D‖"))}


def find_measure(name):
    """The Measure called `name` (ValueError naming the known ones)."""
    if name not in MEASURES:
        raise ValueError(f"unknown measure {name!r} (known: {', '.join(MEASURES)})")
    return MEASURES[name]


class Behaviour(Measure):
    """A behavioural measure of sg-perturb (perturbation.MEASURES): a mean over occurrences, from perturbation.csv
    (value) and perturbation_replicates.csv (loo); `share`: a quantity in the measure's own units (a loss change in
    nats) compared as a difference rather than a ratio."""

    def __init__(self, name, what, share=False):
        self.name, self.what, self.share = name, what, share

    def value(self, row):
        return row["value"]

    def loo(self, row, replicate):
        return replicate["loo"]


class Replicates:
    """One measure (default the bias-corrected SV sum) on all blocks and on all but block j, per (class, delay), from
    sg-intervals' two CSV files. For the SV sum: value = estimate, loo = loo_sv_sum - bias (the correction shifts
    every replicate alike); the other measures of MEASURES are means over occurrences (Measure.value, .loo)."""

    def __init__(self, interval_rows, replicate_rows, measure="sv_sum"):
        self.measure, self.rows, self.replicate_rows = measure, interval_rows, replicate_rows
        reader = measure if isinstance(measure, Measure) else find_measure(measure)
        self.value = {(r["class"], r["delay"]): reader.value(r) for r in interval_rows}
        self.count = {(r["class"], r["delay"]): r["count"] for r in interval_rows}
        by_key = {(r["class"], r["delay"]): r for r in interval_rows}
        grouped = {}
        for r in replicate_rows:
            key = (r["class"], r["delay"])
            loo = reader.loo(by_key[key], r) if key in by_key else np.nan
            grouped.setdefault(key, []).append((r["block"], loo, r["block_positions"], r.get("block_count")))
        self.loo, self.sizes, self.block_counts = {}, {}, {}
        for key, items in grouped.items():
            items.sort()
            self.loo[key] = np.array([v for _, v, _, _ in items])
            self.sizes[key] = np.array([m for _, _, m, _ in items], np.float64)
            self.block_counts[key] = [c for _, _, _, c in items]
        # the text blocks; a type-weighted class NAME+types (intervals.py) has its type groups instead, and a
        # statistic takes keys of one resampling only (evaluate)
        lengths = [len(v) for v in self.loo.values()]
        self.blocks = max(set(lengths), key=lengths.count) if lengths else 0

    def for_measure(self, measure):
        """The same rows read as another measure of MEASURES."""
        return Replicates(self.rows, self.replicate_rows, measure)

    def has(self, keys):
        """Whether every key has a finite value and finite replicates (a class with no occurrence has NaN)."""
        return all(key in self.value and key in self.loo and np.isfinite(self.value[key])
                   and np.isfinite(self.loo[key]).all() for key in keys)

    def evaluate(self, f, keys):
        """(f on all blocks, [N] f on all but block j, [N] block sizes: the keys' mean)."""
        full = f({key: self.value[key] for key in keys})
        n = {len(self.loo[key]) for key in keys}
        if len(n) > 1:
            raise ValueError(f"the keys {keys} have replicates over different units ({sorted(n)} blocks: text blocks "
                             "and type groups?): one statistic resamples one kind")
        loo = np.array([f({key: self.loo[key][j] for key in keys}) for j in range(n.pop())])
        return full, loo, np.mean([self.sizes[key] for key in keys], axis=0)

    def statistic(self, f, keys):
        """f({key: estimate}) with the jackknife over the replicates (no further correction), and its t test's p."""
        return _summary(*self.evaluate(f, keys))


def _summary(full, loo, sizes):
    """uncertainty.jackknife (no bias correction: f of bias-corrected values) with the t test's p, scalars as float."""
    out = uncertainty.jackknife(full, loo, sizes, exponent=None)
    out["p"] = float(uncertainty.t_pvalue(out["estimate"], out["se"], out["df"]))
    return {key: float(value) if np.ndim(value) == 0 else value for key, value in out.items()}


def random_effect(text_se, text_df, runs, run_se):
    """(variance, between-seed variance, degrees of freedom) of a seed average with the seeds as a random effect.

    Args:
        text_se: the seed average's text-sampling se (the jackknife of the runs' averaged
            replicates, which keeps the correlation of runs that share the text); text_df: its
            degrees of freedom (N - 1).
        runs [S]: each run's estimate; run_se [S]: each run's own text-sampling se.

    The sample variance of the runs, s², has expectation tau² + (sum_i se_i² - S se²) / (S - 1),
    tau² being the between-seed variance; tau² is estimated net of that text part (0 when
    negative), var = se² + tau² / S, and Satterthwaite's degrees of freedom are
    df = var² / (se⁴ / text_df + (tau² / S)² / (S - 1)).
    """
    runs, run_se = np.asarray(runs, np.float64), np.asarray(run_se, np.float64)
    seeds = len(runs)
    text_var = float(text_se) ** 2
    if seeds < 2:
        return text_var, 0.0, float(text_df)
    net = (float(np.sum(run_se ** 2)) - seeds * text_var) / (seeds - 1)
    spread = float(np.var(runs, ddof=1)) - net
    between = max(0.0, spread) if np.isfinite(spread) else math.nan     # max(0, nan) would say 0
    var = text_var + between / seeds
    denominator = text_var ** 2 / text_df + (between / seeds) ** 2 / (seeds - 1)
    return var, between, (var ** 2 / denominator if denominator > 0 else float(text_df))


def _pooled_summary(average, parts):
    """_summary of the seed average with the seeds as a random effect (random_effect); text_se keeps the text part."""
    import scipy.stats  # here: half a second to import, and --help needs none of it

    out = _summary(*average)
    runs = [_summary(*part) for part in parts]
    var, between, df = random_effect(out["se"], out["df"], [r["estimate"] for r in runs], [r["se"] for r in runs])
    se = math.sqrt(var)
    half = scipy.stats.t.ppf(0.5 + uncertainty.LEVEL / 2, df) * se
    out.update({"text_se": out["se"], "between_var": between, "se": se, "df": float(df),
                "lo": out["estimate"] - half, "hi": out["estimate"] + half,
                "p": float(uncertainty.t_pvalue(out["estimate"], se, df)), "runs": [r["estimate"] for r in runs]})
    return out


class Pooled(Replicates):
    """The mean over runs (e.g. training seeds) of a statistic, jackknifed over the text blocks the runs share.

    Every run is the same pass (text, batching, blocks) over a different model, so replicate j
    of the mean is the mean of the runs' replicates j: its jackknife is the text-sampling
    uncertainty of the seed average (text_se). statistic() adds the seeds as a random effect
    (random_effect: se, df, lo, hi and p include the between-seed variance, between_var) and
    returns each run's own bias-corrected estimate ("runs").
    """

    def __init__(self, runs):
        """runs: Replicates of the same pass over the same text (same classes, delays, blocks and occurrences per
        block); ValueError names the first difference."""
        self.runs = list(runs)
        first = self.runs[0]
        self.blocks, self.sizes, self.count = first.blocks, first.sizes, first.count
        methods = [sorted({str(r.get("bias_method")) for r in run.rows}) for run in self.runs]
        for i, run in enumerate(self.runs[1:], 2):
            if run.blocks != first.blocks:
                raise ValueError(f"run {i} has {run.blocks} blocks, run 1 has {first.blocks}")
            if methods[i - 1] != methods[0]:
                raise ValueError(f"run {i}'s SV sums are bias-corrected by {', '.join(methods[i - 1])}, run 1's by "
                                 f"{', '.join(methods[0])}: their averages would mix two corrections (rerun, or "
                                 "restate both with docs/results/restate_intervals.py)")
            if set(run.loo) != set(first.loo) or set(run.value) != set(first.value):
                key = sorted((set(run.loo) ^ set(first.loo)) | (set(run.value) ^ set(first.value)))[0]
                raise ValueError(f"class {key[0]} at delay {key[1]} is in one of runs 1 and {i} only")
            for key in first.loo:
                if (run.count.get(key) != first.count.get(key) or not np.array_equal(run.sizes[key], first.sizes[key])
                        or run.block_counts[key] != first.block_counts[key]):
                    raise ValueError(f"run {i}'s class {key[0]} at delay {key[1]} has other occurrences per block "
                                     "than run 1's: not the same pass over the same text")
        # the runs' mean SV sums, for listing the keys; no pooled leave-one-out values are kept, as a statistic
        # averages f over the runs (evaluate), not f of averaged SV sums
        self.value = {key: float(np.mean([r.value[key] for r in self.runs])) for key in first.value}

    def has(self, keys):
        return all(run.has(keys) for run in self.runs)

    def for_measure(self, measure):
        return Pooled([run.for_measure(measure) for run in self.runs])

    def evaluate(self, f, keys):
        return self._average([run.evaluate(f, keys) for run in self.runs])

    @staticmethod
    def _average(parts):
        """The seed average of the runs' (f on all blocks, [N] f without block j, [N] sizes); the sizes are shared."""
        return (float(np.mean([full for full, _, _ in parts])), np.mean([loo for _, loo, _ in parts], axis=0),
                parts[0][2])

    def statistic(self, f, keys):
        parts = [run.evaluate(f, keys) for run in self.runs]   # f once per run and replicate, for both uses
        return _pooled_summary(self._average(parts), parts)


@dataclasses.dataclass
class Comparison:
    name: str
    estimate: float
    se: float
    lo: float
    hi: float
    p: float
    p_holm: float = float("nan")
    runs: tuple = ()      # each run's (seed's) own estimate, when judged on verdicts.Pooled
    scale: float = float("nan")   # for a difference of two values, their mean size (effect = estimate / scale)

    @property
    def effect(self):
        """A size-free effect: the estimate over the mean size of the two values of a difference (a relative
        difference), else the estimate itself (a difference of shares, of RMS log errors: already size-free)."""
        return self.estimate / self.scale if self.scale > 0 else self.estimate

    @property
    def runs_agree(self):
        """Whether every run's own estimate has the sign of the estimate (true without runs)."""
        return all(np.sign(e) == np.sign(self.estimate) for e in self.runs)

    @property
    def sign(self):
        """+1 above, -1 below, 0 when the Holm-adjusted p is not below ALPHA. On Pooled runs the p already holds
        the seeds' spread (random effect), so a seed whose own estimate has the other sign does not veto it."""
        if not self.p_holm < ALPHA:
            return 0
        return 1 if self.estimate > 0 else -1


def compare(reps, name, f, keys, difference_of=None):
    """Comparison of f over keys; difference_of (a, b): f is value a minus value b, whose mean size scales the effect."""
    out = reps.statistic(f, keys)
    scale = float(np.mean([abs(reps.value[key]) for key in difference_of])) if difference_of else float("nan")
    return Comparison(name, out["estimate"], out["se"], out["lo"], out["hi"], out["p"], runs=tuple(out.get("runs", ())),
                      scale=scale)


def family_effect(family):
    """The median effect of a family's comparisons (NaN for an empty family)."""
    effects = [c.effect for c in family if np.isfinite(c.effect)]
    return float(np.median(effects)) if effects else float("nan")


def across_measures(verdicts_by_measure):
    """The stated rule that summarises one finding over the panel of measures ({measure: verdict}, those that could
    judge it): 'holds under every measure' when it holds under each; 'holds under none' when it holds under none
    (each does not hold, or is inconclusive); otherwise 'depends on the measure'."""
    values = list(verdicts_by_measure.values())
    if not values:
        return INCONCLUSIVE
    if all(v == HOLDS for v in values):
        return "holds under every measure"
    if not any(v in (HOLDS, PARTLY) for v in values):
        return "holds under none"
    return "depends on the measure"


def across_models(signs):
    """The stated rule that summarises one model-against-model difference over the panel of measures (each
    measure's sign: +1 above, -1 below, 0 undecided after Holm): 'higher under every measure' (or lower) when
    every measure decides it the same way; 'depends on the measure' when two measures decide it in opposite
    directions; 'higher under some measures, undecided under the others' (or lower) when the decided ones agree;
    'undecided under every measure' when none decides it."""
    signs = set(signs)
    if not signs or signs == {0}:
        return "undecided under every measure"
    if {1, -1} <= signs:
        return "depends on the measure"
    word = "higher" if 1 in signs else "lower"
    return f"{word} under every measure" if 0 not in signs else f"{word} under some measures, undecided under the others"


def holm_family(comparisons):
    """Fill in p_holm over the family; returns it."""
    adjusted = uncertainty.holm([c.p for c in comparisons]) if comparisons else []
    for c, p in zip(comparisons, adjusted):
        c.p_holm = float(p)
    return comparisons


def difference(reps, a, b, k):
    return compare(reps, f"{a} − {b} at k = {k}", lambda v: v[(a, k)] - v[(b, k)], [(a, k), (b, k)],
                   difference_of=[(a, k), (b, k)])


def finding_shrink(reps, overall, delays):
    """Holds when the overall SV sum falls significantly between every pair of consecutive ranking delays."""
    steps = [(a, b) for a, b in zip(delays, delays[1:]) if reps.has([(overall, a), (overall, b)])]
    family = holm_family([compare(reps, f"k = {a} − k = {b}", lambda v, a=a, b=b: v[(overall, a)] - v[(overall, b)],
                                  [(overall, a), (overall, b)], difference_of=[(overall, a), (overall, b)])
                          for a, b in steps])
    signs = [c.sign for c in family]
    if not family:
        return INCONCLUSIVE, family
    if all(s > 0 for s in signs):
        return HOLDS, family
    if any(s < 0 for s in signs):
        return NOT, family
    return (PARTLY if any(s > 0 for s in signs) else INCONCLUSIVE), family


def decay_statistic(delays, fit_decay):
    """f(values) = RMS log error of the exponential minus that of the power law (> 0: the power law fits better)."""
    def f(values):
        exp_fit, pow_fit = fit_decay(delays, [values[k] for k in delays])
        return exp_fit.rmse_log - pow_fit.rmse_log
    return f


def finding_decay(reps, overall, delays, fit_decay):
    """Holds when the power law's RMS log error is significantly below the exponential's, does not hold when above."""
    keys = [(overall, k) for k in delays]
    family = holm_family([compare(reps, "RMS(ln) exponential − power law",
                                  lambda v: decay_statistic(delays, fit_decay)({k: v[(overall, k)] for k in delays}),
                                  keys)])
    sign = family[0].sign
    return {1: HOLDS, -1: NOT, 0: INCONCLUSIVE}[sign], family


def finding_best(reps, best, others, delays):
    """`best` compared with every other class at every delay (one Holm family).

    holds: above every other class at every delay; does not hold: at every delay some class is
    above it; partly: above every other class at some delay; inconclusive otherwise.
    """
    family = holm_family([difference(reps, best, c, k) for k in delays for c in others
                          if reps.has([(best, k), (c, k)])])
    by_delay = {}
    for c in family:
        by_delay.setdefault(c.name.rsplit("k = ", 1)[1], []).append(c.sign)
    if not family:
        return INCONCLUSIVE, family
    if all(c.sign > 0 for c in family):
        return HOLDS, family
    if all(any(s < 0 for s in signs) for signs in by_delay.values()):
        return NOT, family
    if any(all(s > 0 for s in signs) for signs in by_delay.values()):
        return PARTLY, family
    return INCONCLUSIVE, family


def finding_rare(reps, rare, frequent, delays, far):
    """Rarest minus most frequent bin at every delay, and the share of the delay-1 value kept at `far` (one family).

    holds: all above; does not hold: none above and some below; partly: some above; inconclusive:
    none significant.
    """
    family = [difference(reps, rare, frequent, k) for k in delays if reps.has([(rare, k), (frequent, k)])]
    if reps.has([(rare, 1), (rare, far), (frequent, 1), (frequent, far)]):
        family.append(compare(reps, f"share kept from k = 1 to {far}: {rare} − {frequent}",
                              lambda v: v[(rare, far)] / v[(rare, 1)] - v[(frequent, far)] / v[(frequent, 1)],
                              [(rare, 1), (rare, far), (frequent, 1), (frequent, far)]))
    return family_verdict(holm_family(family)), family


def finding_within(reps, cells, delays):
    """Within each group, its rarest cell minus its most frequent cell at every delay (one Holm family).

    cells {group: (rare class, frequent class)}, e.g. a POS class's lowest and highest frequency bin: the
    frequency effect with the group held fixed. Verdict by family_verdict.
    """
    family = [difference(reps, rare, frequent, k) for rare, frequent in cells.values() for k in delays
              if reps.has([(rare, k), (frequent, k)])]
    return family_verdict(holm_family(family)), family


def family_verdict(family):
    """holds: all above; does not hold: none above and some below; partly: some above; inconclusive: none significant."""
    signs = [c.sign for c in family]
    if not family or not any(signs):
        return INCONCLUSIVE
    if all(s > 0 for s in signs):
        return HOLDS
    return PARTLY if any(s > 0 for s in signs) else NOT


def frequency_matched(reps, a, b, bins, delays, weights):
    """`a` minus `b` within every frequency bin and reweighted to common bin weights, at every delay (one family).

    Class names are f"{a}-{bin}"; weights {bin: w} (summing to 1) make the reweighted
    statistic sum_bin w_bin (theta(a-bin) - theta(b-bin)): both classes measured as if their
    words had the same frequency distribution.
    """
    family = []
    for k in delays:
        for bin_ in bins:
            if reps.has([(f"{a}-{bin_}", k), (f"{b}-{bin_}", k)]):
                family.append(difference(reps, f"{a}-{bin_}", f"{b}-{bin_}", k))
        keys = [(f"{c}-{bin_}", k) for bin_ in bins for c in (a, b)]
        if reps.has(keys):
            family.append(compare(reps, f"{a} − {b} reweighted to common bin weights at k = {k}",
                                  lambda v, k=k: sum(weights[x] * (v[(f"{a}-{x}", k)] - v[(f"{b}-{x}", k)])
                                                     for x in bins), keys))
    return family_verdict(holm_family(family)), family


def _sides(group):
    """The runs of a Pooled, or [a Replicates]."""
    return list(group.runs) if isinstance(group, Pooled) else [group]


def contrast(a, b, f, keys, log=False):
    """f on group b minus f on group a (log: ln f_b - ln f_a), with a standard error, interval and p.

    Args:
        a, b: Replicates (one model) or Pooled (the seeds of one recipe), every run the same pass over
            the same text in the same blocks (ValueError otherwise).
        f: a statistic of {key: value}, as Replicates.statistic takes; keys: the keys it reads.
        log: compare on the log scale (a ratio f_b / f_a = exp(estimate)); NaN where a side's value is
            not positive.

    The text part: the runs share the blocks, so replicate j of the contrast is the difference of the
    two sides' seed-averaged replicates j, and its jackknife keeps the correlation of models read
    on the same text (text_se). The seeds: each Pooled side adds its between-seed variance over its
    number of seeds (random_effect, net of the text variance; times (1 / f)² under log, the delta
    method); a single run adds none (its model is the estimand). Satterthwaite's df combines the
    parts. Returns {estimate, se, lo, hi, p, df, text_se, between_a, between_b, runs_a, runs_b}.
    """
    import scipy.stats  # here: half a second to import, and --help needs none of it

    parts = [[run.evaluate(f, keys) for run in _sides(group)] for group in (a, b)]
    averages = [Pooled._average(p) for p in parts]
    if averages[0][1].shape != averages[1][1].shape or not np.array_equal(averages[0][2], averages[1][2]):
        raise ValueError(f"the two sides have other blocks at {keys}: not the same pass over the same text")
    scale = (lambda x: np.log(np.where(np.asarray(x) > 0, x, np.nan))) if log else (lambda x: np.asarray(x, float))
    full = float(scale(averages[1][0]) - scale(averages[0][0]))
    out = _summary(full, scale(averages[1][1]) - scale(averages[0][1]), averages[0][2])
    text_var, text_df = out["se"] ** 2, out["df"]
    terms, between = [], []
    for average, part in zip(averages, parts):
        tau = 0.0
        if len(part) > 1:
            own = _summary(*average)
            runs = [_summary(*p) for p in part]
            tau = random_effect(own["se"], own["df"], [r["estimate"] for r in runs], [r["se"] for r in runs])[1]
            slope = (1.0 / average[0] if average[0] > 0 else math.nan) if log else 1.0
            terms.append((slope ** 2 * tau / len(part), len(part)))
        between.append(tau)
    var = text_var + sum(t for t, _ in terms)
    denominator = text_var ** 2 / text_df + sum(t ** 2 / (n - 1) for t, n in terms)
    df = var ** 2 / denominator if denominator > 0 else float(text_df)
    se = math.sqrt(var) if math.isfinite(var) else math.nan
    half = scipy.stats.t.ppf(0.5 + uncertainty.LEVEL / 2, df) * se if math.isfinite(df) else math.nan
    return {"estimate": full, "se": se, "lo": full - half, "hi": full + half, "df": float(df),
            "p": float(uncertainty.t_pvalue(full, se, df)), "text_se": out["se"], "between_a": between[0],
            "between_b": between[1], "runs_a": [p[0] for p in parts[0]], "runs_b": [p[0] for p in parts[1]]}
