"""Predict POS tags (or classes of tags) from word embeddings with grid-searched logistic regression."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.classes import pos_classifier  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="pos_classifier_sklearn.py",
        description="Train (grid search, 3-fold CV) and evaluate a logistic-regression classifier that "
                    "predicts the POS tag of a word from its embedding; 80/10/10 split after a seeded shuffle.")
    parser.add_argument("emb", metavar="EMB", help="embeddings, .npy of shape [V, E] (row i = word with id i)")
    parser.add_argument("dict", metavar="DICT", help="`word<TAB>id` file for the rows of EMB (ids 0..V-1)")
    parser.add_argument("posfile", metavar="POSFILE",
                        help="POS mapping (`word ['T1', 'T2']` lines; collapsed) or, with --type_data "
                             "running_text, a tagged running text (`word TAG` per token)")
    parser.add_argument("name", metavar="NAME",
                        help="output prefix: NAME.estimator, NAME.params, NAME.results, NAME.score, NAME_*.png/.npy")
    parser.add_argument("--pos_classes", metavar="FILE",
                        help="classify only these: a list of tags (one per line), lines `class<TAB>tag tag ...`, "
                             "or a first line `token` followed by `class<TAB>word word ...`")
    parser.add_argument("--type_data", choices=["collapsed", "running_text"], default="collapsed",
                        help="'collapsed' (default): one example per (word, tag) of the mapping; 'running_text': "
                             "one example per token of a tagged text, with its tag in context")
    parser.add_argument("--freq_cutoff", type=int, metavar="K",
                        help="drop labels (tags, or classes with --pos_classes) with fewer than K examples")
    parser.add_argument("--no_train", action="store_true",
                        help="do not train: load NAME.estimator instead")
    parser.add_argument("--no_valid", action="store_true", help="do not print the validation accuracy")
    parser.add_argument("--no_test", action="store_true", help="do not print the test accuracy")
    parser.add_argument("--grid_search", action="store_true", help="print the grid-search results (NAME.results)")
    parser.add_argument("--grid", choices=sorted(pos_classifier.GRIDS), default="full",
                        help="hyper-parameter grid: 'full' (the original's, default) or 'small' (quick runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle before the split (default 0) "
                                                             "and of t-SNE")
    parser.add_argument("--confusion_matrix", action="store_true",
                        help="plot the row-normalised confusion matrix (NAME_confusion_matrix_norm_all.png)")
    parser.add_argument("--results_dataset", choices=["full", "test"], default="test",
                        help="data for the confusion matrix / PCA / t-SNE / LDA plots: all examples or the "
                             "test part (default)")
    parser.add_argument("--result", metavar="FILE.json",
                        help="also write the numbers as JSON to FILE (state_gradients/core/results.py gives the schema)")
    parser.add_argument("--pca", action="store_true", help="PCA plot of the embeddings (NAME_pca.png)")
    parser.add_argument("--tsne", action="store_true", help="t-SNE plot of the embeddings (NAME_tsne.png)")
    parser.add_argument("--lda", action="store_true", help="LDA plot of the embeddings (NAME_lda.png)")
    parser.add_argument("--plot_coef", action="store_true", help="plot the classifier's weights (NAME_coef.png)")
    parser.add_argument("--avg_emb", action="store_true",
                        help="write NAME_avg_{LABEL}.npy: the mean embedding of all examples of each label")
    return parser


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.freq_cutoff is not None and args.freq_cutoff < 1:
        parser.error(f"--freq_cutoff must be >= 1, got {args.freq_cutoff}")
    return args


def _main(argv):
    pos_classifier.run_classifier(parse_args(argv))
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "pos_classifier_sklearn.py")


if __name__ == "__main__":
    sys.exit(main())
