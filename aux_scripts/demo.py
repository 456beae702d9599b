"""The main job on the bundled demo corpus: train, state gradients per POS class, SVD table and plot."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, output_line, run_cli, typed_command  # noqa: E402
from state_gradients.workflows import demo  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser("sg-demo", __doc__, tensorflow=True)
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
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    import_tensorflow(args.verbose)
    typed = typed_command("sg-demo", argv)
    demo.run_demo(args.out, fresh=args.fresh, long_delay=args.long_delay, seed=args.seed, command=typed)
    if args.measures:
        demo.run_other_measures(args.out, long_delay=args.long_delay)
    print(output_line("report", os.path.join(args.out, "report.html")))
    return 0


def main(argv=None):
    return run_cli(_main, argv, "sg-demo")


if __name__ == "__main__":
    sys.exit(main())
