"""Restate a run folder's intervals/intervals.csv whose blocks are gone: the ordinary jackknife's se from replicates.csv.

Usage: python docs/results/restate_intervals.py RUN_DIR [RUN_DIR ...]

For folders written before 2026-12-07 (the generalised jackknife of order 1/2, whose se was about
twice the ordinary one's at 10 blocks): every SV-sum row gets the se, lo and hi of the ordinary
delete-one-block jackknife of its replicates (docs/intervals.md), around the row's own
bias-corrected estimate, which is kept (its bias cannot be simulated again without the blocks);
its bias_method says "jackknife-1/2". Rows already restated or written by the current
sg-intervals are left as they are. Prints one line per folder.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from state_gradients.measures import intervals  # noqa: E402


def restate_folder(run_dir):
    folder = os.path.join(run_dir, "intervals")
    rows = intervals.read_csv(os.path.join(folder, intervals.INTERVALS_CSV), intervals.INTERVAL_COLUMNS)
    reps = intervals.read_csv(os.path.join(folder, intervals.REPLICATES_CSV), intervals.REPLICATE_COLUMNS)
    legacy = [r for r in rows if r["bias_method"] == intervals.BIAS_LEGACY]
    restated = intervals.restate(legacy, reps)
    by_key = {(r["class"], r["delay"]): r for r in restated}
    out = [by_key.get((r["class"], r["delay"]), r) for r in rows]
    # replicates.csv is left as it is (its older schema lacks only the optional columns)
    intervals.analysis.atomic_write_text(os.path.join(folder, intervals.INTERVALS_CSV),
                                         intervals.csv_text(out, intervals.INTERVAL_COLUMNS))
    return len(legacy), len(rows)


def main(argv=None):
    for run_dir in (sys.argv[1:] if argv is None else argv):
        changed, total = restate_folder(run_dir)
        print(f"{run_dir}: {changed} of {total} rows restated (ordinary jackknife se, order-1/2 bias kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
