"""sg-reproduce: the papers' workflow in one command, from a training config (or a trained model) to report.md/.html."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core import configuration  # noqa: E402
from state_gradients.core.cli import import_tensorflow, make_parser, output_line, run_cli, typed_command  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402
from state_gradients.workflows import reproduce  # noqa: E402


PROG = reproduce.PROG


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=PROG, tensorflow=True,
        description="Run the papers' whole workflow: data check, training (resuming), model copy, test "
                    "perplexity, POS mapping, frequency classes, state gradients of the cell state (a "
                    "Transformer's residual stream after its top block; all time "
                    f"steps, {reproduce.MAX_DELAY} delays, streaming averages overall, per POS class and per frequency "
                    "bin; B 1 and the config's T), embedding export and normalisation, POS classifier, "
                    "difference vectors (NNS-NN, VBZ-VBP) with relative memory and subspace cosine, the sum of "
                    "singular values per class and delay, and the report. A step whose outputs are complete "
                    "and made from the same inputs is skipped, so an interrupted run resumes where it was.")
    parser.add_argument("--config", required=True, help="the training config (e.g. config/ptb-norm-wsj_64e_256h_steps200.config)")
    parser.add_argument("--out", help="output folder DIR (default: runs/reproduce/<config name>)")
    parser.add_argument("--model", metavar="SAVE_PATH",
                        help="analyse this trained model instead of training: a save_path with a checkpoint, or "
                             "with weights.npz + dict; it is only read (its files are copied to DIR/model)")
    parser.add_argument("--valid-windows", type=int, metavar="N",
                        help="use only batches 0..N-1 of the validation pass (quick runs; default: all)")
    parser.add_argument("--pos-mapping", metavar="FILE", help="an existing POS mapping of the model's vocabulary")
    parser.add_argument("--conll", nargs="+", default=[], metavar="FILE", help="CoNLL-2000 files to build the POS mapping")
    parser.add_argument("--treebank", nargs="+", default=[], metavar="FILE",
                        help="Penn Treebank .pos files to build the POS mapping")
    parser.add_argument("--pos-data", metavar="DIR",
                        help="the folder data/get_pos_data.py fills: the same as --conll DIR/conll2000/train.txt "
                             "DIR/conll2000/test.txt --treebank DIR/treebank_sample/wsj_0001-0199.pos")
    parser.add_argument("--classifier-grid", choices=["full", "small"], default="full",
                        help="grid of the POS classifier: full (the original's; default) or small (quick)")
    parser.add_argument("--min-valid-tokens", type=int, default=1000, metavar="N",
                        help="frequency bins (training counts 1-9, 10-99, ...) with fewer validation tokens are "
                             "merged into their more frequent neighbour (default 1000)")
    parser.add_argument("--blocks", type=int, default=None, metavar="N",
                        help=f"contiguous blocks of the validation text for the intervals (grad_blocks; default "
                             f"{reproduce.BLOCKS}, {reproduce.BLOCKS_WITH_CONTEXT} with --pos-data, at most --valid-windows; 0: no blocks "
                             "and no intervals)")
    parser.add_argument("--same-targets", action="store_true",
                        help="state gradients on the targets t >= 49 only (t >= T - 1 when T < 50), so that every "
                             "delay averages over the same target positions (for comparing models whose context is "
                             "bound to the window; default: every target t >= k at delay k)")
    parser.add_argument("--no-perturb", action="store_true",
                        help="leave out the behavioural measures (sg-perturb: a past word replaced, the context cut, "
                             "shuffled or thinned; about as long as the gradient pass) and the report's section on them")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the derived configs to DIR/configs and print every step as plain commands "
                             "(console scripts of this package, test/cp/mkdir/rm) instead of running them")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.verbose:      # else each step's command loads TensorFlow quietly, when it needs it
        import_tensorflow(verbose=True)
    configuration.read_config_lines(args.config)   # a missing or unreadable config is named before the POS data
    conll, treebank = list(args.conll), list(args.treebank)
    if args.pos_data:
        analysis.check_dir(args.pos_data, "--pos-data folder")
        conll += [os.path.join(args.pos_data, f) for f in reproduce.CONLL_FILES]
        treebank += [os.path.join(args.pos_data, f) for f in reproduce.TREEBANK_FILES]
    if args.pos_mapping and (conll or treebank):
        raise UserError("give either --pos-mapping or tagged corpora (--pos-data, --conll, --treebank), not both")
    if not args.pos_mapping and not (conll or treebank):
        raise UserError("no POS data: give --pos-data DIR (fill it with python data/get_pos_data.py), "
                        "--conll FILE... and/or --treebank FILE..., or --pos-mapping FILE")
    for path in [args.pos_mapping, *conll, *treebank]:
        if path and not os.path.isfile(path):
            raise UserError(f"POS data file {path} not found")
    if args.blocks is not None and (args.blocks == 1 or args.blocks < 0):
        raise UserError(f"--blocks must be 0 (no intervals) or >= 2, got {args.blocks}")
    if args.valid_windows is not None and args.valid_windows < 1:
        raise UserError(f"--valid-windows must be >= 1, got {args.valid_windows}")
    name = os.path.splitext(os.path.basename(args.config))[0]
    opts = reproduce.Options(config=args.config, out=args.out or os.path.join("runs", "reproduce", name), model=args.model,
                   valid_windows=args.valid_windows, pos_mapping=args.pos_mapping, conll=tuple(conll),
                   treebank=tuple(treebank), classifier_grid=args.classifier_grid,
                   min_valid_tokens=args.min_valid_tokens, blocks=args.blocks, pos_data=args.pos_data,
                   same_targets=args.same_targets, perturb=not args.no_perturb)
    typed = typed_command(PROG, argv)
    reproduce.reproduce(opts, dry_run=args.dry_run, command=typed)
    if not args.dry_run:
        print(output_line("report", os.path.join(opts.out, "report.html")))
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
