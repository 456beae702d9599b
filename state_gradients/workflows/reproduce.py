"""sg-reproduce: the papers' workflow in one command, from a training config (or a trained model) to report.md/.html."""
# Every step is a list of plain commands (this package's console scripts, test/cp/mkdir/rm),
# run in-process; --dry-run prints the same commands for a shell. DIR = --out; its files are
# named in files/run_folder.py.
#
#   data ─► train ─► model ─┬─► pos_mapping ─► freq_classes ─► gradients ─┐
#                           ├─► test_perplexity                           ├─► svs ─► diff ─► report
#                           └─► embedding ─► normalise ─► classifier ─────┘
#
# A step is skipped when DIR/steps/NAME.json records that it completed with the same
# fingerprint (its commands, the config values it depends on, the bytes of the files it reads)
# and its outputs exist. A step that was interrupted runs again (the gradient pass resumes at
# its last checkpointed window); a step whose inputs changed first removes its old outputs.
import contextlib
import dataclasses
import glob
import hashlib
import importlib
import json
import os
import shlex
import shutil
import sys
import time

from state_gradients.classes import token_classes
from state_gradients.core import commands, configuration, families, lm_data, results
from state_gradients.core.errors import UserError
from state_gradients.core.fileio import atomic_write
from state_gradients.files import saved_model
from state_gradients.files.run_folder import RunFolder
from state_gradients.files.saved_model import SavedModel
from state_gradients.measures import analysis, perturbation

PROG = "sg-reproduce"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POS_CLASSES = ("nouns", "verbs", "adjectives", "adverbs", "determiners", "prepositions", "pronouns",
               "conjunctions", "numbers")
# the original's class files, installed with the commands (package data of aux_scripts)
POS_CLASS_DIR = os.path.join(REPO, "aux_scripts", "pos_classes")
# classes in context (sg-token-classes): with their <unk> tokens too, and split by frequency bin
WITH_UNK = ("nouns",)
# every POS class by frequency bin (the POS x frequency design; cells without tokens get no class)
BY_FREQUENCY = POS_CLASSES
# the extreme bins also with every word type weighted equally, in groups of types that the intervals resample
# (PTB's most frequent bin has 7 types: one per group)
TYPE_WEIGHTED = ("rarest", "commonest")
TYPE_GROUPS = 7
SIZE_MATCHED = ("nouns:verbs", "commonest:rarest")   # the larger class subsampled to the smaller one's count
SIZE_DRAWS = 2
DIFFERENCES = (("NNS", "NN"), ("VBZ", "VBP"))   # plural - singular noun, 3rd person - other present verb
MAX_DELAY = 50
# grad_blocks of the gradient pass: the jackknife's units of text (fewer with --valid-windows). With
# --pos-data the one pass also holds the classes in context (41 classes on the paper model), so that
# fewer blocks keep the block files near 1.5 GB (docs/intervals.md gives the sizes).
BLOCKS = 20
BLOCKS_WITH_CONTEXT = 10
# random-sign draws of each noise floor (sg-intervals --draws): its Monte Carlo error is a small share of
# a floor that is only compared with the SV sums, and each draw costs one SVD per class and delay
NOISE_DRAWS = 20
SUBSPACE_COLUMNS = 5
# The keys of the training config that the --notrain passes need; the training keys are left out,
# so that changing one of those does not rerun the analysis of a given model.
DATA_KEYS = ("data_path", "vocab", "encoding", "no_eos", "read_vocab_from_file")
MODEL_KEYS = ("basic_cell", "num_layers", "embedding_size", "size") + families.FAMILY_KEYS
# required by every config, but without effect on a restored model's passes: in the derived
# configs, not in the fingerprints
INERT_KEYS = ("init_scale", "softmax")
TEST_KEYS = ("other_test", "valid_as_test")
CONLL_FILES = ("conll2000/train.txt", "conll2000/test.txt")
TREEBANK_FILES = ("treebank_sample/wsj_0001-0199.pos",)


# --------------------------------------------------------------------------------------------
# Commands and steps
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Command:
    """One command of a step: argv as a shell would see it, and the file its standard output goes to.

    The argv is the step's one description: --dry-run prints it, the fingerprint hashes it, and
    run() executes it in this process (a console command through core/commands.py's table, a file
    operation through SHELL), so what runs is exactly what --dry-run prints.
    """
    argv: list
    stdout: str | None = None

    def text(self):
        line = shlex.join(self.argv)
        return f"{line} > {shlex.quote(self.stdout)}" if self.stdout else line

    @classmethod
    def parse(cls, line):
        """The Command of one printed line (`argv... [> FILE]`)."""
        words = shlex.split(line)
        if len(words) >= 3 and words[-2] == ">":
            return cls(words[:-2], words[-1])
        return cls(words)


@dataclasses.dataclass
class Step:
    name: str
    what: str
    commands: list
    inputs: list = dataclasses.field(default_factory=list)    # files, folders or globs read
    outputs: list = dataclasses.field(default_factory=list)   # exist when the step is complete
    keys: dict = dataclasses.field(default_factory=dict)      # config values the step depends on
    clean: list = dataclasses.field(default_factory=list)     # removed before a rerun on other inputs
    always: bool = False                                      # cheap checks: run every time
    done: object = None                                       # callable: complete without a record
    hint: str = ""                                            # added to the step's error messages


def _atomic_copy(src, dst):
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def _test(args, where):
    """test -f FILE: a data check."""
    if len(args) != 2 or args[0] != "-f":
        raise UserError(f"unsupported command {shlex.join(['test', *args])!r}{where}")
    if not os.path.isfile(args[1]):
        raise UserError(f"{args[1]} not found{where}")


def _mkdir(args, where):
    for path in args[1:] if args[:1] == ["-p"] else args:
        os.makedirs(path, exist_ok=True)


def _rm(args, where):
    for path in args[1:] if args[:1] == ["-rf"] else args:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def _cp(args, where):
    *sources, target = args
    for src in sources:
        if not os.path.isfile(src):
            raise UserError(f"{src} not found{where}")
        dst = os.path.join(target, os.path.basename(src)) if os.path.isdir(target) else target
        _atomic_copy(src, dst)


# the file operations a step uses, as the shell spells them and as Python runs them
SHELL = {"test": _test, "mkdir": _mkdir, "rm": _rm, "cp": _cp}


def run_command(command, where=""):
    """Run one Command in this process; UserError naming the command when it fails."""
    prog, args = command.argv[0], command.argv[1:]
    if prog in SHELL:
        SHELL[prog](args, where)
        return
    if prog not in commands.COMMANDS:
        raise UserError(f"unknown command {prog!r} in {command.text()!r}{where}")
    module = importlib.import_module(commands.COMMANDS[prog])
    if command.stdout is None:
        status = module.main(args)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(command.stdout)), exist_ok=True)
        partial = command.stdout + ".partial"
        with open(partial, "w", encoding="utf-8") as handle, contextlib.redirect_stdout(handle):
            status = module.main(args)
        if status == 0:
            os.replace(partial, command.stdout)
    if status == 130:     # the command was interrupted (Ctrl-C): so is the pipeline
        raise KeyboardInterrupt
    if status != 0:
        log_hint = f" (its output: {command.stdout}.partial)" if command.stdout else ""
        raise UserError(f"`{command.text()}` exited with status {status}{where}{log_hint}")


def _hash_path(digest, path):
    """Feed the name and bytes of a file, every file of a folder, or every match of a glob."""
    if any(ch in path for ch in "*?["):
        matches = sorted(glob.glob(path))
    elif os.path.isdir(path):
        matches = sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names
                         if not name.startswith(".") and not name.endswith(".partial"))
    else:
        matches = [path]
    for match in matches:
        if not os.path.isfile(match):
            raise UserError(f"{match} is missing: an earlier step did not complete")
        digest.update(os.path.relpath(match).encode() + b"\0")
        with open(match, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)


def fingerprint(step):
    digest = hashlib.sha256()
    digest.update(json.dumps([step.name, [c.text() for c in step.commands], step.keys],
                             sort_keys=True, default=str).encode())
    for path in step.inputs:
        _hash_path(digest, path)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Options:
    config: str
    out: str
    model: str | None = None
    valid_windows: int | None = None
    pos_mapping: str | None = None
    conll: tuple = ()
    treebank: tuple = ()
    classifier_grid: str = "full"
    min_valid_tokens: int = 1000
    blocks: int | None = None       # None: BLOCKS, or BLOCKS_WITH_CONTEXT with pos_data
    pos_data: str | None = None     # the get_pos_data.py folder: with it, classes in context too
    same_targets: bool = False      # every delay on the same targets t >= MAX_DELAY - 1 (fair across models)
    perturb: bool = True            # sg-perturb's behavioural measures beside the state gradients


def derived_config(config, values, purpose):
    """The Config of a --notrain pass: only the keys `values` names, from config or given there
    ((key, value) pairs), checked by configuration.derive as a file is."""
    values = dict(values)
    keep = {name: value for name, value in values.items() if value is not None}
    drop = {name: None for name, _ in config.items() if name not in keep}
    return configuration.derive(config, path=f"{config.path} ({PROG}: {purpose})", train=False, valid=True,
                                **drop, **keep)


def _pass_windows(config, valid_file, limit):
    """The windows of batch_size 1 that a --notrain pass reads: --valid-windows or all of the validation file's
    (limit, possibly None, while the file is missing: the data step names it)."""
    if not os.path.isfile(valid_file):
        return limit
    total = lm_data.num_batches(len(lm_data.read_words(
        valid_file, eos=not config.no_eos, wikitext="WikiText" in config.data_path, cgn="CGN" in config.data_path,
        encoding=config.encoding)), 1, config.num_steps)
    return min(limit or total, total)


def plan(opts):
    """(steps, derived Configs {path: Config}) for the options; UserError for bad options."""
    train = opts.model is None
    config = configuration.load_config(opts.config, train=train, valid=True, test=True, warn=lambda m: None)
    out = opts.out
    run = RunFolder(out)
    p = run.path
    model_dir, logs = run.model, run.logs
    data_files = [lm_data.data_file(config, s) for s in ("train", "valid", "test")]   # other_test included
    valid_file, test_file = data_files[1], data_files[2]
    data_keys = {k: getattr(config, k) for k in DATA_KEYS}
    # (keys a model does not have, None, are left out: the Transformer's for an LSTM, so its fingerprints stay)
    model_keys = {k: getattr(config, k) for k in MODEL_KEYS if getattr(config, k) is not None}

    # -- derived configs: the model for --notrain passes, the gradient pass, the embedding export
    base = [("save_path", model_dir), ("log_dir", logs), ("batch_size", 1), ("num_steps", config.num_steps)]
    base += [(k, getattr(config, k)) for k in DATA_KEYS + MODEL_KEYS + INERT_KEYS + TEST_KEYS]
    pos_files = [os.path.join(POS_CLASS_DIR, f"{name}.txt") for name in POS_CLASSES]
    in_context = run.in_context
    tags_name = os.path.basename(valid_file)[:-4] + ".tags"      # sg-pos-tagger's name for the tags of valid_file
    tags = os.path.join(in_context, tags_name)
    # the papers' cell state; a Transformer's residual stream after its top block
    interm = config.family.interm_names[0]
    # --same-targets: targets t >= max_delay - 1 only, so that delay k averages over the same target positions
    # for every k (with all targets, delay k uses t >= k: early positions, whose context is shortest, weigh on
    # the small delays only)
    delays = min(MAX_DELAY, config.num_steps)
    time_step = f"{delays - 1}-{config.num_steps - 1}" if opts.same_targets else "all"
    grad_keys = [("log", "gradients"), ("grad_interm", interm), ("time_step", time_step), ("max_delay", MAX_DELAY),
                 ("grad_dir", run.gradients), ("grad_average", True), ("grad_dump", False),
                 ("pos_mapping", run.class_mapping),
                 ("pos_classes", ",".join(pos_files + [run.freq_classes]))]
    if opts.pos_data:   # the classes in context in the same pass: the Jacobians are computed once
        grad_keys += [("pos_tokens", tags), ("pos_token_classes", os.path.join(in_context, "classes"))]
    if opts.valid_windows:
        grad_keys.append(("valid_batches", opts.valid_windows))
    chosen = opts.blocks if opts.blocks is not None else BLOCKS_WITH_CONTEXT if opts.pos_data else BLOCKS
    blocks = min(chosen, opts.valid_windows or chosen)
    if blocks >= 2:   # with the occurrence measures (per-occurrence nuclear norm, output level) under D
        grad_keys += [("grad_blocks", blocks), ("grad_norm_file", run.d_norm)]
    configs = {
        p("configs", "model.config"): derived_config(config, base + [("log", "model")],
                                                     "the model for the --notrain passes"),
        p("configs", "gradients.config"): derived_config(config, base + grad_keys,
                                                         f"state gradients of the {interm} state, all time steps"),
        p("configs", "embedding.config"): derived_config(config, base + [("log", "embedding"),
                                                                         ("save_embedding", run.embedding)],
                                                         "export of the embedding matrix"),
    }
    model_cfg, grad_cfg, emb_cfg = list(configs)[:3]

    steps = [Step("data", "check the data files",
                  [Command(["test", "-f", f]) for f in dict.fromkeys(data_files)]
                  + [Command(["mkdir", "-p", logs])], always=True,
                  hint=f"; data_path of {opts.config}: python data/get_ptb.py puts the PTB into data/ptb")]

    # -- training, or the given model
    if train:
        save_path = config.save_path
        steps.append(Step("train", f"train {opts.config} up to max_max_epoch {config.max_max_epoch} (resumes)",
                          [Command(["sg-main", "--config", opts.config, "--notest"], run.log("train"))],
                          keys=dict(config.items()), outputs=[SavedModel(save_path).weights_path],
                          done=lambda: SavedModel(save_path).epochs_done() >= config.max_max_epoch))
        source = save_path
    else:
        source = opts.model
        if not os.path.isdir(source):
            raise UserError(f"--model {source}: not a directory (expected a save_path with a checkpoint, or "
                            "weights.npz + dict)")
        if os.path.realpath(source) == os.path.realpath(model_dir):
            raise UserError(f"--model {source} is the output's own model folder; give the original one")
    given, copied = SavedModel(source), SavedModel(model_dir)
    if not train and not given.has_weights:
        if given.latest_checkpoint() is None:
            raise UserError(f"--model {source} holds neither {saved_model.WEIGHTS} + {saved_model.VOCAB} nor a "
                            "checkpoint")
        model_inputs = given.checkpoint_files()
        copy = [Command(["cp", *model_inputs, model_dir]),
                Command(["sg-main", "--notrain", "--export_weights", "--config", model_cfg], run.log("export"))]
    else:
        if not train and not given.has_vocab:
            raise UserError(f"--model {source} has {saved_model.WEIGHTS} but no {saved_model.VOCAB} beside it")
        model_inputs = [given.weights_path, given.vocab_path]
        copy = [Command(["cp", *model_inputs, model_dir])]
    m_weights, m_dict = copied.weights_path, copied.vocab_path
    steps.append(Step("model", f"copy the model from {source} into {model_dir}",
                      [Command(["rm", "-rf", model_dir]), Command(["mkdir", "-p", model_dir])] + copy,
                      inputs=model_inputs + [model_cfg] * (len(copy) > 1), outputs=[m_weights, m_dict]))

    test_windows = f"{config.num_steps}-token windows" if not config.family.stateful else "B 1, T 1"
    steps.append(Step("test_perplexity", f"test perplexity ({test_windows})",
                      [Command(["sg-main", "--notrain", "--novalid", "--config", model_cfg,
                                "--result", run.test_perplexity_json], run.test_perplexity_txt)],
                      inputs=[m_weights, m_dict, data_files[0], test_file],
                      keys={**data_keys, **model_keys, **{k: getattr(config, k) for k in TEST_KEYS}},
                      outputs=[run.test_perplexity_txt, run.test_perplexity_json]))

    # -- POS mapping and frequency classes
    pos_only = run.pos_mapping_pos
    if opts.pos_mapping:
        pos_step = Step("pos_mapping", f"copy the POS mapping {opts.pos_mapping}",
                        [Command(["cp", opts.pos_mapping, pos_only])], inputs=[opts.pos_mapping], outputs=[pos_only])
    else:
        argv = ["sg-build-pos-mapping", m_dict, pos_only]
        argv += (["--conll", *opts.conll] if opts.conll else []) + (["--treebank", *opts.treebank] if opts.treebank else [])
        argv += ["--coverage", valid_file, "--result", run.pos_mapping_json]
        pos_step = Step("pos_mapping", "POS mapping of the vocabulary from the tagged corpora",
                        [Command(argv, run.pos_mapping_log)], inputs=[m_dict, *opts.conll, *opts.treebank, valid_file],
                        outputs=[pos_only, run.pos_mapping_log, run.pos_mapping_json])
    steps.append(pos_step)
    steps.append(Step("freq_classes", "training-frequency bins, added to the POS mapping",
                      [Command(["rm", "-rf", run.classes]), Command(["mkdir", "-p", run.classes]),
                       Command(["sg-freq-classes", model_cfg, m_dict, run.freq_classes, "--pos-mapping", pos_only,
                                "--out-mapping", run.class_mapping, "--min-valid-tokens", str(opts.min_valid_tokens)],
                               p("classes", "freq_classes.log"))],
                      inputs=[m_dict, pos_only, data_files[0], valid_file], keys=data_keys,
                      outputs=[run.class_mapping, run.freq_bins]))

    # -- tags in context and their classes
    if opts.pos_data:
        tagger_tags = p("tagger", tags_name)
        # the type weights count the tokens the pass measures: its windows of batch_size 1 cover the first
        # windows x num_steps tokens
        windows = _pass_windows(config, valid_file, opts.valid_windows)
        measured = ["--measured-tokens", str(windows * config.num_steps)] if windows else []
        steps.append(Step("tagger", "POS tagger trained on the normalised tagged corpora, tested on CoNLL-2000 test, "
                          "tags of the validation text in context",
                          [Command(["sg-pos-tagger", "--pos-data", opts.pos_data, "--vocab-text", data_files[0],
                                    "--tag", valid_file, "--classes", *pos_files, "--out", run.tagger],
                                   run.log("tagger"))],
                          inputs=[opts.pos_data, data_files[0], valid_file, *pos_files],
                          outputs=[run.tagger_json, tagger_tags]))
        steps.append(Step("token_classes", "classes of the tagged tokens: POS in context, with <unk>, by frequency bin",
                          [Command(["rm", "-rf", in_context]),
                           Command(["sg-token-classes", valid_file, tagger_tags, run.class_mapping,
                                    "--classes", *pos_files, "--with-unk", *WITH_UNK, "--by-frequency", *BY_FREQUENCY,
                                    "--bins", "rarest", "commonest", "--size-matched", *SIZE_MATCHED,
                                    "--draws", str(SIZE_DRAWS), "--type-weighted", *TYPE_WEIGHTED,
                                    "--type-groups", str(TYPE_GROUPS), *measured,
                                    "--prefix", token_classes.CONTEXT_PREFIX, "--out", in_context],
                                   run.log("token_classes"))],
                          inputs=[valid_file, tagger_tags, run.class_mapping, *pos_files],
                          outputs=[tags, os.path.join(in_context, "classes")]))
    # -- embedding and normalisation (before the pass: its occurrence measures use D)
    emb = run.embedding
    steps.append(Step("embedding", "export the embedding matrix",
                      [Command(["sg-main", "--notrain", "--novalid", "--notest", "--config", emb_cfg],
                               run.log("embedding"))],
                      inputs=[m_weights, m_dict, data_files[0]], keys={**data_keys, **model_keys}, outputs=[emb]))
    d_norm, z_norm = run.d_norm, run.z_norm
    steps.append(Step("normalise", "embedding mean, covariance, Cholesky factor D and Z = D^-1",
                      [Command(["sg-normalize-equal-variance", emb], p("normalisation.log"))],
                      inputs=[emb], outputs=[d_norm, z_norm]))
    # -- state gradients
    steps.append(Step("gradients", f"state gradients of the {interm} state, all time steps, {MAX_DELAY} delays, "
                      "streaming averages overall, per POS class and per frequency bin (and per class in context with --pos-data)",
                      [Command(["sg-main", "--notrain", "--notest", "--config", grad_cfg], run.log("gradients"))],
                      inputs=[m_weights, m_dict, valid_file, data_files[0], run.classes, *pos_files,
                              *([in_context] if opts.pos_data else []), *([d_norm] if blocks >= 2 else [])],
                      keys={**data_keys, **model_keys, "num_steps": config.num_steps,
                            "valid_batches": opts.valid_windows, "max_delay": MAX_DELAY, "grad_blocks": blocks,
                            "time_step": time_step},
                      outputs=[run.gradient_average(0)], clean=[run.gradients]))

    # -- behavioural measures on the gradient pass's windows, targets, classes and blocks
    if opts.perturb:
        defaults = perturbation.PerturbOptions()
        # a replaced word lies in the window and below max_delay; a Transformer's context in its window, a
        # recurrent model's in the pass's text
        reach = config.num_steps * ((_pass_windows(config, valid_file, opts.valid_windows) or 1)
                                    if config.family.stateful else 1)
        perturb_delays = [k for k in defaults.delays if k < min(MAX_DELAY, config.num_steps)]
        # --same-targets: contexts up to max_delay, so that the cut contexts are measured on targets t >= 49 of
        # every window, the gradient pass's, for any family (a longer context would leave a Transformer the
        # window's last targets only, and a recurrent model other targets than a Transformer's)
        contexts = [d for d in defaults.contexts if d <= (min(reach, MAX_DELAY) if opts.same_targets else reach)]
        steps.append(Step("perturb", "behavioural memory: a past word replaced, the context cut, shuffled or "
                          "thinned (sg-perturb)",
                          [Command(["sg-perturb", "--config", grad_cfg, "--out", run.perturb,
                                    "--delays", ",".join(map(str, perturb_delays)),
                                    "--contexts", ",".join(map(str, contexts))], run.log("perturb"))],
                          inputs=[m_weights, m_dict, valid_file, data_files[0], run.classes, *pos_files,
                                  *([in_context] if opts.pos_data else []), *([d_norm] if blocks >= 2 else [])],
                          keys={**data_keys, **model_keys, "num_steps": config.num_steps,
                                "valid_batches": opts.valid_windows, "grad_blocks": blocks, "time_step": time_step},
                          outputs=[os.path.join(run.perturb, perturbation.CSV_NAME)], clean=[run.perturb]))

    # -- classifier
    classifier = p("classifier", "pos")
    steps.append(Step("classifier", f"POS classifier on the embeddings ({opts.classifier_grid} grid), mean "
                      "embedding per tag",
                      [Command(["rm", "-rf", run.classifier]), Command(["mkdir", "-p", run.classifier]),
                       Command(["sg-pos-classifier", emb, m_dict, pos_only, classifier, "--freq_cutoff", "2",
                                "--avg_emb", "--confusion_matrix", "--grid", opts.classifier_grid,
                                "--result", classifier + ".json"], classifier + ".log")],
                      inputs=[emb, m_dict, pos_only], outputs=[classifier + ".log", classifier + ".json"]))

    # -- singular values, difference vectors, report
    averages = p("gradients", "delay_*_avg*.npy")
    context_classes = token_classes.CONTEXT_PREFIX + "*"
    steps.append(Step("svs", "sum of singular values of G.D per delay and class (the papers' figure)",
                      [Command(["sg-plot-svs", run.gradients, "--grad-norm", d_norm, "--classes", "all",
                                "--exclude", context_classes,
                                "--labels", f"{config.basic_cell} E{config.embedding_size} H{config.size}",
                                "--out", run.svs_png], run.log("svs"))],
                      inputs=[averages, d_norm], outputs=[run.svs_csv, run.svs_png]))
    if opts.pos_data:
        steps.append(Step("svs_in_context", "sum of singular values of G.D per delay and class in context",
                          [Command(["sg-plot-svs", run.gradients, "--grad-norm", d_norm,
                                    "--classes", f"overall,{context_classes}",
                                    "--labels", f"{config.basic_cell} E{config.embedding_size} H{config.size}",
                                    "--out", p("svs_in_context.png")], run.log("svs_in_context"))],
                          inputs=[averages, d_norm], outputs=[p("svs_in_context.csv"), p("svs_in_context.png")]))
    if blocks >= 2:
        steps.append(Step("intervals", f"bias-corrected SV sums with jackknife intervals over {blocks} blocks of the "
                          "validation text, noise floors and coherence (sg-intervals)",
                          [Command(["sg-intervals", run.gradients, d_norm, "--out", run.intervals,
                                    "--draws", str(NOISE_DRAWS)],
                                   run.log("intervals"))],
                          inputs=[p("gradients", "blocks"), d_norm],
                          outputs=[p("intervals", "intervals.csv"), p("intervals", "replicates.csv")]))
    diff_commands, diff_outputs = [Command(["rm", "-rf", run.diff]), Command(["mkdir", "-p", run.diff])], []
    for a, b in DIFFERENCES:
        vector = p("diff", f"{a}-{b}.npy")
        diff_commands += [
            Command(["sg-diff-vector", f"{classifier}_avg_{a}.npy", f"{classifier}_avg_{b}.npy", vector],
                    run.log(f"diff_{a}-{b}")),
            Command(["sg-relative-memory", vector, run.gradients, z_norm, "--grad-norm", d_norm,
                     "--result", run.relative_memory_json(f"{a}-{b}")], p("diff", f"{a}-{b}_relative_memory.txt")),
            Command(["sg-cos-subspace-diff-vector", vector, run.gradients, str(SUBSPACE_COLUMNS), z_norm, d_norm,
                     "--result", run.cos_subspace_json(f"{a}-{b}")], p("diff", f"{a}-{b}_cos_subspace.txt")),
        ]
        diff_outputs += [p("diff", f"{a}-{b}_{what}.{ext}") for what in ("relative_memory", "cos_subspace")
                         for ext in ("txt", "json")]
    steps.append(Step("diff", "difference vectors " + ", ".join(f"{a}-{b}" for a, b in DIFFERENCES)
                      + ": relative memory and subspace cosine", diff_commands,
                      inputs=[p("classifier", "pos_avg_*.npy"), averages, d_norm, z_norm], outputs=diff_outputs))
    steps.append(Step("report", "report.md, report.html, figures and tables",
                      [Command(["sg-report", out], run.log("report"))],
                      inputs=[run.svs_csv, run.test_perplexity_json, run.progress_json,
                              run.classes, run.classifier_json, run.diff, run.pos_mapping_pos,
                              *([run.intervals] if blocks >= 2 else []),
                              *([os.path.join(run.perturb, perturbation.CSV_NAME)] if opts.perturb else []),
                              *([run.tagger, p("svs_in_context.csv")] if opts.pos_data else [])],
                      outputs=[run.report_md, run.report_html]))
    return steps, configs


# --------------------------------------------------------------------------------------------
# Running the plan
# --------------------------------------------------------------------------------------------

def _record_path(out, step):
    return os.path.join(out, "steps", f"{step.name}.json")


def _read_record(out, step):
    path = _record_path(out, step)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _write_record(out, step, record):
    analysis.atomic_write_text(_record_path(out, step), json.dumps(record, indent=1) + "\n")


def is_complete(out, step, fp):
    if step.always:
        return False
    if step.done is not None and step.done():
        return True
    record = _read_record(out, step)
    return bool(record and record.get("complete") and record.get("fingerprint") == fp
                and all(os.path.exists(o) for o in step.outputs))


def run_plan(steps, out, log=print):
    """Run the steps in order, skipping complete ones; returns {step name: seconds or None (skipped)}."""
    times = {}
    os.makedirs(out, exist_ok=True)
    for number, step in enumerate(steps, start=1):
        head = f"[{number}/{len(steps)}] {step.name}"
        fp = None if step.always or step.done else fingerprint(step)
        if is_complete(out, step, fp):
            log(f"{head}: complete with the same inputs, skipped")
            times[step.name] = None
            continue
        record = _read_record(out, step)
        if record and fp is not None and record.get("fingerprint") != fp:
            for path in step.clean:
                if os.path.isdir(path):
                    shutil.rmtree(path)
        if not step.always:
            _write_record(out, step, {"fingerprint": fp, "complete": False})
        start = time.monotonic()
        for command in step.commands:
            run_command(command, where=f" (step {step.name}{step.hint})")
        elapsed = time.monotonic() - start
        times[step.name] = elapsed
        if not step.always:
            if fp is None:
                fp = fingerprint(step)
            _write_record(out, step, {"fingerprint": fp, "complete": True, "seconds": round(elapsed, 1)})
        log(f"{head}: {step.what}: {elapsed:.1f} s")
        with open(os.path.join(out, "reproduce.log"), "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}\t{step.name}\t{elapsed:.1f} s\n")
    return times


def dry_run_text(steps, out):
    lines = [f"# {PROG}: {len(steps)} steps; run the commands from {os.getcwd()}",
             f"# (the derived configs they read are in {os.path.join(out, 'configs')})"]
    for number, step in enumerate(steps, start=1):
        lines.append(f"# [{number}/{len(steps)}] {step.name}: {step.what}")
        lines += [command.text() for command in step.commands]
    return "\n".join(lines) + "\n"


def reproduce(opts, dry_run=False, log=print, command=None):
    """Plan, write the derived configs, then run (or print) the steps. Returns the plan's steps.

    command: the command line as typed, recorded in OUT/provenance.json for the report's header.
    """
    steps, configs = plan(opts)
    for path, derived in configs.items():
        derived.save(path)
    if dry_run:
        sys.stdout.write(dry_run_text(steps, opts.out))
        return steps
    os.makedirs(opts.out, exist_ok=True)
    # a model given as --model is copied as weights.npz + dict: its epochs are those of its checkpoint
    epochs = SavedModel(opts.model).epochs_done() if opts.model else None
    results.write_provenance(opts.out, command, **({"epochs_done": epochs} if epochs else {}))
    run_plan(steps, opts.out, log)
    log(f"Report: {RunFolder(opts.out).report_md} and {RunFolder(opts.out).report_html}")
    return steps
