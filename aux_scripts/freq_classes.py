"""Bin an LM vocabulary by training-set frequency into classes that one gradient pass averages beside the POS classes."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.classes import freq_classes  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="freq_classes.py",
        description="Bin the vocabulary by training-set frequency. Writes one class file OUTDIR/freq_LO-HI.txt "
                    "per bin (holding its tag FREQ_LO-HI), OUTDIR/freq_bins.csv (class, tag, count range "
                    "lo..hi, words, training and validation tokens per bin) and the --out-mapping file: the "
                    "POS mapping with each word's frequency tag added. They are the gradient pass's "
                    "pos_classes (OUTDIR can be given as a folder) and pos_mapping. <eos>, <unk> and <bos> "
                    "get no bin.")
    parser.add_argument("config", metavar="CONFIG", help="the model's config (data_path, encoding, eos rules)")
    parser.add_argument("dict", metavar="DICT", help="the model's vocabulary, `word<TAB>id` lines")
    parser.add_argument("out_dir", metavar="OUTDIR", help="folder for the class files and the bin table")
    parser.add_argument("--out-mapping", metavar="FILE", required=True,
                        help="the POS mapping to write, with the frequency tags added (outside OUTDIR: a .txt "
                             "file there would count as a class file)")
    parser.add_argument("--pos-mapping", metavar="FILE",
                        help="POS mapping whose tags are kept in OUTDIR/pos_mapping.txt (default: none, "
                             "the mapping holds only the frequency tags)")
    parser.add_argument("--bins", choices=["decades", "quantiles"], default="decades",
                        help="decades: training counts 1-9, 10-99, 100-999, ... (default); quantiles: "
                             "--n-bins bins with about equal shares of the training tokens")
    parser.add_argument("--n-bins", type=int, default=5, help="number of quantile bins (default 5)")
    parser.add_argument("--min-valid-tokens", type=int, default=1000,
                        help="a bin with fewer validation tokens is merged into its more frequent "
                             "neighbour (default 1000)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.n_bins < 1:
        raise UserError(f"--n-bins must be >= 1, got {args.n_bins}")
    if args.min_valid_tokens < 0:
        raise UserError(f"--min-valid-tokens must be >= 0, got {args.min_valid_tokens}")
    pos = analysis.read_pos_mapping(args.pos_mapping) if args.pos_mapping else None
    rows, tag_of, words = freq_classes.frequency_bins(args.config, args.dict, args.bins, args.n_bins, args.min_valid_tokens)
    out_mapping = args.out_mapping
    if os.path.realpath(os.path.dirname(os.path.abspath(out_mapping))) == os.path.realpath(args.out_dir):
        raise UserError(f"--out-mapping {out_mapping} is inside OUTDIR {args.out_dir}, where every .txt file "
                        "is taken as a class file: write it elsewhere")
    analysis.check_not_input(out_mapping, [args.pos_mapping, args.dict, args.config])
    os.makedirs(args.out_dir, exist_ok=True)
    for row in rows:
        analysis.atomic_write_text(os.path.join(args.out_dir, row["class"] + ".txt"), row["tag"] + "\n")
    analysis.write_pos_mapping(freq_classes.combined_mapping(words, tag_of, pos), out_mapping)
    analysis.atomic_write_text(os.path.join(args.out_dir, freq_classes.BIN_TABLE), freq_classes.table_text(rows))
    for row in rows:
        share = 100.0 * row["valid_tokens"] / max(1, sum(r["valid_tokens"] for r in rows))
        print(f"{row['class']}\t{row['words']} words\t{row['train_tokens']} training tokens\t"
              f"{row['valid_tokens']} validation tokens ({share:.1f}%)")
    print(f"wrote {len(rows)} class files and {freq_classes.BIN_TABLE} in {args.out_dir}, and {out_mapping}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "freq_classes.py")


if __name__ == "__main__":
    sys.exit(main())
