"""Config files: one table of known keys, parsing, type and range checks, cross-key checks."""
import codecs
import difflib
import math
import os
import re
import sys
from dataclasses import dataclass

from state_gradients.core import families
from state_gradients.core.errors import UserError
from state_gradients.core.fileio import read_text, write_bytes

# A comment starts at a '#' that opens the line or follows whitespace ('a#b' stays a value).
_COMMENT = re.compile(r"(?:^|(?<=\s))#.*$", re.DOTALL)
_RANGE = re.compile(r"^(\d+)-(\d+)$")


@dataclass(frozen=True)
class Key:
    """One config key: its kind, default, allowed range, when it is required, and its meaning."""
    kind: str                    # str | int | float | bool | choice | vocab | time_step
    help: str
    default: object = None       # a value, or a callable(values dict) for derived defaults
    default_text: str = ""       # how the docs show a derived default
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False       # True: minimum itself is not allowed
    choices: tuple = ()
    required: str = ""           # a condition name of _REQUIRED_WHEN, "" = optional
    new: bool = False            # not a key of the original toolkit

    def expect(self):
        """The allowed values in words, as used in error messages and the docs' key table."""
        if self.kind == "bool":
            return "True or False"
        if self.kind == "str":
            return "a string"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "vocab":
            return "False or an integer >= 1"
        if self.kind == "time_step":
            return "an integer >= 0, 'all', or a range 'a-b' with a <= b"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.minimum is not None and self.maximum is not None:
            left = "(" if self.min_open else "["
            return f"{noun} in {left}{self.minimum}, {self.maximum}]"
        if self.minimum is not None:
            return f"{noun} {'>' if self.min_open else '>='} {self.minimum}"
        return noun


def _takes(values, key, field="keys"):
    """Whether the family of values' basic_cell owns the key (field "keys") or requires it ("needs"; core/families.py);
    False for an unknown basic_cell, which its own check refuses."""
    found = families.FAMILIES.get(values.get("basic_cell"))
    return found is not None and key in getattr(found, field)


def _derived(text, func):
    return {"default": func, "default_text": text}


# Every known key, in the order of the docs' key table (docs/reference/config.md).
KEYS = {
    "save_path": Key("str", "Directory for checkpoints; the latest checkpoint there is restored at "
                     "start-up. Every run also writes save_path/labels.tsv.", required="always"),
    "log_dir": Key("str", "Directory for the log file.", required="always"),
    "log": Key("str", "Base name of the log file log_dir/NAME.log (default: base name of save_path); "
               "an existing log is never overwritten, a random suffix is added instead."),
    "data_path": Key("str", "Directory with train.txt, valid.txt, test.txt. If it contains 'WikiText', "
                     "' . ' also ends a sentence and no_eos is ignored; if it contains 'CGN', "
                     "`<unk>` is written `<UNK>`.", required="always"),
    "vocab": Key("vocab", "False, or N: the data files are train_Nk-unk.txt, valid_Nk-unk.txt, "
                 "test_Nk-unk.txt (already mapped to `<unk>`).", required="always"),
    "vocab_size": Key("int", "Informational only: the real size is taken from the data.", minimum=1),
    "basic_cell": Key("choice", "Recurrent cell (TF1 BasicLSTMCell, GRUCell, BasicRNNCell maths). NEW: "
                      "GRU_RESET_AFTER, the GRU of PyTorch, cuDNN and Keras reset_after=True (the reset "
                      "gate multiplies h @ C_h + cand_recurrent_bias), for imported models. NEW: Transformer, a "
                      "decoder-only, causal, pre-LayerNorm (GPT-2-style) Transformer: num_layers blocks of width "
                      "size, num_heads heads, ffn_size, learned positions up to num_steps, GELU (tanh form); "
                      "windows carry no state (docs/transformer.md). NEW: minGRU (Feng et al. 2024), a GRU whose "
                      "gate and candidate read the input only, h = (1 - z) h_prev + z h~; DiagLinear, a diagonal "
                      "linear recurrence h = sigmoid(decay) h_prev + x B + b with the read-out y = tanh(h W_o + b_o) "
                      "(docs/design.md: model families).",
                      choices=tuple(families.FAMILIES), required="always"),
    "num_layers": Key("int", "Number of stacked recurrent layers (Transformer: blocks).", minimum=1, required="always"),
    "embedding_size": Key("int", "E, size of the input embeddings.", minimum=1,
                          **_derived("size", lambda v: v["size"])),
    "size": Key("int", "H, size of the recurrent state (Transformer: d_model, the width of the residual stream; "
                "embedding_size E may differ, with a linear input projection E -> size).", minimum=1, required="always"),
    "num_heads": Key("int", "Transformer: attention heads (size must be a multiple of it).", minimum=1,
                     required="transformer", new=True),
    "ffn_size": Key("int", "Transformer: width of each block's feed-forward layer.", minimum=1, new=True,
                    **_derived("4 * size (Transformer only)",
                               lambda v: 4 * v["size"] if _takes(v, "ffn_size") else None)),
    "max_positions": Key("int", "Transformer: length of the learned position table (windows of up to this many "
                         "tokens; an imported GPT-2 checkpoint keeps its own); at least num_steps.", minimum=1,
                         new=True, **_derived("num_steps (Transformer only)",
                                              lambda v: v["num_steps"] if _takes(v, "max_positions") else None)),
    "eval_stride": Key("int", "Transformer: perplexities are computed on num_steps-token windows that carry no "
                       "state; eval_stride S < num_steps slides them by S tokens over one stream, every token "
                       "scored once with up to num_steps - 1 tokens of context (the first window scores all of its "
                       "tokens). The default, num_steps, uses the batch_size x num_steps windows of the validation "
                       "pass, for validation and test alike.", minimum=1, new=True,
                       **_derived("num_steps (Transformer only)",
                                  lambda v: v["num_steps"] if _takes(v, "eval_stride") else None)),
    "num_steps": Key("int", "T, length of the truncated-BPTT window.", minimum=1, required="always"),
    "init_scale": Key("float", "Variables are initialised uniform in [-init_scale, init_scale] "
                      "(always seeded), except the biases of the cells.", minimum=0, min_open=True,
                      required="always"),
    "learning_rate": Key("float", "Initial learning rate.", minimum=0, min_open=True, required="train"),
    "max_grad_norm": Key("float", "Clip all gradients by their global norm.", minimum=0, min_open=True,
                         required="train"),
    "batch_size": Key("int", "B, batch size for training and validation (testing uses 1).",
                      minimum=1, required="always"),
    "forget_bias": Key("float", "Added to the LSTM forget-gate pre-activation.", required="lstm"),
    "dropout": Key("float", "KEEP probability of dropout while training (1 = no dropout).",
                   minimum=0, maximum=1, min_open=True, required="train"),
    "no_emb_dropout": Key("bool", "True: no dropout on the input embeddings (the original ignored "
                          "this key and always applied it).", default=False),
    "max_epoch": Key("int", "Epochs at the initial learning rate.", minimum=0, required="lr_decay"),
    "max_max_epoch": Key("int", "Total number of epochs (a resumed run continues up to this total).",
                         minimum=1, required="train"),
    "lr_decay": Key("float", "lr of epoch i (0-based) = learning_rate * lr_decay ** "
                    "max(i + 1 - max_epoch, 0); without it the learning rate is constant.",
                    minimum=0, min_open=True),
    "lr_schedule": Key("choice", "epochs: the original's schedule (sgd decays by lr_decay per epoch; adam and "
                       "adagrad keep learning_rate); warmup_cosine: for every optimizer, the learning rate rises "
                       "linearly over the first warmup_steps training steps (one step = one batch_size x num_steps "
                       "batch) to learning_rate, then follows a cosine down to min_learning_rate at the end of "
                       "max_max_epoch epochs (set per step, resumed exactly).",
                       default="epochs", choices=("epochs", "warmup_cosine"), new=True),
    "warmup_steps": Key("int", "Training steps (batch_size x num_steps batches) of linear warm-up (lr_schedule "
                        "warmup_cosine).", minimum=0,
                        required="warmup", new=True),
    "min_learning_rate": Key("float", "Where the cosine of lr_schedule warmup_cosine ends.", minimum=0, new=True,
                             **_derived("learning_rate / 10 (with warmup_cosine)",
                                        lambda v: v["learning_rate"] / 10 if v["lr_schedule"] == "warmup_cosine"
                                        and v["learning_rate"] is not None else None)),
    "optimizer": Key("choice", "sgd, adam or adagrad (with lr_schedule epochs: sgd's rate decays by lr_decay, "
                     "adam's and adagrad's stays learning_rate).",
                     choices=("sgd", "adam", "adagrad"), required="train"),
    "trainer": Key("choice", "trainer: fixed number of epochs; earlyStopping: stop on the "
                   "early_stop rule.", choices=("trainer", "earlyStopping"), required="train"),
    "early_stop": Key("int", "N of the earlyStopping rule.", minimum=1, required="early_stopping"),
    "distribute": Key("choice", "Data-parallel training with tf.distribute: mirrored (every GPU, else every "
                      "logical CPU device, of this machine) or multi_worker (MultiWorkerMirroredStrategy, "
                      "cluster from TF_CONFIG; only the chief writes checkpoints). batch_size must divide by "
                      "the replicas. Ignored by --notrain passes.", default="none",
                      choices=("none", "mirrored", "multi_worker"), new=True),
    "softmax": Key("choice", "full, or sampled (32 samples while training; evaluation is always full).",
                   choices=("full", "sampled"), required="always"),
    "random": Key("bool", "True: dropout masks and softmax samples are not seeded (initial weights "
                  "always are).", default=False),
    "seed": Key("int", "Seed of the initial weights and of the dropout masks and softmax samples. The "
                "default, 1, is the original's seed and that of every run before this key existed; a "
                "save_path trained with another seed is refused on resume. Not with random True.",
                default=1, minimum=0, new=True),
    "encoding": Key("str", "Text encoding of the data files.", default="utf-8"),
    "no_eos": Key("bool", "True: newlines are not replaced by `<eos>` (ignored for WikiText data).",
                  default=False),
    "other_test": Key("str", "Use this file as the test set."),
    "valid_as_test": Key("bool", "True: use the validation file as the test set.", default=False),
    "read_vocab_from_file": Key("str", "Read the word->id map (word<TAB>id lines) from this file; "
                                "unseen training words get the next ids in order of first occurrence."),
    "fixed_vocab": Key("bool", "True: use the word->id map of read_vocab_from_file exactly as it is (an "
                       "imported model's vocabulary): no word is added, data words it lacks map to "
                       "unk_token, and train.txt is read only when training.", default=False, new=True),
    "unk_token": Key("str", "The token that words outside the vocabulary map to (default `<unk>`, `<UNK>` "
                     "for CGN data).", new=True),
    "eos_token": Key("str", "The token that line ends become (default `<eos>`).", new=True),
    "save_dict": Key("str", "Write the word->id map to this file."),
    "pretrained_embeddings": Key("str", "Directory with all.npy (rows x E) and dict (word<TAB>row): "
                                 "vocabulary words found there start from their pretrained row."),
    "fixed_embeddings": Key("bool", "True: the embedding matrix is not trained.",
                            **_derived("True with pretrained_embeddings, else False",
                                       lambda v: v["pretrained_embeddings"] is not None)),
    "save_embedding": Key("str", "Write the restored model's embedding matrix (V x E, float32) to "
                          "this .npy file and stop (only with --notrain)."),
    "output_layer": Key("bool", "False: the model has no output layer (imported with sg-import --no-head): "
                        "gradient passes work, perplexity passes and training are refused.", default=True,
                        new=True),
    "valid_batches": Key("int", "Use only batches 0..N-1 of every validation pass (perplexity and state "
                         "gradients), e.g. for a quick run; default: the whole validation set.", minimum=1,
                         new=True),
    "grad_interm": Key("choice", "Compute state gradients of this state during the validation pass "
                       "(only with --notrain): cell (LSTM c; h for GRU/RNN) or hidden (h). NEW, for basic_cell "
                       "Transformer: residual (the residual stream after block grad_layer) or final (after the "
                       "final LayerNorm, what the output layer reads; top block only).",
                       choices=tuple(dict.fromkeys(name for f in families.FAMILIES.values() for name in f.interm_names))),
    "time_step": Key("time_step", "Position t (0-based, < num_steps) whose state is differentiated. "
                     "NEW: 'all' or 'a-b' (inclusive) computes several in one pass, written to "
                     "grad_dir/timestep_{t}/.", required="grad_interm"),
    "max_delay": Key("int", "Number of delays: k = 0 .. min(max_delay - 1, t).", minimum=1,
                     required="grad_interm"),
    "grad_dir": Key("str", "Directory for the gradient matrices.", required="grad_interm"),
    "grad_layer": Key("int", "0-based layer whose state is differentiated.", minimum=0, new=True,
                      **_derived("num_layers - 1 (top layer)", lambda v: v["num_layers"] - 1)),
    "grad_average": Key("bool", "True: write per-delay averages grad_dir/delay_{k}_avg.npy (and per "
                        "POS class) with their counts while computing.", default=False, new=True),
    "grad_dump": Key("bool", "False: do not write the per-window matrices and mapping.txt.",
                     default=True, new=True),
    "pos_mapping": Key("str", "Word -> POS tags file for the per-class averages.",
                       required="pos_classes", new=True),
    "pos_tokens": Key("str", "NEW: the tags of every token of the validation data, in context (sg-pos-tagger's "
                      "NAME.tags: one line per data line, one field per word and <eos> last; a field may join "
                      "several tags with '|'; a tag ending in '*W', W > 0, weighs the token W instead of 1 in the classes "
                      "that select that tag, and a class's count is then its sum of weights). The classes of "
                      "pos_token_classes select tokens by these tags, so a token belongs to the classes of its "
                      "own tags.", required="pos_token_classes",
                      new=True),
    "pos_token_classes": Key("str", "NEW: comma-separated class files (or folders of .txt files) like "
                             "pos_classes, whose tags select tokens by pos_tokens instead of words by "
                             "pos_mapping; each gives delay_{k}_avg_{class}.npy in the same pass as the "
                             "pos_classes (the names must differ). Needs grad_average True.",
                             required="pos_tokens", new=True),
    "pos_classes": Key("str", "Comma-separated POS class files (one tag per line); each gives "
                       "delay_{k}_avg_{class}.npy. A folder stands for every .txt file in it (name "
                       "order). Needs grad_average True.", required="pos_mapping",
                       new=True),
    "grad_dtype": Key("choice", "Float type of the gradient engine (float64 for checks).",
                      default="float32", choices=("float32", "float64"), new=True),
    "grad_blocks": Key("int", "N: also keep the sums and counts of N contiguous blocks of the validation "
                       "batches (grad_dir/blocks/block_{b}.npz), from which sg-intervals computes standard "
                       "errors and controls. Needs grad_average True.", minimum=2, new=True),
    "grad_chunk": Key("int", "Batch rows per gradient-engine call (memory vs speed).", default=1,
                      minimum=1, new=True),
    "grad_norm_file": Key("str", "NEW: the gradient normalisation D (an E x E .npy, e.g. the "
                          "EMB_D_norm_grad.npy of sg-normalize-equal-variance): the blocks then also "
                          "hold, per class and delay, the sums over occurrences of the per-occurrence "
                          "nuclear norm ||G.D||_* and, for a model with an output layer in forward "
                          "mode, of the output-level Jacobian J.D = d log p(w_{t+1}) / d x_{t-k} . D "
                          "(its norm, squared norm and vector), from which sg-intervals gives those "
                          "measures with intervals. Needs grad_blocks.", new=True),
}

# Condition name -> (words for the docs and errors, predicate(values, train)).
_REQUIRED_WHEN = {
    "always": ("always", lambda v, train: True),
    "train": ("when training", lambda v, train: train),
    "lstm": ("when basic_cell is LSTM", lambda v, train: _takes(v, "forget_bias", "needs")),
    "lr_decay": ("when training with lr_decay", lambda v, train: train and v["lr_decay"] is not None),
    "transformer": ("when basic_cell is Transformer", lambda v, train: _takes(v, "num_heads", "needs")),
    "warmup": ("when training with lr_schedule warmup_cosine",
               lambda v, train: train and v["lr_schedule"] == "warmup_cosine"),
    "early_stopping": ("when training with trainer earlyStopping",
                       lambda v, train: train and v["trainer"] == "earlyStopping"),
    "grad_interm": ("with grad_interm", lambda v, train: v["grad_interm"] is not None),
    "pos_classes": ("with pos_classes", lambda v, train: v["pos_classes"] is not None),
    "pos_token_classes": ("with pos_token_classes", lambda v, train: v["pos_token_classes"] is not None),
    "pos_tokens": ("with pos_tokens", lambda v, train: v["pos_tokens"] is not None),
    "pos_mapping": ("with pos_mapping", lambda v, train: v["pos_mapping"] is not None),
}


def _default_warn(message):
    print(f"Warning: {message}", file=sys.stderr)


def _where(path, line):
    return f"{path} line {line}" if line is not None else str(path)


def convert_value(raw):
    """True/False -> bool, then int, then float, else the string itself (the original's order)."""
    if raw in ("True", "False"):
        return raw == "True"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check(name, key, raw):
    """Return the typed value of raw for key, or None when raw is not allowed."""
    if key.kind == "str":
        return raw
    if key.kind == "choice":
        return raw if raw in key.choices else None
    value = convert_value(raw)
    if key.kind == "bool":
        return value if isinstance(value, bool) else None
    if key.kind == "vocab":
        return value if value is False or (_is_int(value) and value >= 1) else None
    if key.kind == "time_step":
        if _is_int(value):
            return value if value >= 0 else None
        match = _RANGE.match(raw)
        if raw == "all" or (match and int(match.group(1)) <= int(match.group(2))):
            return raw
        return None
    if key.kind == "int":
        if not _is_int(value):
            return None
    elif _is_int(value) or (isinstance(value, float) and math.isfinite(value)):
        value = float(value)
    else:
        return None
    if key.minimum is not None and (value < key.minimum or (key.min_open and value == key.minimum)):
        return None
    if key.maximum is not None and value > key.maximum:
        return None
    return value


def read_config_lines(path):
    """(line number, key, raw value) per meaningful line; the value is the LAST token."""
    text = read_text(path, "config file")
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = _COMMENT.sub("", line).split()
        if len(tokens) >= 2:
            entries.append((number, tokens[0], tokens[-1]))
    return entries


def _format_value(value):
    if isinstance(value, float):
        return repr(value)
    return str(value)


class Config:
    """A validated configuration: every key of KEYS is an attribute (None when absent, no default)."""

    def __init__(self, path, values, lines):
        self.path = str(path)
        self._lines = dict(lines)   # key -> line number it came from (for later messages)
        for name in KEYS:
            setattr(self, name, values.get(name))

    def items(self):
        """(key, value) of every key that has a value, sorted by key."""
        return sorted((name, getattr(self, name)) for name in KEYS if getattr(self, name) is not None)

    def save(self, path):
        """Write the resolved config as a `key value` file that load_config reads back identically."""
        lines = [f"# resolved configuration of {self.path}"]
        for name, value in self.items():
            if name == "seed" and self.random:
                continue         # random True takes no seed (the initial weights keep the default)
            token = _format_value(value)
            if not token or any(ch.isspace() for ch in token) or token.startswith("#"):
                raise UserError(f"cannot save config: {name} value {token!r} is empty, contains "
                                "whitespace or starts with '#'")
            lines.append(f"{name}\t{token}")
        write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))

    def time_steps(self):
        """time_step expanded: t -> [t]; 'all' -> 0..num_steps-1; 'a-b' -> a..b; absent -> []."""
        step = self.time_step
        if step is None:
            return []
        if _is_int(step):
            return [step]
        if step == "all":
            return list(range(self.num_steps))
        first, last = (int(part) for part in step.split("-"))
        return list(range(first, last + 1))

    @property
    def multi_step(self):
        """True when time_step is 'all' or a range: outputs go to grad_dir/timestep_{t}/."""
        return self.time_step is not None and not _is_int(self.time_step)

    def pos_class_files(self, key="pos_classes"):
        """The class files of key (pos_classes or pos_token_classes) split on ','; a folder stands for its
        *.txt files in name order ([] when absent)."""
        files, value = [], getattr(self, key)
        for part in [] if value is None else value.split(","):
            if not os.path.isdir(part):
                files.append(part)
                continue
            found = sorted(name for name in os.listdir(part) if name.endswith(".txt"))
            if not found:
                raise UserError(f"{self.line_of(key)}: {key} folder {part} holds no .txt class files")
            files += [os.path.join(part, name) for name in found]
        return files

    @property
    def family(self):
        """The core.families.Family of basic_cell."""
        return families.family(self.basic_cell)

    def given(self, name):
        """True when the file (or dict) set key `name`, False when it has its default."""
        return name in self._lines

    def line_of(self, name):
        """'FILE line N' (or 'FILE') for messages about a key found invalid later."""
        return _where(self.path, self._lines.get(name))

    def __repr__(self):
        return f"Config({self.path!r}, {dict(self.items())!r})"


def _build(entries, path, train, valid, warn):
    """Typed, defaulted and cross-checked Config from (line, key, raw value) entries."""
    warn = warn or _default_warn
    values = dict.fromkeys(KEYS)
    lines, unknown = {}, []
    for line, name, raw in entries:
        key = KEYS.get(name)
        if key is None:
            closest = difflib.get_close_matches(name, KEYS, n=1, cutoff=0)[0]
            warn(f"{_where(path, line)}: unknown key '{name}' ignored (closest known key: '{closest}')")
            unknown.append((line, name))
            continue
        value = _check(name, key, raw)
        if value is None:
            raise UserError(f"{_where(path, line)}: {name} must be {key.expect()}, got '{raw}'")
        if name in lines:
            warn(f"{_where(path, line)}: duplicate key '{name}' (also on line {lines[name]}); "
                 "the later value wins")
        values[name], lines[name] = value, line

    missing = [f"{name} ({_REQUIRED_WHEN[key.required][0]})" for name, key in KEYS.items()
               if key.required and values[name] is None and _REQUIRED_WHEN[key.required][1](values, train)]
    if missing:
        # a required key that is missing because it is misspelt: point at the line that holds it
        hints = []
        for line, name in unknown:
            near = difflib.get_close_matches(name, [m.split(" ")[0] for m in missing], n=1)
            if near:
                hints.append(f"{_where(path, line)} has '{name}': did you mean '{near[0]}'?")
        raise UserError(f"{path}: missing required key(s): {', '.join(missing)}"
                        + "".join(f"; {h}" for h in hints))

    for name, key in KEYS.items():
        if values[name] is None and key.default is not None:
            values[name] = key.default(values) if callable(key.default) else key.default
    config = Config(path, values, lines)
    _cross_check(config, train, valid)
    return config


def _cross_check(c, train, valid):
    """Checks that involve several keys or the --train/--valid mode."""
    def fail(name, message):
        raise UserError(f"{c.line_of(name)}: {message}")

    if train and not valid:
        raise UserError(f"{c.path}: training and validation are always combined "
                        "(use --valid with --train, or --notrain)")
    try:
        codecs.lookup(c.encoding)
    except LookupError:
        fail("encoding", f"encoding must be a known text encoding, got '{c.encoding}'")
    if c.random and c.given("seed"):
        fail("seed", "seed and random True exclude each other (random True leaves dropout masks and "
             "softmax samples unseeded)")
    if c.other_test is not None and c.valid_as_test:
        fail("valid_as_test", "other_test and valid_as_test True exclude each other")
    if c.grad_layer >= c.num_layers:
        fail("grad_layer", f"grad_layer must be < num_layers ({c.num_layers}), got {c.grad_layer}")
    if c.time_step is not None:
        too_big = [t for t in c.time_steps() if t >= c.num_steps]
        if too_big:
            fail("time_step", f"time_step must be < num_steps ({c.num_steps}), got '{c.time_step}'")
    _check_model_keys(c, fail)
    if c.fixed_vocab and c.read_vocab_from_file is None:
        fail("fixed_vocab", "fixed_vocab True needs read_vocab_from_file (the vocabulary to use as it is)")
    if not c.output_layer and train:
        fail("output_layer", "output_layer False: a model without an output layer cannot be trained "
             "(use --notrain with grad_interm)")
    for key in ("pos_classes", "pos_token_classes"):
        value = getattr(c, key)
        if value is None:
            continue
        if any(not part for part in value.split(",")):
            fail(key, f"{key} has an empty file name, got '{value}'")
        if not c.grad_average:
            fail(key, f"{key} needs grad_average True (the classes only select what is averaged)")
    if c.save_embedding is not None:
        if train:
            fail("save_embedding", "save_embedding only works with --notrain (it saves the "
                 "restored model's embeddings and stops)")
        if c.grad_interm is not None:
            fail("grad_interm", "grad_interm and save_embedding exclude each other "
                 "(save_embedding stops before any pass)")
    if c.grad_interm is not None:
        if train:
            fail("grad_interm", "grad_interm only works with --notrain (gradients are computed "
                 "from a trained model during the validation pass)")
        if not valid:
            fail("grad_interm", "grad_interm needs --valid (gradients are computed during the "
                 "validation pass)")
        if c.pos_tokens is not None and "WikiText" in c.data_path:
            fail("pos_tokens", "pos_tokens needs one data line per sentence; WikiText data also splits lines at ' . '")
        if c.grad_blocks is not None and not c.grad_average:
            fail("grad_blocks", "grad_blocks needs grad_average True (blocks keep sums of what is averaged)")
        if c.grad_norm_file is not None and c.grad_blocks is None:
            fail("grad_norm_file", "grad_norm_file needs grad_blocks N (the occurrence measures are kept per block)")
        if c.grad_norm_file is not None and c.grad_dump:
            fail("grad_norm_file", "grad_norm_file needs grad_dump False (the occurrence measures ride on the "
                 "averaged pass; a dump holds every G, from which they follow directly)")
        if not c.grad_dump and not c.grad_average:
            fail("grad_dump", "grad_dump False and grad_average False: nothing would be written")


def _check_model_keys(c, fail):
    """The keys that depend on the model family (core/families.py) and on lr_schedule."""
    family = c.family
    for name, owners in families.OWNED_KEYS.items():
        if name not in family.keys and c.given(name):
            fail(name, f"{name} is a key of basic_cell {' or '.join(owners)}; this config's basic_cell is "
                 f"{c.basic_cell}")
    if c.grad_interm is not None and c.grad_interm not in family.interm_names:
        owners = " or ".join(f.name for f in families.FAMILIES.values() if c.grad_interm in f.interm_names)
        fail("grad_interm", f"grad_interm {c.grad_interm} is a state of basic_cell {owners}; a {c.basic_cell} has "
             f"{' and '.join(family.interm_names)}: grad_interm must be {' or '.join(family.interm_names)} "
             "(docs/transformer.md)")
    family.check_config(c, fail)
    if c.lr_schedule == "warmup_cosine":
        if c.lr_decay is not None:
            fail("lr_decay", "lr_decay and lr_schedule warmup_cosine exclude each other (the cosine sets the decay)")
    else:
        for name in ("warmup_steps", "min_learning_rate"):
            if c.given(name):
                fail(name, f"{name} belongs to lr_schedule warmup_cosine (this config's lr_schedule is epochs)")


def load_config(path, *, train=True, valid=True, test=True, warn=None):
    """Read, type-check and cross-check a config file for the given --train/--valid/--test mode.

    warn: callable(str) for unknown and duplicate keys (default: "Warning: ..." on stderr).
    Raises UserError naming the key, the value, the file and the line.
    """
    del test  # no key depends on --test; accepted so callers can pass the whole mode
    return _build(read_config_lines(path), path, train, valid, warn)


def config_from_dict(values, *, path="<dict>", train=True, valid=True, warn=None):
    """A Config from {key: value} (values as in a file, or Python values), checked like a file."""
    entries = [(None, name, value if isinstance(value, str) else _format_value(value))
               for name, value in values.items()]
    return _build(entries, path, train, valid, warn)


def derive(config, *, path=None, train=False, valid=True, warn=None, **changes):
    """A new Config: config's given keys with `changes` applied (None removes a key), checked like a file.

    Keys config had by default keep deriving their default from the new values. Messages name
    path (default: config's path with the changes).
    """
    unknown = sorted(name for name in changes if name not in KEYS)
    if unknown:
        raise UserError(f"derive: unknown key(s) {', '.join(unknown)} (see docs/reference/config.md)")
    path = path or f"{config.path} (with {', '.join(f'{k} {v}' for k, v in changes.items())})"
    entries = [(None, name, _format_value(getattr(config, name)))
               for name in KEYS if config.given(name) and name not in changes]
    entries += [(None, name, value if isinstance(value, str) else _format_value(value))
                for name, value in changes.items() if value is not None]
    return _build(entries, path, train, valid, warn)


def markdown_table():
    """The key table of docs/reference/config.md (generated from KEYS when the docs are built)."""
    rows = ["| key | type | default | required | meaning |", "|---|---|---|---|---|"]
    for name, key in KEYS.items():
        default = key.default_text or ("" if key.default is None else _format_value(key.default))
        required = _REQUIRED_WHEN[key.required][0] if key.required else ""
        label = f"{name} (NEW)" if key.new else name
        rows.append(f"| {label} | {key.expect()} | {default} | {required} | {key.help} |")
    return "\n".join(rows) + "\n"
