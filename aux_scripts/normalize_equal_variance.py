"""Whitening of an embedding space: mean, covariance, its Cholesky factor D and Z = D^-1."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402

def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog="normalize_equal_variance.py",
        description="From EMB.npy (one row per word) write EMB_mean.npy (mean m), EMB_covar.npy "
                    "(covariance C), EMB_D_norm_grad.npy (lower Cholesky factor D, C = D D^T; "
                    "normalises gradients as G D) and EMB_Z_norm_emb.npy (Z = D^-1; normalises "
                    "embeddings as Z x), all float64, then print sanity checks.")
    parser.add_argument("emb", metavar="EMB.npy", help="embedding matrix, rows = words (e.g. from save_embedding)")
    parser.add_argument("--no-sanity", action="store_true", help="skip the sanity checks")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    emb, paths, (mean, cov, d_factor, z_inv) = analysis.write_normalisation(args.emb)
    for path in paths.values():
        print(f"wrote {path}")
    if not args.no_sanity:
        checks = analysis.sanity_checks(emb, mean, cov, d_factor, z_inv)
        fmt = analysis.format_number
        print(f"max |mean of mean-normalised embeddings| (should be very small): {fmt(checks['centred_mean'])}")
        print(f"max |D D^T - C| (should be very small): {fmt(checks['factor_error'])}")
        print(f"max |Z C Z^T - I| (should be very small): {fmt(checks['identity_error'])}")
        print(f"condition number of Z (should be < 100): {fmt(checks['condition_z'])}")
        print(f"max |covariance of Z x - I| (should be very small): {fmt(checks['normalised_cov_error'])}")
        if checks["condition_z"] >= 100:
            print("normalize_equal_variance.py: warning: Z is badly conditioned (condition number >= 100); "
                  "normalised results will be dominated by low-variance dimensions", file=sys.stderr)
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, "normalize_equal_variance.py")


if __name__ == "__main__":
    sys.exit(main())
