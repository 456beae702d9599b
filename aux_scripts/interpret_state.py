"""Perturbation-based memory (Guan et al., ICML 2019): learned noise scales sigma per input position of a state."""
import dataclasses
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, run_cli  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402
from state_gradients.measures import interpret_state  # noqa: E402


PROG = "interpret_state.py"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=PROG, tensorflow=True,
        description="Learn, for sampled validation windows, the noise scale sigma that each of the last D "
                    "input embeddings can take before the state s_t changes much (Guan et al. 2019; small "
                    "sigma = s_t depends strongly on that word). Writes OUT_windows.csv (window,t,delay,"
                    "word,sigma), OUT.csv (class,delay,count,mean_sigma,std_sigma; class 'overall' and one "
                    "per POS class) and OUT.png (mean sigma against delay per class, log scale).")
    parser.add_argument("--config", required=True, help="model config; weights from save_path/weights.npz")
    parser.add_argument("--out", required=True, metavar="OUT", help="output prefix: OUT_windows.csv, OUT.csv, OUT.png")
    parser.add_argument("--windows", type=int, default=interpret_state.DEFAULTS.windows,
                        help=f"number of validation windows, sampled without replacement (default {interpret_state.DEFAULTS.windows})")
    parser.add_argument("--seed", type=int, default=interpret_state.DEFAULTS.seed,
                        help=f"seed of the window sample and the noise (default {interpret_state.DEFAULTS.seed})")
    parser.add_argument("--time-step", type=int,
                        help="position t of the state (default: the config's time_step if it is one integer, "
                             "else num_steps - 1)")
    parser.add_argument("--max-delay", type=int,
                        help="number of inputs D: delays 0 .. min(D - 1, t) (default: the config's max_delay)")
    parser.add_argument("--interm", choices=("cell", "hidden"),
                        help="state: cell (LSTM c; h for GRU/RNN) or hidden (default: the config's "
                             "grad_interm, else cell)")
    parser.add_argument("--layer", type=int, help="0-based layer (default: the config's grad_layer)")
    parser.add_argument("--scale", type=float, default=interpret_state.DEFAULTS.scale,
                        help="lambda, the weight of -sum log sigma in the loss; sigma grows as sqrt(lambda) "
                             f"(default {interpret_state.DEFAULTS.scale:g})")
    parser.add_argument("--steps", type=int, default=interpret_state.DEFAULTS.steps,
                        help=f"Adam steps per window (default {interpret_state.DEFAULTS.steps})")
    parser.add_argument("--lr", type=float, default=interpret_state.DEFAULTS.lr,
                        help=f"Adam learning rate on log sigma (default {interpret_state.DEFAULTS.lr:g})")
    parser.add_argument("--samples", type=int, default=interpret_state.DEFAULTS.samples,
                        help=f"noise draws per step (default {interpret_state.DEFAULTS.samples})")
    parser.add_argument("--max-sigma", type=float,
                        help="upper bound of sigma (default: 10 x the standard deviation of the embedding "
                             "entries, the original's recommendation)")
    parser.add_argument("--init-sigma", type=float,
                        help="starting sigma (default: 0.1 x the standard deviation of the embedding entries)")
    parser.add_argument("--per-dim", action="store_true",
                        help="one sigma per embedding dimension instead of per position; the CSVs then "
                             "report each position's geometric mean")
    parser.add_argument("--chunk", type=int, default=interpret_state.DEFAULTS.chunk,
                        help="windows optimised together (memory vs speed; the result does not depend on it; "
                             f"default {interpret_state.DEFAULTS.chunk})")
    parser.add_argument("--pos-mapping", help="word -> POS tags file (default: the config's pos_mapping)")
    parser.add_argument("--pos-classes",
                        help="comma-separated POS class files; the class of a row is that of the word at t-k "
                             "(default: the config's pos_classes)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    import_tensorflow(args.verbose)
    options = interpret_state.SigmaOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(interpret_state.SigmaOptions)})
    given = [args.config, args.pos_mapping] + (args.pos_classes or "").split(",")
    for path in interpret_state.output_paths(args.out):    # before the computation, as far as the flags tell
        analysis.check_not_input(path, [p for p in given if p])
    result = interpret_state.measure_sigma(args.config, options)
    for name in result.classes:
        if not any(r[0] == name for r in result.rows):
            print(f"Warning: no sampled word of class {name}: no average", file=sys.stderr)
    outputs = interpret_state.write_outputs(result, args.out)
    print(f"var(Phi) = {analysis.format_number(result.phi_var)} over {result.total_windows} windows; max sigma "
          f"{analysis.format_number(result.max_sigma)}")
    for cls, k, count, mean, _ in result.rows:
        if cls == interpret_state.OVERALL:
            print(f"delay: {k}\tmean sigma: {analysis.format_number(mean)}")
    print(f"Wrote {', '.join(outputs)}")
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
