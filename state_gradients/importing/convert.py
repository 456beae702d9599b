"""Convert PyTorch, Keras and TF1 RNN language models into weights.npz + dict, with self-checks and a report."""
# Shape letters: V embedding rows (vocabulary), E embedding size, I layer input size, H state
# size, B rows, T time.
#
#   SOURCE file --model_files--> named arrays --find_*--> SourceModel (the source's own arrays,
#   layer by layer) --convert--> weights.npz arrays (this project's layout, cells.py)
#
# Every import is checked twice before anything is written (check_conversion): this project's
# forward pass on the converted arrays against source_equations (the source framework's own
# equations on the unconverted arrays), in float64, from a zero and a random state; optionally
# against a reference file of the source framework's outputs (check_reference). Each layer's
# conversion, source equations and basic_cell come from layouts.LAYOUTS, by layout and kind.
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from state_gradients.core import fileio
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.importing import layouts, protocol

FRAMEWORKS = ("torch", "keras", "tf1", "gpt2")   # gpt2: a Transformer checkpoint folder (importing/gpt2.py)
SELF_CHECK_TOL = 1e-10        # float64 source equations vs this project's forward pass
REFERENCE_TOL = 1e-4          # relative: the source framework's own float32 outputs


class Refused(UserError):
    """A model this project's cells cannot compute (bidirectional, projections, ...): the import exits with 1."""


@dataclass
class SourceLayer:
    """One recurrent layer as the source stores it: the source's kind and layout, arrays by role, their names."""
    kind: str                 # LSTM | GRU | RNN, in the source's own sense (torch GRU = reset after)
    layout: str               # torch | keras | cudnn | tf1
    arrays: dict              # role -> array, unconverted
    names: dict               # role -> name in the source file
    options: dict = field(default_factory=dict)   # reset_after (keras), nonlinearity (torch)

    @property
    def size(self):
        if self.layout == "torch":
            return self.arrays["weight_hh"].shape[1]
        if self.layout == "tf1":        # a GRUCell's candidate kernel is one block, the other cells' kernel is fused
            if "candidate/kernel" in self.arrays:
                return self.arrays["candidate/kernel"].shape[1]
            return self.arrays["kernel"].shape[1] // layouts.KINDS[self.kind].gates
        return self.arrays["recurrent_kernel"].shape[0]

    @property
    def input_size(self):
        if self.layout == "torch":
            return self.arrays["weight_ih"].shape[1]
        if self.layout == "tf1":
            k = self.arrays.get("kernel", self.arrays.get("candidate/kernel"))
            return k.shape[0] - self.size
        return self.arrays["kernel"].shape[0]          # Keras and cuDNN: kernel [I, nH]

    @property
    def cell_type(self):
        """This project's basic_cell for the layer."""
        return layouts.layout(self).cell_type(self.options)


@dataclass
class SourceModel:
    """What an import found in the source file, before conversion."""
    framework: str
    source: str
    embedding: np.ndarray
    embedding_name: str
    layers: list
    head: dict | None                 # {"weight", "bias", "names", "tied"}: torch [V, H], others [H, V]
    forget_bias: float = 0.0
    notes: list = field(default_factory=list)     # assumptions and decisions, for the report
    ignored: list = field(default_factory=list)   # source arrays not used

    @property
    def cell_type(self):
        return self.layers[0].cell_type


# ------------------------------------------------------------------------------------ structure checks

def check_layers(where, layers):
    """Refuse stacks this project's cells cannot compute: mixed cell types, per-layer sizes."""
    if not layers:
        raise UserError(f"{where}: no recurrent layer found")
    kinds = {layer.cell_type for layer in layers}
    if len(kinds) > 1:
        raise Refused(f"{where}: the layers mix cell types ({', '.join(sorted(kinds))}); one cell type per model")
    sizes = [layer.size for layer in layers]
    if len(set(sizes)) > 1:
        raise Refused(f"{where}: per-layer sizes {sizes} are not supported (every layer needs the same state size)")


def check_structure(model):
    """Refuse what this project's cells cannot compute: the checks of check_layers, then mismatched shapes."""
    where = model.source
    check_layers(where, model.layers)
    sizes = [layer.size for layer in model.layers]
    emb_rows, emb_size = model.embedding.shape
    expected_input = emb_size
    for number, layer in enumerate(model.layers):
        if layer.input_size != expected_input:
            raise UserError(f"{where}: layer {number} reads {layer.input_size} inputs but gets {expected_input} "
                            f"({'the embedding size' if number == 0 else 'the state size of the layer below'})")
        expected_input = layer.size
    if model.head is not None:
        w = model.head["weight"]
        rows, cols = (w.shape[1], w.shape[0]) if model.framework == "torch" else w.shape
        if (rows, cols) != (sizes[0], emb_rows) or model.head["bias"].shape != (emb_rows,):
            raise UserError(f"{where}: the output layer {model.head['names']} maps {rows} -> {cols} (bias "
                            f"{model.head['bias'].shape}); an LM head here maps the top state ({sizes[0]}) to the "
                            f"{emb_rows} embedding rows: pass --no-head to import the embedding and the recurrent stack")


# ------------------------------------------------------------------------------------ conversion

def convert(model):
    """The weights.npz arrays (float64 weights: sums of split biases stay exact) of a SourceModel."""
    arrays = {"cell_type": np.array(model.cell_type), "forget_bias": np.array(model.forget_bias, dtype=np.float32),
              "num_layers": np.array(len(model.layers), dtype=np.int64),
              "embedding": np.asarray(model.embedding, dtype=np.float64)}
    for number, layer in enumerate(model.layers):
        arrays.update({f"layer{number}/{k}": np.asarray(v, dtype=np.float64)
                       for k, v in layouts.layout(layer).convert(layer.arrays, layer.size, layer.options).items()})
    if model.head is not None:
        w = np.asarray(model.head["weight"], dtype=np.float64)
        arrays["softmax_w"] = w.T if model.framework == "torch" else w
        arrays["softmax_b"] = np.asarray(model.head["bias"], dtype=np.float64)
    return arrays


def mapping_table(model):
    """[{target, source, transform}] for the report: which source arrays became which weights.npz arrays."""
    rows = [{"target": "embedding", "source": [model.embedding_name], "transform": "copied"}]
    for number, layer in enumerate(model.layers):
        how = {"torch": "transposed; gate blocks reordered; bias_ih + bias_hh summed",
               "keras": "input and recurrent kernels stacked; gate blocks reordered",
               "cudnn": "each gate's input block read as cuDNN's [H, I] matrix and transposed, recurrent "
                        "blocks transposed; the two bias halves summed",
               "tf1": "copied (same layout)"}[layer.layout]
        rows.append({"target": f"layer{number}/*", "source": sorted(set(layer.names.values())),
                     "transform": f"{layer.kind} ({layer.layout}) -> {layer.cell_type}: {how}"})
    if model.head is not None:
        rows.append({"target": "softmax_w, softmax_b", "source": model.head["names"],
                     "transform": ("transposed" if model.framework == "torch" else "copied")
                     + (" (tied to the embedding)" if model.head.get("tied") else "")})
    return rows


# ------------------------------------------------------------------------------------ vocabulary

def _placeholder(token):
    """A name without whitespace for the dict file: each whitespace character becomes <U+XXXX>; '' -> <empty>."""
    if token == "":
        return "<empty>"
    return "".join(f"<U+{ord(ch):04X}>" if ch.isspace() else ch for ch in token)


def read_vocab(path, rows):
    """(names by id [rows], notes): VOCAB as one token per line, `token<TAB>id`, or a JSON object token -> id.

    Tokens with whitespace get placeholder names (see _placeholder), ids no token uses get
    `<unused_ID>`. UserError for more tokens than rows, ids out of range, duplicates, collisions.
    """
    text = fileio.read_text(path, "vocabulary file", "utf-8", newline="")
    notes = []
    if path.endswith(".json"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                    for v in mapping.values()):
            raise UserError(f"{path}: the JSON vocabulary must be an object token -> integer id")
        entries = [(token, i, f"{path} entry {token!r}") for token, i in mapping.items()]
        kind = "JSON object token -> id"
    else:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line.removesuffix("\r") for line in lines]
        tabbed = lines and all("\t" in line and re.fullmatch(r"-?\d+", line.rsplit("\t", 1)[1].strip())
                               for line in lines)
        if tabbed:
            entries = [(line.rsplit("\t", 1)[0], int(line.rsplit("\t", 1)[1]), f"{path}:{n}")
                       for n, line in enumerate(lines, 1)]
            kind = "token<TAB>id lines"
        else:
            entries = [(line, n - 1, f"{path}:{n}") for n, line in enumerate(lines, 1)]
            kind = "one token per line (id = line number - 1)"
    if len(entries) > rows:
        raise Refused(f"{path}: the vocabulary has {len(entries)} tokens but the embedding has only {rows} rows")
    names = [None] * rows
    seen = {}
    for token, i, where in entries:
        if not 0 <= i < rows:
            raise UserError(f"{where}: id {i} of {token!r} is outside the embedding's rows 0..{rows - 1}")
        if names[i] is not None:
            raise UserError(f"{where}: id {i} is used twice")
        name = _placeholder(token)
        if name != token:
            notes.append(f"token {token!r} (id {i}) is written {name} in dict")
        if name in seen:
            raise UserError(f"{where}: token {token!r} is named {name}, which id {seen[name]} already uses")
        seen[name] = i
        names[i] = name
    unused = [i for i, name in enumerate(names) if name is None]
    for i in unused:
        name = f"<unused_{i}>"
        if name in seen:
            raise UserError(f"{path}: the placeholder {name} for unused row {i} is already a token")
        names[i] = name
    if unused:
        notes.append(f"{len(unused)} embedding row(s) no token uses (e.g. padding) are named <unused_ID>: "
                     f"ids {unused[:10]}{' ...' if len(unused) > 10 else ''}")
    return names, {"format": kind, "tokens": len(entries), "rows": rows, "notes": notes}


def resolve_token(token, names, flag):
    """The dict name of --eos-token / --unk-token (given as in VOCAB, or as its dict name)."""
    if token is None:
        return None
    for candidate in (token, _placeholder(token)):
        if candidate in names:
            return candidate
    raise UserError(f"{flag} {token!r} is not in the vocabulary")


# ------------------------------------------------------------------------------------ checks

def _random_state(model, rows, rng, zero):
    n = layouts.KINDS[model.layers[0].kind].states
    size = model.layers[0].size
    return [tuple(np.zeros((rows, size)) if zero else rng.normal(scale=0.5, size=(rows, size)) for _ in range(n))
            for _ in model.layers]


def _converted_model(weights_path):
    """This project's LanguageModel (float64) of the converted file."""
    import tensorflow as tf

    return SavedModel(weights_path).load(tf.float64)


def _project_forward(lm, ids, state=None):
    """This project's forward pass from `state` (default zeros): (states per layer, per component; logits or None)."""
    import tensorflow as tf

    if state is None:
        tf_state = lm.zero_state(ids.shape[0])
    else:
        tf_state = tuple(tuple(tf.constant(s, tf.float64) for s in layer) for layer in state)
    states = lm.run_layers(lm.embed(tf.constant(ids)), tf_state)
    states = [tuple(s.numpy() for s in layer) for layer in states]
    logits = lm.logits(tf.constant(states[-1][-1])).numpy() if lm.has_output_layer else None
    return states, logits


def _max_rel(a, b):
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def check_conversion(model, weights_path, seed=0, rows=3, steps=7):
    """Self-check: the source's equations on its own arrays vs this project's forward pass on the converted file.

    Random ids, from a zero state and from a random state; every state component of every layer
    and the logits. Returns the check records (each with `error` and `passed`).
    """
    from state_gradients.importing import source_equations

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, model.embedding.shape[0], size=(rows, steps)).astype(np.int32)
    lm = _converted_model(weights_path)
    records = []
    for start in ("zero", "random"):
        state = _random_state(model, rows, rng, zero=start == "zero")
        ref_states, ref_logits = source_equations.run(model, ids, state,
                                                           [layouts.layout(layer).step for layer in model.layers])
        our_states, our_logits = _project_forward(lm, ids, state)
        errors = {"states": max(_max_rel(o, r) for ol, rl in zip(our_states, ref_states) for o, r in zip(ol, rl))}
        if ref_logits is not None:
            errors["logits"] = _max_rel(our_logits, ref_logits)
        for what, error in errors.items():
            records.append({"check": f"self-check {what}, {start} state", "rows": rows, "steps": steps,
                            "error": error, "tolerance": SELF_CHECK_TOL, "passed": bool(error <= SELF_CHECK_TOL)})
    return records


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def check_reference(weights_path, ref_path):
    """--reference: ids and the source framework's own outputs (from a zero state) vs this project's forward pass.

    REF.npz: `ids` [B, T] (or [T]); any of `logits` [B, T, V] (compared as log-softmax, so a
    softmax layer's pre-activations or log-probabilities both work), `hidden` [B, T, H] (the top
    layer's output h), `hidden_l{l}` (layer l's h), `cell_l{l}` (an LSTM layer's c).
    """
    try:
        with np.load(ref_path, allow_pickle=False) as f:
            ref = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise UserError(f"--reference {ref_path}: not a readable .npz file ({err})") from None
    if "ids" not in ref:
        raise UserError(f"--reference {ref_path} has no array 'ids'")
    ids = np.asarray(ref["ids"])
    if ids.ndim == 1:
        ids = ids[None]
    ids = ids.astype(np.int32)
    squeeze = np.asarray(ref["ids"]).ndim == 1
    targets = {}
    for key, value in ref.items():
        if key == "ids":
            continue
        value = np.asarray(value, dtype=np.float64)
        targets[key] = value[None] if squeeze else value
    lm = _converted_model(weights_path)
    known = {"logits", "hidden"} | {f"{p}_l{l}" for p in ("hidden", "cell") for l in range(lm.num_layers)}
    unknown = sorted(set(targets) - known)
    if unknown or not targets:
        raise UserError(f"--reference {ref_path}: arrays {unknown or '(none besides ids)'}; expected any of "
                        f"{', '.join(sorted(known))}")
    states, logits = _project_forward(lm, ids)
    records = []
    for key, expected in targets.items():
        if key == "logits":
            if logits is None:
                raise UserError(f"--reference {ref_path} has logits but the import has no output layer (--no-head)")
            ours, theirs = _log_softmax(logits), _log_softmax(expected)
        elif key == "hidden":
            ours, theirs = states[-1][-1], expected
        else:
            kind, layer = key.split("_l")
            if kind == "cell" and len(lm.cell.state_names) == 1:
                raise UserError(f"--reference {ref_path}: {key} needs an LSTM")
            ours, theirs = states[int(layer)][0 if kind == "cell" else -1], expected
        if ours.shape != theirs.shape:
            raise UserError(f"--reference {ref_path}: {key} has shape {theirs.shape}, the import gives {ours.shape}")
        error = float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))
        records.append({"check": f"reference {key}", "file": os.path.abspath(ref_path), "error": error,
                        "tolerance": REFERENCE_TOL, "passed": bool(error <= REFERENCE_TOL)})
    return records


# ------------------------------------------------------------------------------------ writing

def import_config_text(out_dir, model, vocab_path, eos, unk, source_desc):
    """import.config: every model key that main.py --notrain needs (append data_path, log_dir, ... to use it)."""
    keys = [("save_path", out_dir, None), ("basic_cell", model.cell_type, None), ("num_layers", len(model.layers), None),
            ("embedding_size", model.embedding.shape[1], None), ("size", model.layers[0].size, None),
            ("forget_bias", repr(model.forget_bias), None),
            ("init_scale", "0.05", "no effect on a restored model; required by every config"),
            ("softmax", "full", None), ("vocab", "False", None), ("read_vocab_from_file", vocab_path, None),
            ("fixed_vocab", "True", None)]
    notes = ["append data_path, log_dir, num_steps, batch_size (and grad_interm, time_step, max_delay,",
             "grad_dir, grad_dtype for state gradients); a key given again below overrides this line"]
    tail = [("output_layer", "False", None)] if model.head is None else []
    return protocol.import_config_text(source_desc, notes, keys, eos, unk, tail)


def write_import(out_dir, model, names, options, source_desc):
    """Convert, check and write out_dir (importing/protocol.py); returns (report dict, passed)."""
    head = {"source": source_desc, "framework": model.framework}
    body = {"model": {"basic_cell": model.cell_type, "num_layers": len(model.layers),
                      "embedding_size": int(model.embedding.shape[1]), "size": int(model.layers[0].size),
                      "vocabulary_rows": int(model.embedding.shape[0]), "forget_bias": model.forget_bias,
                      "output_layer": model.head is not None},
            "mapped": mapping_table(model), "ignored": model.ignored, "assumed": model.notes,
            "vocabulary": options.get("vocab_report")}
    return protocol.publish(out_dir, convert(model), names, self_check=lambda path: check_conversion(model, path),
                            reference_check=check_reference, reference=options.get("reference"), head=head, body=body,
                            config=lambda vocab_path: import_config_text(os.path.abspath(out_dir), model, vocab_path,
                                                                         options.get("eos"), options.get("unk"),
                                                                         source_desc))

