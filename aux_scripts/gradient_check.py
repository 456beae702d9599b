"""Check state gradients and weight gradients of a trained model against numpy BPTT and finite differences."""
# How: state_gradients/measures/gradient_check.py.
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, run_cli  # noqa: E402
from state_gradients.measures import gradient_check  # noqa: E402

PROG = "gradient_check.py"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=PROG, tensorflow=True,
        description="Recompute state gradients G[t, k] = d s_t / d x_{t-k} of a trained model for sampled "
                    "validation windows with an independent numpy implementation (float64, hand-written "
                    "backpropagation through time) and compare them with the TF engine (float64 copy of the "
                    "model) and with float64 central finite differences; then check d loss / d w for one "
                    "weight against a central difference and plot the loss against that weight with the "
                    "tangent line of the analytic gradient. Each sampled window starts from the state the "
                    "validation pass carries into it (the pass runs every window before it from zeros, as "
                    "main.py's validation and gradient passes do), so the check sees realistic non-zero "
                    "states. Differences are relative: max abs difference / max abs entry of the window's "
                    "matrices at any delay (docs/spec.md §6); for the weight, |analytic - numeric| / max(|analytic|, "
                    "|numeric|). Exit status 0: all within --tolerance; 1: some difference exceeds it; "
                    "2: bad input.")
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="model config; the weights are save_path/weights.npz, the vocabulary save_path/dict, "
                             "the validation windows come from data_path with the config's batch_size and num_steps")
    parser.add_argument("--windows", type=int, default=3, metavar="N",
                        help="number of validation windows to sample (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the window sample (default 0)")
    parser.add_argument("--time-step", type=int, metavar="t",
                        help="position t of the differentiated state (default: the config's time_step if it is "
                             "an integer, else num_steps - 1)")
    parser.add_argument("--max-delay", type=int, metavar="D",
                        help="number of delays: k = 0 .. min(D-1, t) (default: the config's max_delay; an error without)")
    parser.add_argument("--layer", type=int, help="0-based layer of the state (default: the config's grad_layer)")
    parser.add_argument("--interm", choices=("cell", "hidden", "residual", "final"),
                        help="state kind: cell (LSTM c; GRU/RNN h) or hidden (h); a Transformer's residual (the "
                             "residual stream after --layer) or final (after the final LayerNorm) (default: the "
                             "config's grad_interm, else cell; residual for a Transformer)")
    parser.add_argument("--weight", metavar="NAME[ROW,COL]",
                        help="weight entry of the loss check, a weights.npz array name with an index, e.g. "
                             "layer0/kernel[3,5], embedding[12,0], softmax_b[7] (default: the entry of the chosen "
                             "layer's kernel (GRU: gate_kernel; Transformer: qkv_kernel) with the largest analytic "
                             "gradient)")
    parser.add_argument("--span", type=float, default=0.5, metavar="S",
                        help="the loss curve covers [w - S, w + S] (default 0.5)")
    parser.add_argument("--points", type=int, default=41, metavar="P",
                        help="points on the loss curve (default 41)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write the loss curve and tangent line to this PNG (default: no plot, no curve)")
    parser.add_argument("--eps", type=float, default=1e-6,
                        help="step of the central differences of the state gradients (default 1e-6)")
    parser.add_argument("--weight-eps", type=float, default=1e-3, metavar="EPS",
                        help="step of the fourth-order central difference of the loss in the weight (default "
                             "1e-3); its rounding error is about ulp(loss) / step, printed as the resolution")
    parser.add_argument("--tolerance", type=float, default=1e-5, metavar="TOL",
                        help="largest allowed relative difference (default 1e-5)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    import_tensorflow(args.verbose)
    failures = gradient_check.run_check(args)
    for line in failures:
        print(f"FAILED: {line}")
    return 1 if failures else 0


def main(argv=None) -> int:
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
