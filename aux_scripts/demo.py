"""The main job on the bundled demo corpus: train, state gradients per POS class, SVD table and plot."""
import argparse
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_scripts.errors import run_cli  # noqa: E402
from aux_scripts.pipeline import demo  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_output",
                        help="folder for everything the demo writes (default: demo_output)")
    parser.add_argument("--fresh", action="store_true",
                        help="delete the demo's previous output (model, gradients, tables) first")
    parser.add_argument("--measures", action="store_true",
                        help="also measure memory with interpret_state.py (noise scales sigma per class) and "
                             "txray.py (how well the units separate NN from NNS, and JJ from RB, of the word "
                             "k back; trained vs untrained); about 20 more seconds")
    parser.add_argument("--long-delay", type=int, default=4,
                        help="delays >= this count as long in the remembered/filler ratio (default 4)")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed (config key seed; default: demo.config's, 1); another seed is another "
                             "sample of the model: use a fresh --out for it")
    return parser.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    demo.run_demo(args.out, fresh=args.fresh, long_delay=args.long_delay, seed=args.seed)
    if args.measures:
        demo.run_other_measures(args.out, long_delay=args.long_delay)
    return 0


def main(argv=None):
    return run_cli(_main, argv, "sg-demo")


if __name__ == "__main__":
    sys.exit(main())
