"""Find the embedding, the recurrent layers and the output layer in PyTorch, Keras and TF1 model files; run_import writes the import."""
# Shape letters: V embedding rows, E embedding size, I layer input size, H state size.
#
# Each find_* returns a convert.SourceModel holding the source's arrays unconverted, or
# raises UserError with the reason (and, when the layout is not recognised, every array name
# with its shape, so that the user can name the parts with --embedding-key, --rnn-prefix,
# --decoder-prefix).
import os
import re

import numpy as np

from state_gradients.core import configuration
from state_gradients.core.errors import UserError
from state_gradients.files import saved_model
from state_gradients.importing import convert, layouts, source_files
from state_gradients.importing.convert import Refused, SourceLayer, SourceModel, check_layers


def _listing(arrays):
    return "; ".join(f"{k} {tuple(np.shape(v))}" for k, v in arrays.items())


def _natural(text):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ------------------------------------------------------------------------------------ PyTorch

_TORCH_RNN = re.compile(r"^(?P<prefix>.*?)(?P<param>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<layer>\d+)"
                        r"(?P<reverse>_reverse)?(?P<raw>_raw)?$")
_EMBEDDING_NAMES = re.compile(r"(^|\.)(encoder|embedding|embeddings|embed|emb|wte|word_embeddings|embed_tokens)"
                              r"\.weight$")
_HEAD_NAMES = re.compile(r"(decoder|out|output|fc|linear|proj|lm_head|head|classifier|softmax)", re.I)


def find_torch(path, *, embedding_key=None, rnn_prefix=None, decoder_prefix=None, no_head=False,
               nonlinearity="tanh"):
    """SourceModel of a PyTorch state dict: nn.LSTM / nn.GRU / nn.RNN layers under one or several prefixes."""
    arrays = source_files.read_torch(path)
    notes, used = [], set()
    groups, group_keys = {}, {}   # (module, layer) -> {param: the key taken}, -> every key of the layer
    for key in arrays:
        m = _TORCH_RNN.match(key)
        if not m:
            continue
        prefix = m["prefix"]
        if rnn_prefix is not None and not prefix.startswith(rnn_prefix):
            continue
        if m["reverse"]:
            raise Refused(f"{path}: {key} belongs to a bidirectional RNN, which a left-to-right LM cannot use")
        if m["param"] == "weight_hr":
            raise Refused(f"{path}: {key} is an LSTM projection (proj_size), which this project's cells do not have")
        # weight-drop (AWD-LSTM) keeps the raw weights as NAME_raw beside the module's copy: take the raw ones
        module = prefix[: -len("module.")] if prefix.endswith("module.") else prefix
        slot = groups.setdefault((module, int(m["layer"])), {})
        group_keys.setdefault((module, int(m["layer"])), []).append(key)
        if m["raw"] or m["param"] not in slot:
            slot[m["param"]] = key
    if not groups:
        hint = f" under --rnn-prefix {rnn_prefix!r}" if rnn_prefix is not None else ""
        raise UserError(f"{path}: no nn.LSTM/nn.GRU/nn.RNN weights (weight_ih_l0 ...){hint} found; its arrays: "
                        f"{_listing(arrays)}")
    modules = sorted({module for module, _ in groups}, key=_natural)
    if len(modules) > 1:
        stems = {re.sub(r"\d+", "#", module) for module in modules}
        if len(stems) > 1:
            raise UserError(f"{path}: recurrent weights under several prefixes ({', '.join(modules)}); name the "
                            "language model's with --rnn-prefix")
        notes.append(f"one recurrent module per layer ({', '.join(modules)}), stacked in that order")
    layers = []
    for module in modules:
        for number in sorted(layer for mod, layer in groups if mod == module):
            keys = groups[(module, number)]
            if "weight_ih" not in keys or "weight_hh" not in keys:
                raise UserError(f"{path}: layer {number} of {module or 'the model'} lacks weight_ih or weight_hh")
            w_hh = arrays[keys["weight_hh"]]
            size = w_hh.shape[1]
            n = w_hh.shape[0] // size
            kind = layouts.kind_by_gates(n)
            if kind is None or w_hh.shape[0] != n * size:
                raise UserError(f"{path}: {keys['weight_hh']} has shape {w_hh.shape}: not an LSTM (4H x H), GRU "
                                "(3H x H) or RNN (H x H)")
            layer = SourceLayer(kind, "torch", {role: arrays[k] for role, k in keys.items()}, dict(keys),
                                {"nonlinearity": nonlinearity})
            layers.append(layer)
            used.update(group_keys[(module, number)])   # with the weight-drop copies not taken
            if "bias_ih" not in keys:
                notes.append(f"layer {len(layers) - 1} has no biases (bias=False): zeros")
    check_layers(path, layers)
    if not layouts.KINDS[layers[0].kind].gated:      # nn.RNN: the nonlinearity is the module's setting
        if nonlinearity != "tanh":
            raise Refused(f"{path}: an nn.RNN with nonlinearity {nonlinearity!r} cannot be imported; this "
                            "project's RNN cell is tanh")
        notes.append("nn.RNN: a state dict does not store the nonlinearity; tanh assumed (--nonlinearity)")
    input_size = layers[0].input_size
    emb_key = _find_torch_embedding(path, arrays, embedding_key, input_size, used)
    used.add(emb_key)
    embedding = arrays[emb_key]
    for key, value in arrays.items():   # a second copy of the embedding (e.g. AWD-LSTM's encoder_dp)
        if key not in used and np.shape(value) == embedding.shape and np.array_equal(value, embedding):
            notes.append(f"{key} is a copy of the embedding {emb_key}")
            used.add(key)
    head = None
    if no_head:
        notes.append("--no-head: no output layer imported")
    else:
        head = _find_torch_head(path, arrays, decoder_prefix, embedding, emb_key, layers[-1].size, used)
        used.update(head["names"])
    ignored = [k for k in arrays if k not in used]
    return SourceModel("torch", str(path), embedding, emb_key, layers, head, 0.0, notes, ignored)


def _find_torch_embedding(path, arrays, key, input_size, used):
    if key is not None:
        if key not in arrays:
            raise UserError(f"--embedding-key {key!r} is not in {path}; its arrays: {_listing(arrays)}")
        if np.ndim(arrays[key]) != 2 or arrays[key].shape[1] != input_size:
            raise UserError(f"--embedding-key {key!r} has shape {np.shape(arrays[key])}; layer 0 reads "
                            f"{input_size} inputs")
        return key
    candidates = [k for k, v in arrays.items() if k not in used and np.ndim(v) == 2 and v.shape[1] == input_size
                  and k.endswith("weight")]
    named = [k for k in candidates if _EMBEDDING_NAMES.search(k)]
    if len(named) >= 1:
        return sorted(named, key=len)[0]
    if len(candidates) == 1:
        return candidates[0]
    raise UserError(f"{path}: cannot tell which array is the embedding (rows x {input_size}); pass --embedding-key. "
                    f"Its arrays: {_listing(arrays)}")


def _find_torch_head(path, arrays, prefix, embedding, emb_key, size, used):
    rows = embedding.shape[0]
    hint = "pass --decoder-prefix, or --no-head to import the embedding and the recurrent stack only"
    if prefix is not None:
        w_key, b_key = prefix + "weight", prefix + "bias"
        if b_key not in arrays:
            raise UserError(f"--decoder-prefix {prefix!r}: {b_key} is not in {path}; its arrays: {_listing(arrays)}")
        if w_key not in arrays:
            return _tied(path, arrays, emb_key, b_key, embedding, size)
        return {"weight": arrays[w_key], "bias": arrays[b_key], "names": [w_key, b_key], "tied": False}
    pairs = []
    for key, value in arrays.items():
        if key in used or not key.endswith("bias") or np.shape(value) != (rows,):
            continue
        stem = key[: -len("bias")]
        weight = arrays.get(stem + "weight")
        if weight is not None and np.shape(weight) == (rows, size):
            pairs.append((stem, False))
        elif weight is None:
            pairs.append((stem, True))
    if not pairs:
        raise UserError(f"{path}: no output layer (weight {rows} x {size} with bias {rows}) found; {hint}. "
                        f"Its arrays: {_listing(arrays)}")
    pairs.sort(key=lambda p: (not _HEAD_NAMES.search(p[0]), p[1], p[0]))
    if len(pairs) > 1 and bool(_HEAD_NAMES.search(pairs[0][0])) == bool(_HEAD_NAMES.search(pairs[1][0])):
        raise UserError(f"{path}: several possible output layers ({', '.join(p[0] for p in pairs)}); {hint}")
    stem, tied = pairs[0]
    if tied:
        return _tied(path, arrays, emb_key, stem + "bias", embedding, size)
    weight = arrays[stem + "weight"]
    head = {"weight": weight, "bias": arrays[stem + "bias"], "names": [stem + "weight", stem + "bias"],
            "tied": bool(np.array_equal(weight, embedding))}
    return head


def _tied(path, arrays, emb_key, b_key, embedding, size):
    if embedding.shape[1] != size:
        raise UserError(f"{path}: {b_key} has no weight beside it and the embedding ({embedding.shape[1]}) cannot be "
                        f"tied to a {size}-unit output layer")
    return {"weight": embedding, "bias": arrays[b_key], "names": [emb_key, b_key], "tied": True}


# ------------------------------------------------------------------------------------ Keras

_PASS_THROUGH = {"InputLayer", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
                 "AlphaDropout", "Masking", "ActivityRegularization"}
_RECURRENT = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN", "CuDNNLSTM": "LSTM", "CuDNNGRU": "GRU"}


def _keras_kind(layer):
    """(role, kind): role embedding | recurrent | dense | pass | other, from the class or, without one, the shapes."""
    cls, w = layer.class_name, layer.weights
    if cls is not None:
        if cls == "Embedding":
            return "embedding", None
        if cls in _RECURRENT:
            return "recurrent", _RECURRENT[cls]
        if cls == "Bidirectional":
            return "bidirectional", None
        if cls == "Dense":
            return "dense", None
        if cls in _PASS_THROUGH or (cls == "Activation" and layer.config.get("activation") in ("linear", "softmax")):
            return "pass", None
        return "other", None
    if not w:
        return "unknown", None
    shapes = [np.shape(a) for a in w]
    names = " ".join(layer.weight_names)
    if len(w) == 1 and len(shapes[0]) == 2 and "embed" in f"{layer.name} {names}".lower():
        return "embedding", None
    if (len(w) in (2, 3) and len(shapes[0]) == 2 and len(shapes[1]) == 2 and shapes[0][1] == shapes[1][1]
            and shapes[1][1] % shapes[1][0] == 0):
        # kernel [I, nH] and recurrent_kernel [H, nH]: n = 4 LSTM, 3 GRU, 1 SimpleRNN
        return "recurrent", layouts.kind_by_gates(shapes[1][1] // shapes[1][0])
    if len(w) == 2 and len(shapes[0]) == 2 and len(shapes[1]) == 1 and shapes[0][1] == shapes[1][0]:
        return "dense", None
    if "forward" in names and "backward" in names:
        return "bidirectional", None
    return "other", None


def _keras_recurrent(path, layer, kind, notes):
    """SourceLayer of a Keras LSTM/GRU/SimpleRNN (or CuDNN) layer, after refusing what cannot be imported."""
    cfg = layer.config
    arrays = dict(zip(("kernel", "recurrent_kernel", "bias"), layer.weights))
    names = dict(zip(("kernel", "recurrent_kernel", "bias"), layer.weight_names or
                     [f"{layer.name}/{r}" for r in ("kernel", "recurrent_kernel", "bias")]))
    size = arrays["recurrent_kernel"].shape[0]
    n = layouts.KINDS[kind].gates
    bias = arrays.get("bias")
    cudnn = (layer.class_name or "").startswith("CuDNN") or (bias is not None and bias.shape == (2 * n * size,))
    options = {}
    if cfg is not None and not cudnn:
        for key, allowed in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
            if key == "recurrent_activation" and not layouts.KINDS[kind].gated:
                continue
            if cfg.get(key, allowed) != allowed:
                raise Refused(f"{path}: layer {layer.name} ({layer.class_name}) has {key} {cfg.get(key)!r}; only "
                                f"{allowed} can be imported")
        if cfg.get("go_backwards"):
            raise Refused(f"{path}: layer {layer.name} runs backwards (go_backwards True), which a "
                            "left-to-right LM cannot use")
        if layouts.KINDS[kind].reset_after:
            options["reset_after"] = bool(cfg.get("reset_after", True))
    elif not cudnn:
        notes.append(f"layer {layer.name}: no config in the file; activation tanh and recurrent_activation "
                     "sigmoid assumed (Keras 2 defaulted to hard_sigmoid, which cannot be imported)")
        if layouts.KINDS[kind].reset_after:
            options["reset_after"] = bias is not None and bias.ndim == 2
            notes.append(f"layer {layer.name}: reset_after {options['reset_after']} from the bias shape {bias.shape}"
                         if bias is not None else f"layer {layer.name}: no bias; reset_after False assumed")
    if cudnn:
        notes.append(f"layer {layer.name}: cuDNN weight layout (bias {bias.shape} = input and recurrent halves)")
    return SourceLayer(kind, "cudnn" if cudnn else "keras", arrays, names, options)


def find_keras(path, *, no_head=False):
    """SourceModel of a Keras model: Embedding -> LSTM/GRU/SimpleRNN layers -> Dense (optional with --no-head)."""
    layers, notes = source_files.read_keras(path)
    notes = list(notes)
    roles = [(layer, *_keras_kind(layer)) for layer in layers]
    for layer, role, _ in roles:
        if role == "bidirectional":
            raise Refused(f"{path}: layer {layer.name} is bidirectional, which a left-to-right LM cannot use")
    embeddings = [(layer, kind) for layer, role, kind in roles if role == "embedding"]
    if len(embeddings) != 1:
        raise UserError(f"{path}: expected one Embedding layer, found {len(embeddings)} "
                        f"({', '.join(l.name for l, _ in embeddings) or 'none'})")
    emb_layer = embeddings[0][0]
    embedding = emb_layer.weights[0]
    recurrent = [(layer, kind) for layer, role, kind in roles if role == "recurrent"]
    if not recurrent:
        found = ", ".join(f"{layer.name} ({layer.class_name or 'class not stored'})" for layer in layers)
        raise UserError(f"{path}: no LSTM, GRU or SimpleRNN layer found (layers: {found})")
    if any(kind is None for _, kind in recurrent):
        raise UserError(f"{path}: cannot tell the cell of layer {[l.name for l, k in recurrent if k is None][0]}")
    if emb_layer.class_name is None:
        recurrent = _chain_by_shape(path, embedding.shape[1], recurrent, notes)
    # with a config: nothing between the embedding and the stack but pass-through layers
    index = {id(layer): i for i, layer in enumerate(layers)}
    if emb_layer.class_name is not None:
        first, last = index[id(recurrent[0][0])], index[id(recurrent[-1][0])]
        between = [l for l, role, _ in roles[index[id(emb_layer)] + 1:last] if role not in ("pass", "recurrent")]
        if between or index[id(emb_layer)] > first:
            raise UserError(f"{path}: layer {between[0].name if between else emb_layer.name} sits between the "
                            "embedding and the recurrent layers; only a plain Embedding -> RNN stack can be imported")
    source_layers = [_keras_recurrent(path, layer, kind, notes) for layer, kind in recurrent]
    check_layers(path, source_layers)
    used = {emb_layer.name} | {layer.name for layer, _ in recurrent}
    head = None
    if no_head:
        notes.append("--no-head: no output layer imported")
    else:
        head = _keras_head(path, layers, roles, recurrent[-1][0], index, source_layers[-1].size,
                           embedding.shape[0], notes)
        used.add(head["layer"])
    ignored = [f"{layer.name} ({layer.class_name or 'class not stored'}): "
               f"{', '.join(str(np.shape(w)) for w in layer.weights)}"
               for layer in layers if layer.name not in used and layer.weights]
    emb_name = (emb_layer.weight_names or [f"{emb_layer.name}/embeddings"])[0]
    return SourceModel("keras", str(path), embedding, emb_name, source_layers, head, 0.0, notes, ignored)


def _chain_by_shape(path, emb_size, recurrent, notes):
    """Weights-only files: order the recurrent layers so that each reads what the previous one gives."""
    left, chain, width = list(recurrent), [], emb_size
    while left:
        fits = [item for item in left if item[0].weights[0].shape[0] == width]
        if not fits:
            break
        if len(fits) > 1:
            notes.append(f"layers {', '.join(l.name for l, _ in fits)} all read {width} inputs: taken in file order")
        chain.append(fits[0])
        left.remove(fits[0])
        width = fits[0][0].weights[1].shape[0]
    if left:
        raise UserError(f"{path}: recurrent layers {', '.join(l.name for l, _ in left)} do not continue the stack "
                        f"(embedding size {emb_size})")
    notes.append("layer order: " + " -> ".join(l.name for l, _ in chain) + " (each reads the previous one's output)")
    return chain


def _keras_head(path, layers, roles, top, index, size, rows, notes):
    """The Dense output layer right after the stack, or UserError telling to use --no-head."""
    hint = "pass --no-head to import the embedding and the recurrent stack only"
    if top.class_name is None:
        # weights only: no order to rely on; the head is the one Dense-shaped layer, if nothing else has weights
        after = [(layer, role) for layer, role, _ in roles if role in ("dense", "other")]
    else:
        after = [(layer, role) for layer, role, _ in roles[index[id(top)] + 1:]]
    blocking = [layer for layer, role in after if role not in ("pass", "dense")]
    dense = [layer for layer, role in after if role == "dense"]
    if blocking or len(dense) != 1:
        what = (f"layer {blocking[0].name} ({blocking[0].class_name or 'class not stored'})" if blocking
                else f"{len(dense)} Dense layers")
        raise UserError(f"{path}: the recurrent stack is followed by {what}, not a single linear output layer; {hint}")
    layer = dense[0]
    if layer.config is not None:
        activation = layer.config.get("activation", "linear")
        if activation not in ("linear", "softmax"):
            raise UserError(f"{path}: output layer {layer.name} has activation {activation!r}; {hint}")
        if not layer.config.get("use_bias", True):
            raise UserError(f"{path}: output layer {layer.name} has no bias; {hint}")
    else:
        notes.append(f"output layer {layer.name}: no config in the file; assumed to read the top layer directly")
    kernel, bias = layer.weights
    if kernel.shape != (size, rows):
        raise UserError(f"{path}: output layer {layer.name} maps {kernel.shape[0]} -> {kernel.shape[1]}, not the top "
                        f"state ({size}) -> the {rows} embedding rows; {hint}")
    names = layer.weight_names or [f"{layer.name}/kernel", f"{layer.name}/bias"]
    return {"weight": kernel, "bias": bias, "names": names, "tied": False, "layer": layer.name}


# ------------------------------------------------------------------------------------ TF1

_TF1_CELL = re.compile(r"^(?P<prefix>.*?)(?:cell_(?P<layer>\d+)/)?(?P<cell>basic_lstm_cell|lstm_cell|gru_cell|"
                       r"basic_rnn_cell)/(?P<param>kernel|bias|gates/kernel|gates/bias|candidate/kernel|"
                       r"candidate/bias|w_f_diag|w_i_diag|w_o_diag|projection/kernel)$")
_OPTIMIZER = re.compile(r"(/Adam(_\d+)?$|/Adagrad$|/Momentum$|/RMSProp(_\d+)?$|beta[12]_power|global_step|"
                        r"learning_rate|/epoch$|^epoch$|/ExponentialMovingAverage$)")


def find_tf1(path, *, config=None, forget_bias=None, no_head=False):
    """SourceModel of a checkpoint of the original toolkit (or any TF1 MultiRNNCell LM with the same cells)."""
    arrays = source_files.read_tf1_checkpoint(path)
    notes = []
    slots = [k for k in arrays if _OPTIMIZER.search(k)]
    layers = {}
    for key in arrays:
        if key in slots:
            continue
        m = _TF1_CELL.match(key)
        if not m:
            continue
        if m["param"] in ("w_f_diag", "w_i_diag", "w_o_diag"):
            raise Refused(f"{path}: {key} is a peephole weight; LSTM cells with peepholes cannot be imported")
        if m["param"] == "projection/kernel":
            raise Refused(f"{path}: {key} is an LSTM projection; cells with num_proj cannot be imported")
        number = int(m["layer"] or 0)
        layers.setdefault(number, {})[m["param"]] = key
        layers[number]["_cell"] = m["cell"]
    if not layers:
        raise UserError(f"{path}: no BasicLSTMCell/GRUCell/BasicRNNCell variables (.../cell_N/basic_lstm_cell/kernel) "
                        f"found; its variables: {_listing({k: v for k, v in arrays.items() if k not in slots})}")
    source_layers = []
    for number in sorted(layers):
        keys = dict(layers[number])
        cell = keys.pop("_cell")
        kind = {"basic_lstm_cell": "LSTM", "lstm_cell": "LSTM", "gru_cell": "GRU", "basic_rnn_cell": "RNN"}[cell]
        source_layers.append(SourceLayer(kind, "tf1", {r: arrays[k] for r, k in keys.items()}, keys))
    if sorted(layers) != list(range(len(layers))):
        raise UserError(f"{path}: layers {sorted(layers)} are not numbered 0..{len(layers) - 1}")
    check_layers(path, source_layers)
    kind = source_layers[0].kind
    fb = 0.0
    if config is not None:
        expected = {"basic_cell": source_layers[0].cell_type, "num_layers": len(source_layers), "size": source_layers[0].size}
        found = {"basic_cell": config.basic_cell, "num_layers": config.num_layers, "size": config.size}
        for key, value in expected.items():
            if found[key] != value:
                raise UserError(f"{config.path} says {key} {found[key]} but {path} holds {value}")
        fb = float(config.forget_bias or 0.0)
        notes.append(f"forget_bias {fb} from {config.path}")
    if forget_bias is not None:
        fb = float(forget_bias)
        notes.append(f"forget_bias {fb} from --forget-bias")
    elif config is None and layouts.KINDS[kind].forget_bias:
        raise UserError(f"{path}: the checkpoint does not store the LSTM's forget_bias: pass --config of the original "
                        "run (or --forget-bias)")
    # TF1 added the forget bias to float32 pre-activations: float32(forget_bias) is what it computed
    fb = float(np.float32(fb))
    rest = {k: v for k, v in arrays.items() if k not in slots and not _TF1_CELL.match(k)}
    emb = [k for k, v in rest.items() if re.search(r"(^|/)embedding$", k) and np.ndim(v) == 2]
    if len(emb) != 1:
        raise UserError(f"{path}: expected one variable named .../embedding, found {emb or 'none'}")
    head = None
    if no_head:
        notes.append("--no-head: no output layer imported")
    else:
        w = [k for k in rest if re.search(r"(^|/)softmax_w$", k)]
        b = [k for k in rest if re.search(r"(^|/)softmax_b$", k)]
        if len(w) != 1 or len(b) != 1:
            raise UserError(f"{path}: expected one softmax_w and one softmax_b, found {w + b or 'none'}; "
                            "pass --no-head to import the embedding and the recurrent stack only")
        head = {"weight": rest[w[0]], "bias": rest[b[0]], "names": [w[0], b[0]], "tied": False}
    used = set(emb) | ({*head["names"]} if head else set())
    ignored = [k for k in rest if k not in used]
    if slots:
        notes.append(f"{len(slots)} optimizer and bookkeeping variables skipped")
    return SourceModel("tf1", str(path), rest[emb[0]], emb[0], source_layers, head, fb, notes, ignored)


TORCH_ONLY = ("embedding_key", "rnn_prefix", "decoder_prefix", "nonlinearity")
TF1_ONLY = ("config", "forget_bias")


def find_model(framework, source, *, no_head=False, embedding_key=None, rnn_prefix=None, decoder_prefix=None,
               nonlinearity=None, config=None, forget_bias=None):
    """The SourceModel of a file of `framework` (torch, keras, tf1), after the structural checks.

    config: the TF1 run's config file (forget_bias and a check of basic_cell, num_layers, size).
    """
    given = {"embedding_key": embedding_key, "rnn_prefix": rnn_prefix, "decoder_prefix": decoder_prefix,
             "nonlinearity": nonlinearity, "config": config, "forget_bias": forget_bias}
    if framework not in convert.FRAMEWORKS:
        raise UserError(f"framework must be one of {', '.join(convert.FRAMEWORKS)}, got {framework!r}")
    if framework == "gpt2":
        raise UserError("a GPT-2 checkpoint is a Transformer: run_import reads it with importing/gpt2.py")
    wrong = [name for name in TORCH_ONLY if given[name] is not None and framework != "torch"]
    wrong += [name for name in TF1_ONLY if given[name] is not None and framework != "tf1"]
    if wrong:
        raise UserError(f"--{wrong[0].replace('_', '-')} does not apply to --from {framework}")
    if framework == "torch":
        model = find_torch(source, embedding_key=embedding_key, rnn_prefix=rnn_prefix, decoder_prefix=decoder_prefix,
                           no_head=no_head, nonlinearity=nonlinearity or "tanh")
    elif framework == "keras":
        model = find_keras(source, no_head=no_head)
    else:
        if config:
            config = configuration.load_config(config, train=False, valid=True, test=False, warn=lambda message: None)
        model = find_tf1(source, config=config, forget_bias=forget_bias, no_head=no_head)
    convert.check_structure(model)
    return model


def run_import(framework, source, vocab, out, *, eos_token=None, unk_token=None, reference=None, log=print,
               **find_options):
    """Import `source` of `framework` (torch, keras, tf1) with its vocabulary file into the new folder `out`.

    Writes weights.npz, dict, a checkpoint, import.config and import_report.json (only the report
    when a check fails); find_options go to find_model. Returns (report dict, whether every check passed).
    """
    if framework == "gpt2":
        given = sorted(name for name, value in find_options.items() if value not in (None, False))
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} does not apply to --from gpt2")
        from state_gradients.importing import gpt2

        return gpt2.run_import(source, vocab, out, eos_token=eos_token, unk_token=unk_token, reference=reference,
                               log=log)
    model = find_model(framework, source, **find_options)
    names, vocab_report = convert.read_vocab(vocab, model.embedding.shape[0])
    eos = convert.resolve_token(eos_token, names, "--eos-token")
    unk = convert.resolve_token(unk_token, names, "--unk-token")
    if unk is None and "<unk>" not in names:
        vocab_report["notes"].append("no unknown-word token: words outside the vocabulary are an error (--unk-token)")
    options = {"eos": eos, "unk": unk, "reference": reference, "vocab_report": vocab_report}
    source_desc = f"{os.path.abspath(source)} (--from {framework})"
    report, passed = convert.write_import(out, model, names, options, source_desc)
    m = report["model"]
    log(f"{source}: {m['num_layers']}-layer {m['basic_cell']}, E {m['embedding_size']}, H {m['size']}, "
        f"{m['vocabulary_rows']} rows, {'with' if m['output_layer'] else 'without'} output layer")
    for note in model.notes + vocab_report["notes"]:
        log(f"  assumed/noted: {note}")
    for check in report["checks"]:
        log(f"  {'ok  ' if check['passed'] else 'FAIL'} {check['check']}: {check['error']:.2e} "
            f"(tolerance {check['tolerance']:g})")
    if passed:
        log(f"Wrote {os.path.abspath(out)}: {', '.join(saved_model.IMPORT_FILES)}")
    else:
        log(f"Checks failed: nothing but {saved_model.SavedModel(out).import_report_path} was written")
    return report, passed
