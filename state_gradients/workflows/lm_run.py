"""main.py's job as library code: train, evaluate, export or compute state gradients of a language model from a config."""
# Shape letters: V vocabulary, E embedding size.
# tf_scripts/main.py is the command line over build_parser() and run(); TensorFlow and the modules that build
# models load after the arguments are parsed (import_tensorflow), so that --help never loads them.
import io
import os
import secrets

import numpy as np

from state_gradients.core import configuration, fileio, lm_data, results
from state_gradients.core.cli import import_tensorflow, make_parser, output_line, run_cli
from state_gradients.core.errors import UserError
from state_gradients.files import gradient_files
from state_gradients.files.saved_model import SavedModel

PROG = "main.py"
DESCRIPTION = "Train, evaluate, export or compute state gradients of a word-level RNN language model from a config file."


def _add_bool(parser, name, on_help, off_help):
    """absl-style --name / --noname, default True."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=name, action="store_true", default=True, help=f"{on_help} (default)")
    group.add_argument(f"--no{name}", dest=name, action="store_false", help=off_help)


def build_parser():
    """The command line's arguments (also read by the docs' command reference)."""
    parser = make_parser(PROG, DESCRIPTION, tensorflow=True)
    parser.add_argument("--config", required=True, help="configuration file (key value lines; every key: docs/reference/config.md)")
    _add_bool(parser, "train", "train (resuming from save_path's latest checkpoint), validating every epoch",
              "do not train: restore the latest checkpoint and evaluate it")
    _add_bool(parser, "valid", "validation perplexity (with --notrain and grad_interm in the config: "
              "compute the state gradients during this pass)", "no validation pass (needs --notrain)")
    _add_bool(parser, "test", "test perplexity at the end (batch 1, one token at a time; a Transformer: on windows, "
              "see eval_stride)", "no test pass")
    parser.add_argument("--device", choices=["cpu"], default=None,
                        help="'cpu': hide all GPUs (otherwise a GPU is used when present)")
    parser.add_argument("--fresh_weights", action="store_true",
                        help="with --notrain: do not restore a checkpoint, use the seeded initial weights "
                             "(e.g. an untrained baseline); without it --notrain needs a checkpoint")
    parser.add_argument("--export_weights", action="store_true",
                        help="restore the latest checkpoint, write save_path/weights.npz and save_path/dict, "
                             "and exit (no training or evaluation)")
    parser.add_argument("--shard", metavar="i/N",
                        help="with --notrain --notest and grad_interm: compute only the i-th of N contiguous ranges "
                             "of the gradient pass's batches, in GRAD_DIR/shards/i-of-N/; merge the N shards with "
                             "sg-merge-gradients GRAD_DIR")
    parser.add_argument("--states-only", action="store_true",
                        help="with --notrain --notest and grad_interm: one forward pass that writes the state entering "
                             "every batch to GRAD_DIR/shards/states.npz; shards then start from it instead of "
                             "replaying the batches before them")
    parser.add_argument("--result", metavar="FILE.json",
                        help="also write the validation and test perplexities as JSON to FILE (state_gradients/core/results.py "
                             "gives the schema); the printed lines stay as they are")
    return parser


def hide_gpus():
    """--device cpu: hide every GPU from TensorFlow (before any op runs)."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        if tf.config.get_visible_devices("GPU"):
            raise UserError("--device cpu: TensorFlow already started with a GPU in this process") from None


class Log:
    """Print a line and append it to log_dir/NAME.log (a new file per run, never overwritten)."""

    def __init__(self, config):
        os.makedirs(config.log_dir, exist_ok=True)
        name = os.path.basename(os.path.normpath(config.log or config.save_path))
        path = os.path.join(config.log_dir, f"{name}.log")
        while True:
            try:
                self.file = open(path, "x", encoding="utf-8")
                break
            except FileExistsError:
                path = os.path.join(config.log_dir, f"{name}_{secrets.token_hex(3)}.log")
        self.path = path

    def __call__(self, message, terminal=True):
        """terminal=False: the log file only (the terminal gets a summary)."""
        if terminal:
            print(message, flush=True)
        self.file.write(f"{message}\n")
        self.file.flush()

    def close(self):
        self.file.close()


def config_summary(config):
    """One line for the terminal: the model's shape, the data and where the model lives."""
    layers = f"{config.num_layers} layer{'s' if config.num_layers > 1 else ''}"
    return (f"{config.path}: {config.basic_cell}, {layers} of {config.size} (embedding {config.embedding_size}), "
            f"num_steps {config.num_steps}, batch_size {config.batch_size}; data {config.data_path}; "
            f"model {config.save_path}")


def main_output(args, config):
    """(what, path) of a run's main output, for its last line."""
    if args.export_weights:
        return "weights", SavedModel.from_config(config).weights_path
    if config.save_embedding:
        return "embedding", config.save_embedding
    if config.grad_interm and args.valid and not args.train:
        return "gradients", config.grad_dir
    return "model", config.save_path


def save_embedding(model, path):
    """The embedding matrix [V, E] as a float32 .npy file (atomic; parent directories created)."""
    buffer = io.BytesIO()
    np.save(buffer, model.embedding.numpy().astype(np.float32))
    fileio.write_bytes(path, buffer.getvalue())


def run(argv):
    """main.py with its arguments argv: train, evaluate, export or run the gradient pass (UserError for bad input)."""
    args = build_parser().parse_args(argv)
    import_tensorflow(args.verbose)
    if args.device == "cpu":
        hide_gpus()
    if args.export_weights:
        # no passes; valid stays on only so that a gradient config passes the config checks
        args.train, args.valid, args.test = False, True, False
    if args.fresh_weights and args.train:
        raise UserError("--fresh_weights only works with --notrain (training resumes from save_path's "
                        "checkpoint, or starts from the initial weights when there is none)")
    shard = None
    if args.shard is not None:
        shard = gradient_files.parse_shard(args.shard)
    for flag, given in (("--shard", shard is not None), ("--states-only", args.states_only)):
        if given and (args.train or args.test or not args.valid or args.export_weights):
            raise UserError(f"{flag} belongs to a gradient pass: use it with --notrain --notest (and --valid)")
    if shard is not None and args.states_only:
        raise UserError("--states-only writes the states for all shards: run it once, without --shard")
    warnings = []
    config = configuration.load_config(args.config, train=args.train, valid=args.valid, test=args.test,
                                       warn=warnings.append)
    if (shard is not None or args.states_only) and not config.grad_interm:
        raise UserError(f"{'--shard' if shard else '--states-only'} needs a gradient config: {config.path} has no "
                        "grad_interm")
    if args.states_only and not config.family.stateful:
        raise UserError(f"--states-only: {config.path} is a Transformer, whose windows carry no state; its shards "
                        "start at their first batch without it")
    passes = not (args.export_weights or config.save_embedding)
    os.makedirs(config.save_path, exist_ok=True)
    log = Log(config)
    try:
        log("configuration:", terminal=False)
        for key, value in config.items():
            log(f"{key}\t{value}", terminal=False)
        log(f"TensorFlow version: {import_tensorflow().__version__}", terminal=False)
        log(f"{config_summary(config)}; the full configuration is in {log.path}")
        for message in warnings:
            log(f"Warning: {message}")
        perplexities = _run(args, config, log, passes, shard)
        log(output_line(*main_output(args, config)))
    finally:
        log.close()
    if args.result:
        results.write_result(args.result, "main.py", config=config.path,
                             epochs_done=SavedModel.from_config(config).epochs_done(), **perplexities)
    return 0


def _run(args, config, log, passes, shard=None):
    """Run what the flags ask for; returns {valid_perplexity, test_perplexity} (None where not computed)."""
    from state_gradients.models import lm
    from state_gradients.training import distribute, run_epoch, trainer

    perplexities = {"valid_perplexity": None, "test_perplexity": None}
    corpus = lm_data.load_corpus(config, need_train=args.train, need_valid=args.valid and passes,
                                 need_test=args.test and passes)
    log(f"Vocabulary size: {corpus.vocab_size}")
    saved = SavedModel.from_config(config)
    saved.write_labels(corpus.id_to_word, config.encoding)
    strategy = distribute.make_strategy(config) if args.train else None
    model = lm.build_model(config, corpus, log, strategy)
    if not model.has_output_layer and passes and (args.test or (args.valid and not config.grad_interm)):
        raise UserError(f"{config.line_of('output_layer')}: {lm.NO_OUTPUT_LAYER}")
    # traced once for validation and test
    eval_step = run_epoch.make_eval_step(model) if model.has_output_layer else None

    if args.train:
        config.save(saved.resolved_config_path)
        trainer.train(config, model, corpus, log, eval_step=eval_step, strategy=strategy)
    else:
        log(saved.restore_into(config, model, corpus.word_to_id, fresh_weights=args.fresh_weights,
                               exporting=args.export_weights))
        if args.export_weights:
            path = saved.write_weights(model, corpus.word_to_id)
            log(f"Wrote {path} and {saved.vocab_path}")
            return perplexities
        if config.save_embedding:
            save_embedding(model, config.save_embedding)
            log(f"Wrote the embedding matrix {model.embedding.shape[0]}x{model.embedding.shape[1]} to "
                f"{config.save_embedding}")
            return perplexities
        if args.valid:
            if config.grad_interm:
                from state_gradients.passes import gradient_pass

                if args.states_only:
                    gradient_pass.write_entering_states(config, model, corpus, log)
                else:
                    perplexities["valid_perplexity"] = gradient_pass.run_gradient_pass(config, model, corpus, log,
                                                                                       shard=shard)
            else:
                log("Start validating...")
                ppl = run_epoch.evaluate_pass(model, corpus.valid, config, step=eval_step, what=corpus.describe("valid"),
                                              max_windows=config.valid_batches)
                log(f"Valid Perplexity: {ppl!r}")
                perplexities["valid_perplexity"] = ppl
    if args.test:
        log("Start testing...")
        ppl = run_epoch.evaluate_pass(model, corpus.test, config, test=True, step=eval_step,
                                      what=corpus.describe("test"))
        log(f"Test Perplexity: {ppl!r}")
        perplexities["test_perplexity"] = ppl
    return perplexities


def run_command(argv=None) -> int:
    """main.py's command line in this process (what sg-demo runs): its exit status, one-line errors."""
    return run_cli(run, argv, PROG)
