"""The papers' findings judged with intervals: statistics of sg-intervals' replicates, Holm within a finding, stated rules."""
# Shape letters: N blocks.
#
# A statistic is any function of the SV sums {(class, delay): value}; evaluated on all blocks
# and on every leave-one-block-out replicate (replicates.csv), it gets a bias-corrected
# estimate, standard error, 95% interval and p-value (aux_scripts/uncertainty.py). A finding
# is a family of such comparisons; Holm's correction runs over the family, and a comparison
# counts as "above" ("below") when its Holm-adjusted p is below ALPHA and its estimate is
# positive (negative). On verdicts.Pooled (several seeds over the same text) a comparison also
# needs every seed's own estimate to have its sign.
import dataclasses

import numpy as np

from aux_scripts.measures import uncertainty

ALPHA = 0.05
HOLDS, PARTLY, NOT, INCONCLUSIVE = "holds", "partly", "does not hold", "inconclusive"


class Replicates:
    """SV sums on all blocks and on all but block j, per (class, delay), from sg-intervals' two CSV files."""

    def __init__(self, interval_rows, replicate_rows):
        self.value = {(r["class"], r["delay"]): r["sv_sum"] for r in interval_rows}
        self.count = {(r["class"], r["delay"]): r["count"] for r in interval_rows}
        grouped = {}
        for r in replicate_rows:
            grouped.setdefault((r["class"], r["delay"]), []).append(
                (r["block"], r["loo_sv_sum"], r["block_positions"], r.get("block_count")))
        self.loo, self.sizes, self.block_counts = {}, {}, {}
        for key, items in grouped.items():
            items.sort()
            self.loo[key] = np.array([v for _, v, _, _ in items])
            self.sizes[key] = np.array([m for _, _, m, _ in items], np.float64)
            self.block_counts[key] = [c for _, _, _, c in items]
        self.blocks = len(next(iter(self.loo.values())))

    def has(self, keys):
        """Whether every key has a finite value and finite replicates (a class with no occurrence has NaN)."""
        return all(key in self.value and key in self.loo and np.isfinite(self.value[key])
                   and np.isfinite(self.loo[key]).all() for key in keys)

    def evaluate(self, f, keys):
        """(f on all blocks, [N] f on all but block j, [N] block sizes: the keys' mean)."""
        full = f({key: self.value[key] for key in keys})
        loo = np.array([f({key: self.loo[key][j] for key in keys}) for j in range(self.blocks)])
        return full, loo, np.mean([self.sizes[key] for key in keys], axis=0)

    def statistic(self, f, keys, exponent=uncertainty.SV_EXPONENT):
        """uncertainty.jackknife of f({key: value}) over the replicates, with its t test's p."""
        return _summary(*self.evaluate(f, keys), exponent)


def _summary(full, loo, sizes, exponent):
    """uncertainty.jackknife with the t test's p, scalars as float."""
    out = uncertainty.jackknife(full, loo, sizes, exponent=exponent)
    out["p"] = float(uncertainty.t_pvalue(out["estimate"], out["se"], out["df"]))
    return {key: float(value) if np.ndim(value) == 0 else value for key, value in out.items()}


class Pooled(Replicates):
    """The mean over runs (e.g. training seeds) of a statistic, jackknifed over the text blocks the runs share.

    Every run is the same pass (text, batching, blocks) over a different model, so replicate j
    of the mean is the mean of the runs' replicates j: its interval is the text-sampling
    uncertainty of the seed average, not the spread between seeds (three seeds give a range,
    not an interval). statistic() also returns each run's own bias-corrected estimate ("runs").
    """

    def __init__(self, runs):
        """runs: Replicates of the same pass over the same text (same classes, delays, blocks and occurrences per
        block); ValueError names the first difference."""
        self.runs = list(runs)
        first = self.runs[0]
        self.blocks, self.sizes, self.count = first.blocks, first.sizes, first.count
        for i, run in enumerate(self.runs[1:], 2):
            if run.blocks != first.blocks:
                raise ValueError(f"run {i} has {run.blocks} blocks, run 1 has {first.blocks}")
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

    def evaluate(self, f, keys):
        return self._average([run.evaluate(f, keys) for run in self.runs])

    @staticmethod
    def _average(parts):
        """The seed average of the runs' (f on all blocks, [N] f without block j, [N] sizes); the sizes are shared."""
        return (float(np.mean([full for full, _, _ in parts])), np.mean([loo for _, loo, _ in parts], axis=0),
                parts[0][2])

    def statistic(self, f, keys, exponent=uncertainty.SV_EXPONENT):
        parts = [run.evaluate(f, keys) for run in self.runs]   # f once per run and replicate, for both uses
        out = _summary(*self._average(parts), exponent)
        out["runs"] = [_summary(*part, exponent)["estimate"] for part in parts]
        return out


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

    @property
    def runs_agree(self):
        """Whether every run's own estimate has the sign of the estimate (true without runs)."""
        return all(np.sign(e) == np.sign(self.estimate) for e in self.runs)

    @property
    def sign(self):
        """+1 above, -1 below, 0 when the Holm-adjusted p is not below ALPHA or a run's estimate has the other sign."""
        if not self.p_holm < ALPHA or not self.runs_agree:
            return 0
        return 1 if self.estimate > 0 else -1


def compare(reps, name, f, keys, exponent=uncertainty.SV_EXPONENT):
    out = reps.statistic(f, keys, exponent)
    return Comparison(name, out["estimate"], out["se"], out["lo"], out["hi"], out["p"], runs=tuple(out.get("runs", ())))


def holm_family(comparisons):
    """Fill in p_holm over the family; returns it."""
    adjusted = uncertainty.holm([c.p for c in comparisons]) if comparisons else []
    for c, p in zip(comparisons, adjusted):
        c.p_holm = float(p)
    return comparisons


def difference(reps, a, b, k):
    return compare(reps, f"{a} − {b} at k = {k}", lambda v: v[(a, k)] - v[(b, k)], [(a, k), (b, k)])


def finding_shrink(reps, overall, delays):
    """Holds when the overall SV sum falls significantly between every pair of consecutive ranking delays."""
    steps = [(a, b) for a, b in zip(delays, delays[1:]) if reps.has([(overall, a), (overall, b)])]
    family = holm_family([compare(reps, f"k = {a} − k = {b}", lambda v, a=a, b=b: v[(overall, a)] - v[(overall, b)],
                                  [(overall, a), (overall, b)]) for a, b in steps])
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
