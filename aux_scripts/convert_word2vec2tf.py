"""Convert word2vec text vectors of the words in a dictionary to OUTDIR/all.npy plus a word<TAB>row dictionary."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="convert_word2vec2tf.py",
        description="Keep the word2vec vectors (text format) of the words in DICT, in word2vec file order: "
                    "write OUTDIR/all.npy (float32, one row per word) and OUTDICT (word<TAB>row), the "
                    "input of the pretrained_embeddings config key.")
    parser.add_argument("w2v", metavar="W2V.txt", help="word2vec vectors in text format (optional 'count dim' header)")
    parser.add_argument("dict", metavar="DICT", help="dictionary: the first field of each line is a word")
    parser.add_argument("outdir", metavar="OUTDIR", help="output folder for all.npy (created if missing)")
    parser.add_argument("outdict", metavar="OUTDICT", help="output dictionary word<TAB>row")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    out_npy = os.path.join(args.outdir, "all.npy")
    for out in (out_npy, args.outdict):
        analysis.check_not_input(out, [args.w2v, args.dict])
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UserError(f"OUTDIR {args.outdir} exists and is not a directory")
    vocab = set(analysis.read_dict_words(args.dict))
    words, vectors = analysis.read_word2vec_text(args.w2v, keep=vocab)
    os.makedirs(args.outdir, exist_ok=True)
    analysis.atomic_save_npy(out_npy, vectors)
    analysis.atomic_write_text(args.outdict, "".join(f"{w}\t{i}\n" for i, w in enumerate(words)))
    print(f"wrote {out_npy} ({len(words)} words x {vectors.shape[1]}) and {args.outdict}; "
          f"{len(vocab) - len(words)} of the {len(vocab)} words of {args.dict} have no vector")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "convert_word2vec2tf.py")


if __name__ == "__main__":
    sys.exit(main())
