"""The rank-agreement verdicts of the report's behavioural section in simulated regimes: rates of 'agree', 'disagree' and interval coverage."""
# Run: python tests/benchmarks/calibrate_rank_agreement.py [DATASETS]   (default 400 per regime; about 1 minute)
# The figures docs/measures.md quotes come from this script.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.rank_simulation import REGIMES, rates  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    datasets = int(argv[0]) if argv else 400
    print(f"{'regime':58s} {'agree':>7s} {'disagree':>9s} {'covered':>8s}   ({datasets} data sets each)")
    for number, regime in enumerate(REGIMES):
        agree, disagree, covered = rates(regime, datasets, seed=1000 + number)
        print(f"{regime:58s} {100 * agree:6.1f}% {100 * disagree:8.1f}% {100 * covered:7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
