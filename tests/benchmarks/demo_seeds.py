"""The demo's memory measures over several training seeds: one row per seed (CSV) and each range."""
# Prints measured figures only. Each seed trains the demo LSTM afresh (sg-demo --seed N --fresh
# --measures, in DIR/seed_N): the nouns/fillers ratio of singular-value sums at delays >= 4 (and its
# bias-corrected estimate and 95% interval over the text's blocks: text sampling only), the
# fillers/nouns sigma ratio and the TX-Ray spans and excesses, trained and untrained (same seed);
# the spread over seeds (and machines: float32 training takes another path on another CPU) is
# what a user can expect from `sg-demo`, not any single run's digits.
import argparse
import contextlib
import io
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from state_gradients.workflows import demo  # noqa: E402


COLUMNS = ("seed", "sv_ratio", "sv_ratio_estimate", "sv_ratio_lo", "sv_ratio_hi", "sigma_ratio", "txray_noun_span", "txray_filler_span", "txray_noun_span_untrained",
           "txray_noun_excess", "txray_filler_excess", "txray_noun_excess_untrained")


def measure(out, seed):
    """One seed's row: the SV-sum ratio and (sg-demo --measures) sigma and TX-Ray figures."""
    with contextlib.redirect_stdout(io.StringIO()):          # the demo's own log, per run in its folder
        ratio = demo.run_demo(out, fresh=True, seed=seed, log=lambda m: None)
        interval = demo.memory_ratio_interval(out, list(range(4, demo.TXRAY_MAX_DELAY)))
        sigma, separation = demo.run_other_measures(out, long_delay=4, log=lambda m: None)
    nouns, fillers = separation["a", demo.NUMBER_TAGS], separation["a", demo.FILLER_TAGS]
    untrained = separation["b", demo.NUMBER_TAGS]
    return (seed, ratio, interval["estimate"], interval["lo"], interval["hi"], sigma, nouns["span"], fillers["span"], untrained["span"], nouns["excess"],
            fillers["excess"], untrained["excess"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="sg-demo-seeds-")
    rows = []
    print("  ".join(COLUMNS))
    for seed in args.seeds:
        rows.append(measure(os.path.join(out, f"seed_{seed}"), seed))
        print("  ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in rows[-1]), flush=True)
    for i, name in enumerate(COLUMNS[1:], 1):
        values = [row[i] for row in rows]
        print(f"{name}: {min(values):.4g} .. {max(values):.4g} over {len(rows)} seeds")
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as handle:
            handle.write(",".join(COLUMNS) + "\n")
            handle.write("".join(",".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + "\n"
                                 for row in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
