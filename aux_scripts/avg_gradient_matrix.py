"""Average the gradient matrices of one delay over all windows and time steps, overall or per POS class."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402
from state_gradients.measures import analysis  # noqa: E402

USAGE = "%(prog)s GRADROOT k [npz]\n       %(prog)s GRADROOT k POS_CLASSES POS_MAPPING [npz]"


def build_parser(prog="avg_gradient_matrix.py"):
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(
        prog=prog, usage=USAGE,
        description="Mean of all matrices in GRADROOT/timestep_*/delay_{k}/ -> GRADROOT/delay_{k}_avg.npy "
                    "(float32) and delay_{k}_count.txt. With POS_CLASSES and POS_MAPPING: mean over the "
                    "windows whose word at t-k (mapping.txt) has a tag in the class -> "
                    "delay_{k}_avg_{class}.npy and delay_{k}_count_{class}.txt, class = the class "
                    "file's name without extension. Each folder is read from its {n}.npy files, or "
                    "from all.npz where there are none.")
    parser.add_argument("gradroot", metavar="GRADROOT", help="root of the gradient dump (holds timestep_* folders)")
    parser.add_argument("delay", metavar="k", type=int, help="delay k >= 0")
    parser.add_argument("rest", metavar="...", nargs="*",
                        help="optional POS_CLASSES (one tag per line; several files comma-separated) and "
                             "POS_MAPPING (word -> tags), then optional 'npz' to read only all.npz files")
    return parser


def run(argv, prog):
    """Body shared with the avg_gradient_matrix_pos.py alias."""
    args = build_parser(prog).parse_args(argv)
    rest = list(args.rest)
    use_npz = None
    if rest and rest[-1] == "npz":
        use_npz = True
        rest.pop()
    if len(rest) not in (0, 2):
        raise UserError(f"unexpected arguments {' '.join(args.rest)!r}: give nothing, 'npz', "
                        "POS_CLASSES POS_MAPPING, or POS_CLASSES POS_MAPPING npz")
    if args.delay < 0:
        raise UserError(f"delay k must be >= 0, got {args.delay}")
    classes = pos_mapping = None
    if rest:
        class_files = [f for f in rest[0].split(",") if f]
        classes = {}
        for path in class_files:
            name = analysis.class_name(path)
            if name in classes:
                raise UserError(f"two POS class files are named {name!r}: their averages would share a file")
            classes[name] = analysis.read_pos_class(path)
        pos_mapping = analysis.read_pos_mapping(rest[1])
    averages, counts, missing = analysis.average_gradients(
        args.gradroot, args.delay, use_npz=use_npz, classes=classes, pos_mapping=pos_mapping)
    if missing:
        shown = ", ".join(sorted(missing)[:10]) + (", ..." if len(missing) > 10 else "")
        print(f"{prog}: warning: {len(missing)} words are not in {rest[1]} and count as untagged: {shown}",
              file=sys.stderr)
    for key, avg in averages.items():
        out = analysis.average_path(args.gradroot, args.delay, key)
        analysis.check_not_input(out, rest)
        analysis.atomic_save_npy(out, avg)
        analysis.atomic_write_text(analysis.count_path(args.gradroot, args.delay, key), f"{counts[key]}\n")
        print(f"wrote {out}: average of {counts[key]} matrices of shape {avg.shape}")
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(lambda a: run(a, "avg_gradient_matrix.py"), argv, "avg_gradient_matrix.py")


if __name__ == "__main__":
    sys.exit(main())
