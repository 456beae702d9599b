"""The report's readers of what sg-intervals and the gradient pass left in a reproduction folder."""
# Shape letters: H state size, E embedding size.
import math
import os

import numpy as np

from state_gradients.classes import token_classes
from state_gradients.core.formats import OVERALL
from state_gradients.files.run_folder import RunFolder
from state_gradients.measures import intervals, verdicts


def read_replicates(directory):
    """(type-level, in context) from DIR/intervals/: each (interval rows, verdicts.Replicates), or None when sg-intervals
    did not run or the pass had no classes in context. The classes in context are those whose names begin with
    sg-token-classes's CONTEXT_PREFIX; they are named here without it (beside the overall rows)."""
    folder = RunFolder(directory).intervals
    if not os.path.isfile(os.path.join(folder, intervals.INTERVALS_CSV)):
        return None, None
    rows = intervals.read_csv(os.path.join(folder, intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    reps = intervals.read_csv(os.path.join(folder, intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS)
    prefix = token_classes.CONTEXT_PREFIX

    def part(in_context):
        """(interval rows, Replicates) of one family, the overall rows in both."""
        def name(r):
            return r["class"][len(prefix):] if in_context and r["class"] != OVERALL else r["class"]
        keep = [[{**r, "class": name(r)} for r in items
                 if r["class"] == OVERALL or r["class"].startswith(prefix) == in_context] for items in (rows, reps)]
        return keep[0], verdicts.Replicates(*keep)

    has_context = any(r["class"].startswith(prefix) for r in rows)
    return part(False), part(True) if has_context else None


def random_direction_baselines(directory, series, cos_columns):
    """{name: ({delay: relative memory of a random direction}, {delay: its subspace cosine})} where the pass's
    averages and D are in DIR, else {}.

    A uniformly random unit direction u in E dimensions has E‖(G·D) u‖² = ‖G·D‖_F² / E, so its relative
    memory is about sqrt(‖G·D‖_F² / E) / σ_max(G·D); its share in the span of the top x right singular
    vectors has E‖V_xᵀ u‖² = x / E, a cosine of about sqrt(x / E).
    """
    run = RunFolder(directory)
    d_path = run.d_norm
    if not os.path.isfile(d_path):
        return {}
    d_factor = np.load(d_path, allow_pickle=False).astype(np.float64)
    size = d_factor.shape[0]
    out = {}
    for name, values in series.items():
        rel, cos = {}, {}
        for k in values:
            grad_path = run.gradient_average(k)
            if not os.path.isfile(grad_path):
                continue
            matrix = np.load(grad_path, allow_pickle=False).astype(np.float64) @ d_factor
            top = np.linalg.norm(matrix, 2)
            rel[k] = math.sqrt(np.sum(matrix ** 2) / size) / top if top > 0 else math.nan
            if name in cos_columns:
                cos[k] = math.sqrt(cos_columns[name] / size)
        out[name] = (rel, cos)
    return out
