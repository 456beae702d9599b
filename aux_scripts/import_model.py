"""sg-import: convert a PyTorch, Keras or TF1 RNN language model, or a GPT-2 checkpoint, into this project's weights.npz, dict, checkpoint and config."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, run_cli  # noqa: E402
from state_gradients.importing import convert, sources  # noqa: E402

PROG = "sg-import"


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=PROG, description=__doc__, tensorflow=True,
        epilog="Exit status: 0 imported and checked; 1 the model cannot be imported (the reason is printed) or a "
               "check failed (see DIR/import_report.json); 2 a bad flag or file.")
    parser.add_argument("--from", dest="framework", required=True, choices=convert.FRAMEWORKS,
                        help="the framework that wrote SOURCE")
    parser.add_argument("source", metavar="SOURCE",
                        help="torch: a state dict (.safetensors, .npz, or a zip-format .pt/.pth/.bin, read without "
                             "torch); keras: .keras, .h5 or .weights.h5; tf1: a checkpoint prefix or its folder; "
                             "gpt2: a folder with config.json and model.safetensors in the GPT-2 layout (a "
                             "Transformer, basic_cell Transformer; docs/transformer.md)")
    parser.add_argument("--vocab", required=True,
                        help="the model's vocabulary: one token per line (id = line number - 1), token<TAB>id "
                             "lines, or a .json object token -> id")
    parser.add_argument("--out", required=True, help="new folder for weights.npz, dict, the checkpoint, "
                        "import.config and import_report.json")
    parser.add_argument("--eos-token", help="the token that stands for a line end (as in VOCAB); becomes eos_token")
    parser.add_argument("--unk-token", help="the token that stands for unknown words (as in VOCAB); becomes "
                        "unk_token")
    parser.add_argument("--no-head", action="store_true",
                        help="import only the embedding and the recurrent stack (for attention, non-linear or "
                             "missing output layers): gradient passes work, perplexities do not")
    parser.add_argument("--reference", metavar="REF.npz",
                        help="outputs of the source framework to check against (ids plus logits and/or hidden "
                             "states, from a zero state; see docs/own-model.md; gpt2: logits and hidden_l{i}, "
                             "transformers' hidden_states[i]), within 1e-4 relative")
    torch = parser.add_argument_group("torch")
    torch.add_argument("--embedding-key", help="the state dict key of the embedding (default: found by name/shape)")
    torch.add_argument("--rnn-prefix", help="only recurrent weights whose key starts with this (e.g. 'rnn.')")
    torch.add_argument("--decoder-prefix", help="the output layer's key prefix (PREFIXweight, PREFIXbias; "
                       "PREFIXweight absent = tied to the embedding)")
    torch.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None,
                       help="an nn.RNN's nonlinearity, not stored in state dicts (default tanh; relu is refused)")
    tf1 = parser.add_argument_group("tf1")
    tf1.add_argument("--config", help="the original run's config file (forget_bias, and a check of basic_cell, "
                     "num_layers and size)")
    tf1.add_argument("--forget-bias", type=float, help="the LSTM forget bias when there is no --config")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    import_tensorflow(args.verbose)   # the checks run the imported model
    try:
        options = vars(args)
        options.pop("verbose")
        _, passed = sources.run_import(options.pop("framework"), options.pop("source"), options.pop("vocab"),
                                             options.pop("out"), **options)
    except convert.Refused as err:
        print(f"{PROG}: cannot import: {err}", file=sys.stderr)
        return 1
    return 0 if passed else 1


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
