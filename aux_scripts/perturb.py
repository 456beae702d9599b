"""sg-perturb: behavioural memory beside the state gradients: a past word replaced, the context cut, shuffled or thinned."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from state_gradients.core.cli import import_tensorflow, make_parser, run_cli  # noqa: E402
from state_gradients.core.errors import UserError  # noqa: E402

PROG = "sg-perturb"


def _ints(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"expected comma-separated integers, got {text!r}") from None
    if len(set(values)) != len(values):
        raise UserError(f"{text!r} repeats a value")
    return values


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    from state_gradients.measures.perturbation import PerturbOptions

    defaults = PerturbOptions()
    parser = make_parser(
        prog=PROG, tensorflow=True,
        description=__doc__ + " On the windows, target positions (time_step), classes (pos_mapping, pos_classes) "
        "and blocks (grad_blocks) of a gradient-pass config with batch_size 1: the word at t-k replaced by a "
        "word drawn from the training unigram distribution, and by one of its own class (the change of the state, "
        "in units of ‖D⁻¹Δx‖ with D of grad_norm_file, beside the state gradient's prediction ‖G·Δx‖, and the "
        "loss change at t), and the loss increase when the model reads only the last d words (a recurrent model "
        "from a zero state, a Transformer as a window of its own), and, against the "
        "longest context, when its words beyond d are shuffled, reversed, or its content words, function "
        "words or as many random words are dropped. Writes "
        "OUT/perturbation.csv (docs/measures.md) and resumes from OUT/perturbation_progress.npz.")
    parser.add_argument("--config", required=True, help="the gradient pass's config (batch_size 1)")
    parser.add_argument("--out", required=True, help="folder for perturbation.csv and the progress file")
    parser.add_argument("--delays", default=",".join(map(str, defaults.delays)),
                        help="delays k of the replaced word, comma-separated (default %(default)s)")
    parser.add_argument("--contexts", default=",".join(map(str, defaults.contexts)),
                        help="context lengths d of the truncation, comma-separated (default %(default)s; targets "
                             "at positions >= max(d) - 1 of the pass only)")
    parser.add_argument("--targets-per-window", type=int, default=defaults.targets_per_window,
                        help="target positions sampled per window and delay (default %(default)s; 0: all)")
    parser.add_argument("--rearranged-per-window", type=int, default=defaults.rearranged_per_window,
                        help="of those targets, how many get the word-order and dropping variants (default "
                             "%(default)s; each d reads the longest context five times)")
    parser.add_argument("--content", default=",".join(defaults.content),
                        help="pos_classes whose words are content words (dropped by drop_content; with "
                             "--function the classes of the same-class replacements; default %(default)s)")
    parser.add_argument("--function", default=",".join(defaults.function),
                        help="pos_classes whose words are function words (dropped by drop_function; default "
                             "%(default)s); a word in both is content")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the samples and replacement "
                        "words (default %(default)s)")
    return parser


def _main(argv):
    args = build_parser().parse_args(argv)
    for flag, value in (("--targets-per-window", args.targets_per_window),
                        ("--rearranged-per-window", args.rearranged_per_window)):
        if value < 0:
            raise UserError(f"{flag} must be >= 0, got {value}")
    delays, contexts = _ints(args.delays), _ints(args.contexts)
    import_tensorflow(args.verbose)
    from state_gradients.measures import perturbation

    options = perturbation.PerturbOptions(delays=delays, contexts=contexts,
                                          targets_per_window=args.targets_per_window or None,
                                          rearranged_per_window=args.rearranged_per_window, seed=args.seed,
                                          content=tuple(filter(None, args.content.split(","))),
                                          function=tuple(filter(None, args.function.split(","))))
    result = perturbation.run_perturbation(args.config, args.out, options)
    paths = perturbation.write_outputs(result, args.out)
    print(f"{len(result.classes)} classes, {result.windows} windows in {result.blocks} blocks; units of Δx: "
          f"{result.units}: {', '.join(paths)}")
    if result.measured:
        print(f"time over the {result.measured} windows measured now: " + ", ".join(
            f"{part.replace('_', ' ')} {result.seconds.get(part, 0.0):.1f} s" for part in perturbation.PARTS))
    return 0


def main(argv=None):
    """Command line entry point; returns the exit status."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
