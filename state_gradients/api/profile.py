"""MemoryProfile: a gradient pass's averages, counts and blocks, computed, saved, loaded, and measured."""
# Shape letters: C classes ("overall" first), D delays, N blocks, H state, E embedding.
#
# A profile is what the gradient pass (main.py --notrain with grad_interm and grad_average)
# writes into its grad_dir, held in memory:
#   delay_{k}_avg[_{class}].npy   float32 [H, E]  -> averages [C, D, H, E] (NaN where count 0)
#   delay_{k}_count[_{class}].txt one integer      -> counts [C, D]
#   grad_progress.json                             -> progress (delays, classes, perplexity, ...)
#   blocks/block_NNN.npz (grad_blocks N)           -> blocks (one dict of arrays per block)
# save() writes exactly these files and load() reads them (of a CLI pass, a merged sharded pass
# or a save()). Statistics with intervals need blocks: the SV sums' simulated bias and the
# ordinary delete-one-block jackknife of state_gradients/measures/uncertainty.py.
import dataclasses
import json
import os

import numpy as np

from state_gradients.api.models import _as_config, model_for_config
from state_gradients.core import formats
from state_gradients.core.errors import UserError
from state_gradients.core.fileio import atomic_save_npy, atomic_write_text
from state_gradients.files import gradient_files
from state_gradients.measures import analysis, intervals, uncertainty, verdicts
from state_gradients.report import findings

OVERALL = formats.OVERALL
"""The name of the class of all tokens, first in every profile's classes."""


@dataclasses.dataclass
class Estimate:
    """A statistic per class and delay [C, D] with its interval: value (on the whole text), estimate
    (bias-corrected), se, lo, hi (95%, t with N-1 degrees of freedom); classes and delays label the axes."""
    classes: list
    delays: list
    value: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def row(self, cls):
        """{field: [D]} of one class."""
        c = self.classes.index(cls)
        return {name: getattr(self, name)[c] for name in ("value", "estimate", "se", "lo", "hi")}


@dataclasses.dataclass
class Intervals:
    """sg-intervals' result: rows (one per class and delay, intervals.INTERVAL_COLUMNS) and replicates
    (one per class, delay and block, intervals.REPLICATE_COLUMNS)."""
    rows: list
    replicates: list

    def save(self, directory):
        """Write intervals.csv and replicates.csv into directory, as sg-intervals does."""
        intervals.write(directory, self.rows, self.replicates)

    @classmethod
    def load(cls, directory):
        """The two CSV files of sg-intervals (or of save)."""
        return cls(intervals.read_csv(os.path.join(directory, intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS),
                   intervals.read_csv(os.path.join(directory, intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS))

    def column(self, name, classes, delays):
        """[C, D] values of one column of intervals.csv (NaN where a class has no row at a delay)."""
        table = {(r["class"], r["delay"]): r[name] for r in self.rows}
        return np.array([[table.get((c, k), np.nan) for k in delays] for c in classes], np.float64)

    def replicates_table(self):
        """verdicts.Replicates of these rows: statistics of any function of the SV sums with intervals."""
        return verdicts.Replicates(self.rows, self.replicates)

    def compare(self, a, b, delays):
        """verdicts.Comparison of class a's mean SV sum over delays minus class b's (bias-corrected, 95% interval)."""
        reps = self.replicates_table()
        keys = [(c, k) for c in (a, b) for k in delays]
        if not reps.has(keys):
            raise UserError(f"classes {a} and {b} need a finite SV sum at every delay of {list(delays)}")
        return verdicts.compare(reps, f"{a} − {b}, mean over delays {list(delays)}",
                                lambda v: np.mean([v[(a, k)] - v[(b, k)] for k in delays]), keys)


@dataclasses.dataclass
class MemoryProfile:
    """State gradients averaged per class and delay: averages [C, D, H, E] float32 (NaN where a class has no
    occurrence), counts [C, D] int64, classes [C] ("overall" first), delays [D], the pass's progress record,
    and its blocks (a list of N dicts of arrays, gradient_files' schema; None without grad_blocks)."""
    classes: list
    delays: list
    averages: np.ndarray
    counts: np.ndarray
    progress: dict
    blocks: list | None = None

    # ---------------------------------------------------------------- compute, load, save

    @classmethod
    def compute(cls, config, *, fresh_weights=False, log=print, **changes):
        """Run the gradient pass of a config (a path or a Config) and load its grad_dir.

        changes: config keys to change first (e.g. grad_dir="...", grad_blocks=10), checked by
        configuration.derive as a file is. The pass is main.py --notrain --notest's: the model of
        save_path (fresh_weights: the seeded initial weights), resumable, and it writes its files
        into grad_dir. log: where its lines go.
        """
        from state_gradients.passes import gradient_pass

        config = _as_config(config, **changes)
        if not (config.grad_interm and config.grad_average):
            raise UserError(f"{config.path}: a memory profile needs grad_interm and grad_average True "
                            "(the averaging gradient pass)")
        model, corpus = model_for_config(config, fresh_weights=fresh_weights, log=log)
        gradient_pass.run_gradient_pass(config, model.lm, corpus, log)
        return cls.load(config.grad_dir)

    @classmethod
    def load(cls, directory):
        """The profile of a complete gradient pass (or merged sharded pass, or save()) in directory."""
        path = os.path.join(directory, gradient_files.PROGRESS_FILE)
        if not os.path.isfile(path):
            raise UserError(f"{path} not found: {directory} holds no averaging gradient pass of this toolkit")
        progress = gradient_files.read_progress(path)
        if not progress.get("complete"):
            raise UserError(f"{path}: the pass is not complete; run it to the end (it resumes) first")
        names, delays = [None] + list(progress["classes"]), [int(k) for k in progress["delays"]]
        counts = np.zeros((len(names), len(delays)), np.float64)
        averages = None
        for c, name in enumerate(names):
            for d, k in enumerate(delays):
                counts[c, d] = _read_count(formats.count_path(directory, k, name))
                if counts[c, d]:
                    matrix = analysis.load_array(formats.average_path(directory, k, name), "average gradient", 2)
                    if averages is None:
                        averages = np.full((len(names), len(delays)) + matrix.shape, np.nan, np.float32)
                    averages[c, d] = matrix
        if averages is None:
            raise UserError(f"{directory}: every count is 0, no average was written")
        blocks = gradient_files.read_blocks(directory) if progress.get("grad_blocks") else None
        return cls([OVERALL] + list(progress["classes"]), delays, averages, counts, progress, blocks)

    def save(self, directory):
        """Write the pass's files (averages, counts, grad_progress.json, blocks/) into an empty or new directory."""
        if os.path.isdir(directory) and os.listdir(directory):
            raise UserError(f"{directory} is not empty: save a profile into a new folder")
        os.makedirs(directory, exist_ok=True)
        for c, name in enumerate([None] + self.classes[1:]):
            for d, k in enumerate(self.delays):
                atomic_write_text(formats.count_path(directory, k, name), formats.count_text(self.counts[c, d]) + "\n")
                if self.counts[c, d]:
                    atomic_save_npy(formats.average_path(directory, k, name), self.averages[c, d])
        for block in self.blocks or ():
            gradient_files.write_npz(gradient_files.block_path(directory, int(block["block"])), block)
        # last, as the pass writes it: a complete record means complete files
        atomic_write_text(os.path.join(directory, gradient_files.PROGRESS_FILE), json.dumps(self.progress, indent=1) + "\n")

    # ---------------------------------------------------------------- statistics

    @property
    def perplexity(self):
        """The validation perplexity of the pass (None for a model without an output layer)."""
        return self.progress.get("perplexity")

    def sv_sums(self, grad_norm=None):
        """[C, D] float64 sum of the singular values of each average G·D (of G when grad_norm is None), NaN where
        a class has no occurrence: svs.csv's and calculate_svs' numbers."""
        out = np.full(self.counts.shape, np.nan)
        for c, d in zip(*np.nonzero(self.counts)):
            out[c, d] = analysis.singular_values(self.averages[c, d], grad_norm).sum()
        return out

    def table(self, grad_norm=None):
        """{class: {delay: SV sum}}: sv_sums as the report's tables hold them (classes without occurrences left out)."""
        sums = self.sv_sums(grad_norm)
        return {cls: {k: float(sums[c, d]) for d, k in enumerate(self.delays) if np.isfinite(sums[c, d])}
                for c, cls in enumerate(self.classes)}

    def _require_blocks(self, what):
        if not self.blocks:
            raise UserError(f"{what} needs the pass's blocks: compute the profile with grad_blocks N (e.g. 10)")

    def intervals(self, grad_norm, draws=50, seed=0):
        """sg-intervals' statistics of the blocks (bias-corrected SV sums with intervals, noise floors, coherence)."""
        self._require_blocks("intervals")
        sums, counts, delays, names, grams = intervals.block_arrays(self.blocks)
        rows, replicates = intervals.compute(sums, counts, delays, names, grams, grad_norm, draws, seed,
                                             intervals.occurrence_arrays(self.blocks, grad_norm))
        return Intervals(rows, replicates)

    def sv_intervals(self, grad_norm, draws=50, seed=0):
        """Estimate [C, D] of the SV sums of G·D: bias-corrected with jackknife intervals over the blocks."""
        rows = self.intervals(grad_norm, draws, seed)
        fields = {name: rows.column(column, self.classes, self.delays)
                  for name, column in (("value", "sv_sum"), ("estimate", "estimate"), ("se", "se"), ("lo", "lo"),
                                       ("hi", "hi"))}
        return Estimate(list(self.classes), list(self.delays), **fields)

    def statistic(self, f, classes=None, exponent=uncertainty.SMOOTH_EXPONENT):
        """Estimate [C', D] of f(mean G [H, E]) -> float for each class and delay, jackknifed over the blocks.

        exponent: the order a of the statistic's bias n^(-a) removed by the generalised jackknife
        (SMOOTH_EXPONENT, 1, for smooth functions of the mean; None for no correction); the se is
        the ordinary jackknife's whatever the order. For SV sums use sv_intervals, whose bias is
        simulated (the order of an SV sum's bias depends on the regime: docs/intervals.md).
        """
        self._require_blocks("statistic")
        classes = list(classes or self.classes)
        sums, counts, _, names, _ = intervals.block_arrays(self.blocks)
        index = [names.index(c) if c in names else _unknown(c, names) for c in classes]
        full, loo = uncertainty.leave_one_out_means(sums[:, :, index], counts[:, :, index])  # [D, C', H, E], [N, ...]
        delays = range(len(self.delays))
        value = np.array([[_safe(f, full[d, c]) for d in delays] for c in range(len(classes))])        # [C', D]
        loo_values = np.array([[[_safe(f, loo[j, d, c]) for d in delays] for c in range(len(classes))]
                               for j in range(loo.shape[0])])                                        # [N, C', D]
        positions = counts[:, :, 0][:, None, :]            # [N, 1, D] block sizes m_j: all words
        out = uncertainty.jackknife(value, loo_values, positions, exponent=exponent)
        return Estimate(classes, list(self.delays), out["value"], out["estimate"], out["se"], out["lo"], out["hi"])

    def relative_memory(self, direction, grad_norm, classes=None):
        """Estimate [C', D] of ‖(G·D) d̂‖ / σ_max(G·D) (relative_memory.py's number) for a normalised direction d̂ [E]
        (analysis.normalised_direction)."""
        return self.statistic(lambda g: analysis.relative_memory(g, grad_norm, direction), classes)

    def subspace_cosine(self, direction, grad_norm, columns, classes=None):
        """Estimate [C', D] of the cosine between d̂ and the span of the top `columns` right singular vectors of G·D
        (cos_subspace_diff_vector.py's first number)."""
        return self.statistic(lambda g: analysis.subspace_cosine(g, grad_norm, direction, columns)[0], classes)

    def fit_decay(self, grad_norm, cls=OVERALL, first_delay=1):
        """(exponential, power-law) findings.Fit of one class's SV sums against the delay (least squares on log)."""
        row = self.sv_sums(grad_norm)[self.classes.index(cls) if cls in self.classes else _unknown(cls, self.classes)]
        keep = np.isfinite(row)
        return findings.fit_decay(np.array(self.delays)[keep], row[keep], first_delay)

    def ranking(self, grad_norm, classes=None, delays=None):
        """{delay: [(class, SV sum)] largest first} over the classes (default: all but overall)."""
        classes = list(classes or self.classes[1:])
        return findings.ranking(self.table(grad_norm), classes, delays or self.delays)


def _unknown(cls, names):
    raise UserError(f"no class {cls!r} in the profile (classes: {', '.join(names)})")


def _safe(f, matrix):
    """f of a mean matrix; NaN for an empty mean (no occurrence left)."""
    return float(f(matrix)) if np.isfinite(matrix).all() else np.nan


def _read_count(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return formats.read_count_text(handle.read())
    except FileNotFoundError:
        raise UserError(f"{path} not found: the pass's files are incomplete") from None
    except ValueError:
        raise UserError(f"{path}: not one non-negative number") from None
