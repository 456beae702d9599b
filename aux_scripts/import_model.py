"""sg-import: convert a PyTorch, Keras or TF1 RNN language model into this project's weights.npz, dict, checkpoint and config."""
import argparse
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aux_scripts import import_sources, model_import  # noqa: E402
from tf_scripts import configuration, saved_model  # noqa: E402
from tf_scripts.saved_model import SavedModel  # noqa: E402
from tf_scripts.errors import UserError, run_cli  # noqa: E402

PROG = "sg-import"
TORCH_ONLY = ("embedding_key", "rnn_prefix", "decoder_prefix", "nonlinearity")
TF1_ONLY = ("config", "forget_bias")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__,
        epilog="Exit status: 0 imported and checked; 1 the model cannot be imported (the reason is printed) or a "
               "check failed (see DIR/import_report.json); 2 a bad flag or file.")
    parser.add_argument("--from", dest="framework", required=True, choices=model_import.FRAMEWORKS,
                        help="the framework that wrote SOURCE")
    parser.add_argument("source", metavar="SOURCE",
                        help="torch: a state dict (.safetensors, .npz, or a zip-format .pt/.pth/.bin, read without "
                             "torch); keras: .keras, .h5 or .weights.h5; tf1: a checkpoint prefix or its folder")
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
                             "states, from a zero state; see README), within 1e-4 relative")
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
    return parser.parse_args(argv)


def find_model(args):
    """The SourceModel of args.source, after the structural checks."""
    wrong = [name for name in TORCH_ONLY if getattr(args, name) is not None and args.framework != "torch"]
    wrong += [name for name in TF1_ONLY if getattr(args, name) is not None and args.framework != "tf1"]
    if wrong:
        raise UserError(f"--{wrong[0].replace('_', '-')} does not apply to --from {args.framework}")
    if args.framework == "torch":
        model = import_sources.find_torch(args.source, embedding_key=args.embedding_key, rnn_prefix=args.rnn_prefix,
                                          decoder_prefix=args.decoder_prefix, no_head=args.no_head,
                                          nonlinearity=args.nonlinearity or "tanh")
    elif args.framework == "keras":
        model = import_sources.find_keras(args.source, no_head=args.no_head)
    else:
        config = None
        if args.config:
            config = configuration.load_config(args.config, train=False, valid=True, test=False,
                                               warn=lambda message: None)
        model = import_sources.find_tf1(args.source, config=config, forget_bias=args.forget_bias, no_head=args.no_head)
    model_import.check_structure(model)
    return model


def run_import(args, log=print):
    """Import args.source into args.out; returns (report, passed)."""
    model = find_model(args)
    names, vocab_report = model_import.read_vocab(args.vocab, model.embedding.shape[0])
    eos = model_import.resolve_token(args.eos_token, names, "--eos-token")
    unk = model_import.resolve_token(args.unk_token, names, "--unk-token")
    if unk is None and "<unk>" not in names:
        vocab_report["notes"].append("no unknown-word token: words outside the vocabulary are an error (--unk-token)")
    options = {"eos": eos, "unk": unk, "reference": args.reference, "vocab_report": vocab_report}
    source_desc = f"{os.path.abspath(args.source)} (--from {args.framework})"
    report, passed = model_import.write_import(args.out, model, names, options, source_desc)
    m = report["model"]
    log(f"{args.source}: {m['num_layers']}-layer {m['basic_cell']}, E {m['embedding_size']}, H {m['size']}, "
        f"{m['vocabulary_rows']} rows, {'with' if m['output_layer'] else 'without'} output layer")
    for note in model.notes + vocab_report["notes"]:
        log(f"  assumed/noted: {note}")
    for check in report["checks"]:
        log(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['check']}: {check['error']:.2e} "
            f"(tolerance {check['tolerance']:g})")
    out = os.path.abspath(args.out)
    if passed:
        log(f"Wrote {out}: {', '.join(saved_model.IMPORT_FILES)}")
    else:
        log(f"Checks failed: nothing but {SavedModel(out).import_report_path} was written")
    return report, passed


def _main(argv):
    args = parse_args(argv)
    try:
        _, passed = run_import(args)
    except model_import.Refused as err:
        print(f"{PROG}: cannot import: {err}", file=sys.stderr)
        return 1
    return 0 if passed else 1


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
