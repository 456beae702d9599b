"""Time `COMMAND --help` of every console command, each in a fresh process; print the times, slowest first.

Usage: python tests/benchmarks/help_times.py [--repeat 3]
Each time is the wall time of a whole process (`python -c "from MODULE import main; main(['--help'])"`,
interpreter start included), the median of --repeat runs; the goal is under 1 s on a 2-core machine.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from tests.commands import SCRIPTS  # noqa: E402


def help_time(module):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"from {module} import main; main(['--help'])"], cwd=REPO,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (default 3)")
    args = parser.parse_args()
    times = {name: statistics.median(help_time(module) for _ in range(args.repeat)) for name, module in SCRIPTS.items()}
    for name, seconds in sorted(times.items(), key=lambda item: -item[1]):
        print(f"{name:30s} {seconds:6.2f} s")
    print(f"slowest {max(times.values()):.2f} s, median {statistics.median(times.values()):.2f} s over "
          f"{len(times)} commands ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
