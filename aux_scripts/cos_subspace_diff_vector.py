"""Cosine between a normalised difference vector and the span of the top THR right singular vectors of G D."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core import results  # noqa: E402
from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="cos_subspace_diff_vector.py",
        description="d = Z DIFF / ||Z DIFF||; for every GRADROOT/delay_{k}_avg.npy (or "
                    "delay_{k}_avg_{CLASS}.npy), in increasing k, with G D = U S V^T print "
                    "'delay: K<TAB>cosine distance: ||V_x^T d||<TAB>percentage total sum: P', "
                    "V_x = the first THR columns of V and P = 100 * (sum of their singular values) / "
                    "(sum of all singular values).")
    parser.add_argument("diff", metavar="DIFF.npy", help="difference vector in embedding space (diff_vector.py)")
    parser.add_argument("gradroot", metavar="GRADROOT", help="folder with the delay_{k}_avg*.npy averages")
    parser.add_argument("thr", metavar="THR", type=int, help="number x of right singular vectors (columns of V)")
    parser.add_argument("z_inv", metavar="Z.npy", help="embedding normalisation Z (EMB_Z_norm_emb.npy)")
    parser.add_argument("grad_norm", metavar="D.npy", help="gradient normalisation D (EMB_D_norm_grad.npy)")
    parser.add_argument("cls", metavar="CLASS", nargs="?", default=None,
                        help="POS class name: use delay_{k}_avg_{CLASS}.npy (default: the overall averages)")
    parser.add_argument("--result", metavar="FILE.json",
                        help="also write the numbers as JSON to FILE (state_gradients/core/results.py gives the schema)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    if args.thr < 1:
        raise UserError(f"THR must be >= 1, got {args.thr}")
    direction, _ = analysis.load_direction(args.diff, args.z_inv)
    grad_norm = analysis.load_square(args.grad_norm, "gradient normalisation D")
    analysis.check_square(grad_norm, args.grad_norm, len(direction), args.diff)
    fmt = analysis.format_number
    rows = []
    for delay, grad in analysis.load_averages(args.gradroot, args.cls, grad_norm, args.grad_norm):
        cosine, percent = analysis.subspace_cosine(grad, grad_norm, direction, args.thr)
        print(f"delay: {delay}\tcosine distance: {fmt(cosine)}\tpercentage total sum: {fmt(percent)}")
        rows.append((delay, cosine, percent))
    if args.result:
        results.write_result(args.result, "sg-cos-subspace-diff-vector", **{
            "class": args.cls, "columns": args.thr, "delays": [r[0] for r in rows], "cosine": [r[1] for r in rows],
            "percent": [r[2] for r in rows]})
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "cos_subspace_diff_vector.py")


if __name__ == "__main__":
    sys.exit(main())
