"""The demo's planted-memory ratio over several training seeds: one row per seed (CSV) and the range."""
# Prints measured figures only. Each seed trains the demo LSTM afresh (sg-demo --seed N --fresh,
# in DIR/seed_N) and computes the nouns/fillers ratio of singular-value sums at delays >= 4;
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

from aux_scripts import demo  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--csv", default=None, help="also write seed,ratio rows to this file")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="sg-demo-seeds-")
    rows = []
    for seed in args.seeds:
        with contextlib.redirect_stdout(io.StringIO()):          # the demo's own log, per run in its folder
            ratio = demo.run_demo(os.path.join(out, f"seed_{seed}"), fresh=True, seed=seed, log=lambda m: None)
        rows.append((seed, ratio))
        print(f"seed {seed}: nouns/fillers singular-value sum at delays >= 4 = {ratio:.3f}x", flush=True)
    ratios = [r for _, r in rows]
    print(f"{len(rows)} seeds: {min(ratios):.2f}x .. {max(ratios):.2f}x (median {sorted(ratios)[len(ratios) // 2]:.2f}x)")
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as handle:
            handle.write("seed,ratio\n" + "".join(f"{s},{r:.6g}\n" for s, r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
