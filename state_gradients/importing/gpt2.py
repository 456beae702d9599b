"""Import a GPT-2-layout checkpoint folder (config.json + model.safetensors, read without torch) as a Transformer."""
# Shape letters: V vocabulary, D model size (n_embd), F feed-forward size (n_inner, default 4 D),
# P positions (n_positions), B rows, T time.
#
# The GPT-2 layout of Hugging Face transformers (GPT2Model / GPT2LMHeadModel state dicts, with or
# without the `transformer.` prefix): Conv1D weights are stored [in, out], so they are this
# project's kernels as they are:
#
#   wte [V, D] -> embedding (E = D: no input projection)   wpe [P, D] -> positions
#   h.{l}.ln_1 -> layer{l}/ln1_gain, ln1_bias             h.{l}.attn.c_attn [D, 3D] -> qkv_kernel, qkv_bias
#   h.{l}.attn.c_proj -> proj_kernel, proj_bias            h.{l}.ln_2 -> ln2_gain, ln2_bias
#   h.{l}.mlp.c_fc [D, F] -> fc_kernel, fc_bias            h.{l}.mlp.c_proj [F, D] -> out_kernel, out_bias
#   ln_f -> final_gain, final_bias                        lm_head [V, D] (absent: tied to wte) -> softmax_w = lm_head^T,
#                                                          softmax_b = 0 (GPT-2's head has no bias)
#
# The import is checked before anything is written: GPT-2's equations written here in numpy on
# the unconverted arrays (gpt2_forward) against this project's forward pass on the converted
# file, in float64 (every block's output, the final LayerNorm's, the logits), and optionally
# against --reference outputs of transformers itself.
import json
import os

import numpy as np

from state_gradients.core import fileio
from state_gradients.core.errors import UserError
from state_gradients.files.saved_model import SavedModel
from state_gradients.importing import convert, protocol
from state_gradients.importing.convert import Refused
from state_gradients.models import transformer

CONFIG, WEIGHTS = "config.json", "model.safetensors"
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")   # the tanh form of this project's blocks
BLOCK_MAP = {"ln_1.weight": "ln1_gain", "ln_1.bias": "ln1_bias", "attn.c_attn.weight": "qkv_kernel",
             "attn.c_attn.bias": "qkv_bias", "attn.c_proj.weight": "proj_kernel", "attn.c_proj.bias": "proj_bias",
             "ln_2.weight": "ln2_gain", "ln_2.bias": "ln2_bias", "mlp.c_fc.weight": "fc_kernel",
             "mlp.c_fc.bias": "fc_bias", "mlp.c_proj.weight": "out_kernel", "mlp.c_proj.bias": "out_bias"}
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")   # the causal-mask buffers of older checkpoints


def read_checkpoint(directory):
    """(config dict, {name without 'transformer.': float64 array}) of a GPT-2 checkpoint folder."""
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: not a folder (a GPT-2 checkpoint is a folder with {CONFIG} and {WEIGHTS})")
    for name in (CONFIG, WEIGHTS):
        if not os.path.isfile(os.path.join(directory, name)):
            raise UserError(f"{directory} has no {name} (a GPT-2 checkpoint folder has {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(fileio.read_text(os.path.join(directory, CONFIG), "GPT-2 config"))
    except json.JSONDecodeError as err:
        raise UserError(f"{os.path.join(directory, CONFIG)}: not valid JSON ({err})") from None
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = os.path.join(directory, WEIGHTS)
    try:
        raw = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable safetensors file ({err})") from None
    arrays = {}
    for key, value in raw.items():
        name = key.removeprefix("transformer.")
        if not name.endswith(IGNORED_SUFFIXES):
            arrays[name] = np.asarray(value, np.float64)
    return config, arrays


def check_config(config, where):
    """(layers, heads, D, F, P, tied head) from config.json, or Refused for what this project's blocks do not compute."""
    if config.get("model_type", "gpt2") != "gpt2":
        raise Refused(f"{where}: model_type {config.get('model_type')!r}; only the GPT-2 layout (gpt2) is imported")
    if config.get("activation_function", "gelu_new") not in TANH_GELUS:
        raise Refused(f"{where}: activation_function {config['activation_function']!r}; this project's blocks use "
                      f"GELU in its tanh form ({', '.join(TANH_GELUS)})")
    eps = float(config.get("layer_norm_epsilon", 1e-5))
    if eps != transformer.LAYER_NORM_EPSILON:
        raise Refused(f"{where}: layer_norm_epsilon {eps:g}; this project's LayerNorm uses "
                      f"{transformer.LAYER_NORM_EPSILON:g}")
    for key, wanted in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                        ("add_cross_attention", False)):
        if bool(config.get(key, wanted)) != wanted:
            raise Refused(f"{where}: {key} {config[key]!r} is not computed by this project's blocks")
    try:
        layers, heads, size = int(config["n_layer"]), int(config["n_head"]), int(config["n_embd"])
        positions = int(config.get("n_positions", config.get("n_ctx")))
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{where}: n_layer, n_head, n_embd and n_positions must be integers ({err})") from None
    ffn = int(config.get("n_inner") or 4 * size)
    return layers, heads, size, ffn, positions, bool(config.get("tie_word_embeddings", True))


def convert_arrays(config, arrays, where):
    """(this project's weights.npz arrays, the name map, the ignored source arrays)."""
    layers, heads, size, ffn, positions, tied = check_config(config, where)
    out = {"cell_type": np.array(transformer.CELL_TYPE), "forget_bias": np.array(0.0),
           "num_layers": np.array(layers, np.int64), "num_heads": np.array(heads, np.int64)}
    mapped, used = [], set()

    def take(source, target, shape):
        if source not in arrays:
            raise UserError(f"{where}: {WEIGHTS} has no {source} (GPT-2 layout, with or without 'transformer.')")
        if arrays[source].shape != shape:
            raise UserError(f"{where}: {source} has shape {arrays[source].shape}, config.json implies {shape}")
        out[target] = arrays[source]
        used.add(source)
        mapped.append({"source": source, "target": target, "shape": list(shape)})

    vocab = arrays["wte.weight"].shape[0] if "wte.weight" in arrays else 0
    take("wte.weight", "embedding", (vocab, size))
    take("wpe.weight", "positions", (positions, size))
    shapes = {"qkv_kernel": (size, 3 * size), "qkv_bias": (3 * size,), "proj_kernel": (size, size),
              "fc_kernel": (size, ffn), "fc_bias": (ffn,), "out_kernel": (ffn, size)}
    for layer in range(layers):
        for source, target in BLOCK_MAP.items():
            take(f"h.{layer}.{source}", f"layer{layer}/{target}", shapes.get(target, (size,)))
    take("ln_f.weight", "final_gain", (size,))
    take("ln_f.bias", "final_bias", (size,))
    head = "lm_head.weight" if "lm_head.weight" in arrays and not tied else "wte.weight"
    out["softmax_w"] = arrays[head].T
    out["softmax_b"] = np.zeros(vocab)
    mapped.append({"source": f"{head} (transposed)" + (" (tied)" if head == "wte.weight" else ""),
                   "target": "softmax_w", "shape": [size, vocab]})
    used.add("lm_head.weight")   # when tied, its copy equals wte
    extra = [k for k in arrays if k not in used and k.startswith("h.") and int(k.split(".")[1]) >= layers]
    if extra:
        raise UserError(f"{where}: {extra[0]} belongs to a block beyond n_layer {layers}")
    ignored = sorted(k for k in arrays if k not in used)
    return out, mapped, ignored


def _layer_norm(h, gain, bias):
    mean = h.mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(((h - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * gain + bias


def gpt2_forward(config, arrays, ids):
    """GPT-2's forward pass on the source arrays: (hidden states as transformers gives them, logits) in float64.

    hidden[0] is the input to block 0, hidden[l] for 0 < l < L the output of block l-1, and hidden[L]
    the final LayerNorm's output (transformers' convention).
    """
    layers, heads, size, _, _, tied = check_config(config, "config")
    h = arrays["wte.weight"][ids] + arrays["wpe.weight"][: ids.shape[1]]
    hidden, steps, k = [h], ids.shape[1], size // heads
    mask = np.tril(np.ones((steps, steps), bool))
    for layer in range(layers):
        a = {name: arrays[f"h.{layer}.{name}"] for name in BLOCK_MAP}
        x = _layer_norm(h, a["ln_1.weight"], a["ln_1.bias"])
        qkv = x @ a["attn.c_attn.weight"] + a["attn.c_attn.bias"]
        q, kk, v = (t.reshape(t.shape[0], steps, heads, k).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, -1))
        w = np.where(mask, q @ kk.transpose(0, 1, 3, 2) / np.sqrt(k), -np.inf)
        w = np.exp(w - w.max(-1, keepdims=True))
        o = ((w / w.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(h.shape)
        h = h + o @ a["attn.c_proj.weight"] + a["attn.c_proj.bias"]
        m = _layer_norm(h, a["ln_2.weight"], a["ln_2.bias"]) @ a["mlp.c_fc.weight"] + a["mlp.c_fc.bias"]
        m = 0.5 * m * (1 + np.tanh(np.sqrt(2 / np.pi) * (m + 0.044715 * m ** 3)))
        h = h + m @ a["mlp.c_proj.weight"] + a["mlp.c_proj.bias"]
        hidden.append(h)
    hidden[-1] = _layer_norm(h, arrays["ln_f.weight"], arrays["ln_f.bias"])
    head = arrays["lm_head.weight"] if "lm_head.weight" in arrays and not tied else arrays["wte.weight"]
    return hidden, hidden[-1] @ head.T


def _ours(weights_path, ids):
    """This project's float64 forward pass on the converted file, in transformers' hidden-state convention."""
    import tensorflow as tf

    lm = SavedModel(weights_path).load(tf.float64)
    x = lm.embed(tf.constant(ids))
    streams = [s[0] for s in lm.run_layers(x)]
    final = lm.final_norm(streams[-1])
    hidden = [lm.stream_input(x).numpy()] + [s.numpy() for s in streams[:-1]] + [final.numpy()]
    return hidden, lm.logits(streams[-1]).numpy()


def check_conversion(config, arrays, weights_path, seed=0, rows=2, steps=9):
    """GPT-2's equations on the source arrays vs this project's forward pass on the converted file (float64)."""
    ids = np.random.default_rng(seed).integers(0, arrays["wte.weight"].shape[0], (rows, steps))
    ref_hidden, ref_logits = gpt2_forward(config, arrays, ids)
    hidden, logits = _ours(weights_path, ids)
    records = []
    for what, ours, theirs in (("hidden states (every block, final LayerNorm)", hidden, ref_hidden),
                               ("logits", [logits], [ref_logits])):
        error = max(convert._max_rel(o, t) for o, t in zip(ours, theirs))
        records.append({"check": f"self-check {what}", "rows": rows, "steps": steps, "error": error,
                        "tolerance": convert.SELF_CHECK_TOL, "passed": bool(error <= convert.SELF_CHECK_TOL)})
    return records


def check_reference(weights_path, ref_path):
    """--reference REF.npz of transformers' own outputs: `ids` [B, T] (or [T]), any of `logits` [B, T, V],
    `hidden_l{i}` (transformers' hidden_states[i], i = 0 .. L; the last one after the final LayerNorm)."""
    try:
        with np.load(ref_path, allow_pickle=False) as f:
            ref = {k: np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError) as err:
        raise UserError(f"--reference {ref_path}: not a readable .npz file ({err})") from None
    if "ids" not in ref:
        raise UserError(f"--reference {ref_path} has no array 'ids'")
    ids = ref.pop("ids")
    ids = (ids[None] if ids.ndim == 1 else ids).astype(np.int32)
    hidden, logits = _ours(weights_path, ids)
    known = {"logits"} | {f"hidden_l{i}" for i in range(len(hidden))}
    if set(ref) - known or not ref:
        raise UserError(f"--reference {ref_path}: arrays {sorted(set(ref) - known) or '(none besides ids)'}; expected "
                        f"any of {', '.join(sorted(known))}")
    records = []
    for key, theirs in ref.items():
        theirs = theirs.reshape((1,) + theirs.shape) if theirs.ndim == 2 else theirs
        ours = logits if key == "logits" else hidden[int(key.removeprefix("hidden_l"))]
        if key == "logits":
            ours, theirs = convert._log_softmax(ours), convert._log_softmax(theirs.astype(np.float64))
        if ours.shape != theirs.shape:
            raise UserError(f"--reference {ref_path}: {key} has shape {theirs.shape}, the import gives {ours.shape}")
        error = float(np.max(np.abs(ours - theirs)) / max(float(np.max(np.abs(theirs))), 1e-30))
        records.append({"check": f"reference {key}", "file": os.path.abspath(ref_path), "error": error,
                        "tolerance": convert.REFERENCE_TOL, "passed": bool(error <= convert.REFERENCE_TOL)})
    return records


def import_config_text(out_dir, arrays, vocab_path, eos, unk, source_desc):
    """import.config: the model keys main.py --notrain needs (append data_path, log_dir, num_steps, ...)."""
    size = arrays["embedding"].shape[1]
    notes = ["append data_path, log_dir, num_steps (at most the checkpoint's "
             f"{arrays['positions'].shape[0]} positions), batch_size (and grad_interm residual or final,",
             "time_step, max_delay, grad_dir for state gradients); a key given again below overrides this line"]
    keys = [("save_path", out_dir, None), ("basic_cell", transformer.CELL_TYPE, None),
            ("num_layers", int(arrays["num_layers"]), None), ("num_heads", int(arrays["num_heads"]), None),
            ("embedding_size", size, None), ("size", size, None), ("ffn_size", arrays["layer0/fc_kernel"].shape[1], None),
            ("max_positions", arrays["positions"].shape[0], None),
            ("init_scale", "0.02", "no effect on a restored model; required by every config"),
            ("softmax", "full", None), ("vocab", "False", None), ("read_vocab_from_file", vocab_path, None),
            ("fixed_vocab", "True", None)]
    return protocol.import_config_text(source_desc, notes, keys, eos, unk)


def run_import(directory, vocab, out, *, eos_token=None, unk_token=None, reference=None, log=print):
    """Import the GPT-2 checkpoint folder `directory` with its (word-level) vocabulary into the new folder `out`.

    Writes weights.npz, dict, a checkpoint, import.config and import_report.json (only the report
    when a check fails; importing/protocol.py). Returns (report dict, whether every check passed).
    """
    config, arrays = read_checkpoint(directory)
    converted, mapped, ignored = convert_arrays(config, arrays, directory)
    rows = converted["embedding"].shape[0]
    names, vocab_report = convert.read_vocab(vocab, rows)
    eos = convert.resolve_token(eos_token, names, "--eos-token")
    unk = convert.resolve_token(unk_token, names, "--unk-token")
    out_dir = os.path.abspath(out)
    source_desc = f"{os.path.abspath(directory)} (--from gpt2)"
    head = {"source": source_desc, "framework": "gpt2"}
    body = {"model": {"basic_cell": transformer.CELL_TYPE, "num_layers": int(converted["num_layers"]),
                      "num_heads": int(converted["num_heads"]), "size": int(converted["embedding"].shape[1]),
                      "positions": int(converted["positions"].shape[0]), "vocabulary_rows": int(rows)},
            "mapped": mapped, "ignored": ignored, "vocabulary": vocab_report}
    report, passed = protocol.publish(
        out_dir, converted, names, self_check=lambda path: check_conversion(config, arrays, path),
        reference_check=check_reference, reference=reference, head=head, body=body,
        config=lambda vocab_path: import_config_text(out_dir, converted, vocab_path, eos, unk, source_desc))
    checks = report["checks"]
    final = SavedModel(out_dir)
    m = report["model"]
    log(f"{directory}: GPT-2 layout, {m['num_layers']} blocks, D {m['size']}, {m['num_heads']} heads, "
        f"{m['positions']} positions, {m['vocabulary_rows']} rows")
    for note in vocab_report["notes"]:
        log(f"  assumed/noted: {note}")
    for check in checks:
        log(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['check']}: {check['error']:.2e} "
            f"(tolerance {check['tolerance']:g})")
    log(f"Wrote {out_dir}" if passed else f"Checks failed: nothing but {final.import_report_path} was written")
    return report, passed
