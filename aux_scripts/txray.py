"""TX-Ray neuron-feature distributions: which tokens and POS tags make each unit most active, compared across models."""
import dataclasses
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, run_cli  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402
from state_gradients.measures import txray  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="txray.py", tensorflow=True,
        description="TX-Ray (Rethmeier et al., UAI 2020): run model A (and B) over a corpus; for every token the "
                    "top-k units of the chosen state (by signed value, counted when > 0) add their activation "
                    "to the token's features (token, POS tags); per unit, the normalised mass is its "
                    "feature distribution. Compare A with B per unit by the Hellinger distance. Writes "
                    "PREFIX_units.csv, PREFIX_summary.txt, PREFIX_top_units.png, with a model B "
                    "PREFIX_distance_vs_features.png, and with --separate PREFIX_separation.csv and .png "
                    "(memory: do the units tell the tags of the word k steps back apart?).")
    parser.add_argument("--config", required=True, metavar="A.config",
                        help="config of model A: its save_path holds weights.npz and dict; its data_path, "
                             "batch_size and num_steps give the corpus and the batching for both models")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config-b", metavar="B.config",
                       help="config of model B (only its save_path is used: weights.npz and dict)")
    group.add_argument("--weights-b", metavar="DIR",
                       help="model B from a weights.npz file or a directory holding weights.npz and dict "
                            "(e.g. a copy of save_path made after epoch 1)")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix (directories are created)")
    parser.add_argument("--data", choices=txray.DATA_SETS, default=txray.DEFAULTS.data,
                        help="data set to run over (default valid; test is fed as one stream, B = 1, as "
                             "main.py evaluates it)")
    parser.add_argument("--interm", choices=("cell", "hidden"),
                        help="state: cell (LSTM c; h for GRU/RNN) or hidden (h) (default: the config's "
                             "grad_interm, else cell)")
    parser.add_argument("--layer", type=int,
                        help="0-based layer (default: the config's grad_layer, i.e. the top layer)")
    parser.add_argument("--top-k", type=int, default=txray.DEFAULTS.top_k, help=f"units activated per token (default {txray.DEFAULTS.top_k})")
    parser.add_argument("--features", default=txray.DEFAULTS.features,
                        help="comma-separated features: token, pos (default token,pos; pos needs a POS mapping)")
    parser.add_argument("--pos-mapping", metavar="FILE",
                        help="word -> POS tags file (default: the config's pos_mapping)")
    parser.add_argument("--separate", action="append", metavar="TAGS", default=[],
                        help="comma-separated POS tags, e.g. NN,NNS (repeatable): how well the active units "
                             "separate these tags of the word k = 0..D-1 steps back (D = --max-delay), as "
                             "I(unit; tag) / H(tag) with its chance level; writes PREFIX_separation.csv and .png")
    parser.add_argument("--max-delay", type=int, metavar="D",
                        help="number of delays of --separate, k = 0..D-1: the state at t against the word at "
                             "t - k (default: the config's max_delay)")
    parser.add_argument("--match", action="store_true",
                        help="pair the units of A and B by the Hungarian algorithm on the token-distribution "
                             "distances (POS when only pos is asked for) instead of by index (for "
                             "independently trained models)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    import_tensorflow(args.verbose)
    options = txray.TxrayOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(txray.TxrayOptions)})
    given = [args.config, args.config_b, args.pos_mapping]
    for name in txray.OUTPUTS:               # before the computation, as far as the flags tell
        analysis.check_not_input(f"{args.out}_{name}", [p for p in given if p])
    result = txray.run_txray(args.config, options)
    written, summary = txray.write_outputs(result, args.out)
    print(summary, end="")
    print("wrote " + ", ".join(written))
    return 0


def main(argv=None):
    return run_cli(_main, argv, "txray.py")


if __name__ == "__main__":
    sys.exit(main())
