"""Read the weight files of other frameworks into plain numpy arrays: PyTorch, Keras (HDF5, .keras) and TF1 checkpoints."""
# Nothing here interprets a model: each reader returns named arrays (and, for Keras, the layer
# list and configs the file holds) exactly as stored; model_import maps them onto this
# project's cells. No reader imports torch, and none runs code from the file: PyTorch's pickle
# is read by an unpickler that knows only the few names a state dict uses.
import io
import json
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field

import numpy as np

from state_gradients.core.errors import UserError

TORCH_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth", ".bin")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


# ------------------------------------------------------------------------------------ PyTorch

def read_torch(path):
    """name -> array of a PyTorch state dict stored as .safetensors, .npz, or a zip-format .pt/.pth/.bin."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path} not found")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            return dict(load_file(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"{path}: not a readable safetensors file ({err})") from None
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: not a readable .npz file ({err})") from None
    if path.endswith((".pt", ".pth", ".bin")):
        return read_torch_zip(path)
    raise UserError(f"{path}: a PyTorch state dict must end in {', '.join(TORCH_SUFFIXES)}")


# storage class name -> numpy dtype of its elements (bfloat16 is read as uint16 and widened)
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                   "BoolStorage": np.bool_}


@dataclass
class _StorageType:
    name: str


@dataclass
class _Storage:
    dtype: object
    data: bytes


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor_v2: a strided view into a storage -> a numpy array (a copy)."""
    if storage.dtype == "bfloat16":
        raw = np.frombuffer(storage.data, dtype="<u2").astype(np.uint32) << 16
        flat = raw.view(np.float32)
    else:
        flat = np.frombuffer(storage.data, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    itemsize = flat.dtype.itemsize
    if not size:
        return np.array(flat[offset])
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_parameter(data, *_ignored):
    return data


class _OrderedDict(dict):
    """collections.OrderedDict as a state dict pickles it: torch sets a `_metadata` attribute, restored by BUILD."""


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict: tensors, storages and (ordered) dicts only; any other class is refused."""

    _ALLOWED = {("collections", "OrderedDict"): _OrderedDict,
                ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
                ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
                ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}

    def __init__(self, handle, archive, prefix, path):
        super().__init__(handle)
        self.archive, self.prefix, self.path = archive, prefix, path

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name.endswith("Storage"):
            raise UserError(f"{self.path}: tensors of type torch.{name} are not supported")
        raise UserError(f"{self.path} pickles {module}.{name}, which is not part of a state dict; this reader "
                        "only takes state dicts (torch.save(model.state_dict(), PATH)) and never runs code "
                        "from the file: load the model in PyTorch and save its state_dict, or export "
                        "safetensors")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements)
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise UserError(f"{self.path}: unexpected persistent id {pid!r} in the pickle")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise UserError(f"{self.path}: unexpected storage type {storage_type!r}")
        try:
            data = self.archive.read(f"{self.prefix}data/{key}")
        except KeyError:
            raise UserError(f"{self.path}: storage {key} is missing from the archive") from None
        return _Storage(_STORAGE_DTYPES[storage_type.name], data)


def read_torch_zip(path):
    """name -> array of a zip-format torch.save file (PyTorch >= 1.6) holding a state dict, read without torch."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UserError(f"{path} is not a zip-format PyTorch file (legacy torch.save files from before PyTorch "
                        "1.6 are not read: re-save with a newer PyTorch, or export safetensors)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise UserError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise UserError(f"{path}: big-endian tensors are not supported")
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])), archive, prefix, path)
        try:
            obj = unpickler.load()
        except UserError:
            raise
        except Exception as err:  # a damaged pickle: say which file
            raise UserError(f"{path}: cannot read the pickle ({type(err).__name__}: {err})") from None
    return _find_state_dict(obj, path)


def _find_state_dict(obj, path):
    """The dict of arrays in a loaded file: the object itself, or one nested under a key such as 'state_dict'."""
    def arrays_of(d):
        return {k: v for k, v in d.items() if isinstance(v, np.ndarray)} if isinstance(d, dict) else {}

    found = arrays_of(obj)
    if found:
        return found
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net", "module"):
            found = arrays_of(obj.get(key))
            if found:
                return found
    raise UserError(f"{path} holds no state dict (a dict of tensors, at the top or under 'state_dict' or 'model')")


# ------------------------------------------------------------------------------------ Keras

@dataclass
class KerasLayer:
    """One layer of a Keras file: its name, class and config (None when the file holds weights only), weights in order."""
    name: str
    class_name: str | None
    config: dict | None
    weights: list = field(default_factory=list)
    weight_names: list = field(default_factory=list)
    inbound: list = field(default_factory=list)   # names of the layers that feed it (functional models)


def read_keras(path):
    """(layers in model order, notes): a .keras zip, a legacy full-model .h5, or a weights-only HDF5 file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path} not found")
    if path.endswith(".keras"):
        return _read_keras_zip(path)
    if path.endswith((".h5", ".hdf5")):
        import h5py

        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise UserError(f"{path}: not a readable HDF5 file ({err})") from None
        with handle:
            if "layer_names" in handle.attrs or "model_weights" in handle:
                return _read_legacy_h5(handle, path)
            if "layers" in handle:
                return _read_keras3_weights(handle, None, path)
        raise UserError(f"{path}: neither a Keras 2 HDF5 file (layer_names) nor a Keras 3 weights file (layers/)")
    raise UserError(f"{path}: a Keras file must end in {', '.join(KERAS_SUFFIXES)}")


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _model_layers(config, path):
    """[(name, class_name, layer config, inbound names)] of a Sequential or functional model config."""
    if not isinstance(config, dict) or "config" not in config:
        raise UserError(f"{path}: the model config has no 'config'")
    inner = config["config"]
    entries = inner.get("layers", []) if isinstance(inner, dict) else inner
    out = []
    for entry in entries:
        inbound = []
        for node in entry.get("inbound_nodes", []) or []:
            inbound += _inbound_names(node)
        name = entry.get("config", {}).get("name") or entry.get("name")
        out.append((name, entry.get("class_name"), entry.get("config", {}), inbound))
    return out


def _inbound_names(node):
    """Layer names in one inbound node (Keras 2 lists [[name, i, j, {}]], Keras 3 {'args': [keras_history...]})."""
    names = []

    def walk(obj):
        if isinstance(obj, dict):
            history = obj.get("config", {}).get("keras_history") if obj.get("class_name") == "__keras_tensor__" else None
            if history:
                names.append(history[0])
                return
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
                names.append(obj[0])
                return
            for value in obj:
                walk(value)

    walk(node)
    return names


def _read_keras_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UserError(f"{path} is not a .keras (zip) file") from None
    with archive:
        names = archive.namelist()
        if "config.json" not in names or "model.weights.h5" not in names:
            raise UserError(f"{path}: a .keras file needs config.json and model.weights.h5")
        config = json.loads(archive.read("config.json"))
        data = archive.read("model.weights.h5")
    import h5py

    with h5py.File(io.BytesIO(data), "r") as handle:
        return _read_keras3_weights(handle, _model_layers(config, path), path)


def _vars_of(group):
    """The arrays of a Keras 3 layer group in variable order: vars/0, vars/1, ... then cell/vars/..., sub-layers."""
    out, names = [], []

    def take(g, prefix):
        if "vars" in g:
            keys = sorted(g["vars"].keys(), key=int)
            out.extend(np.asarray(g["vars"][k]) for k in keys)
            names.extend(f"{prefix}vars/{k}" for k in keys)
        for sub in sorted(k for k in g.keys() if k != "vars"):
            if hasattr(g[sub], "keys"):
                take(g[sub], f"{prefix}{sub}/")

    take(group, "")
    return out, names


def _snake_case(name):
    """Keras 3's naming.to_snake_case: 'SimpleRNN' -> 'simple_rnn', 'LSTM' -> 'lstm'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _read_keras3_weights(handle, model_layers, path):
    """Keras 3 weights (layers/NAME/...): with the model config the layers come in model order, else in file order."""
    groups = handle["layers"]
    notes = []
    if model_layers is None:
        notes.append("weights-only Keras 3 file: no layer classes or configs; the layer order is the order of "
                     "the groups in the file (alphabetical) and each layer's kind is inferred from its shapes")
        model_layers = [(name, None, None, []) for name in groups.keys()]
    layers, used = [], {}
    for name, class_name, config, inbound in model_layers:
        # Keras 3 names a layer's group after its class in snake case, numbering repeats in model
        # order (lstm, lstm_1, ...), not after the layer's own name
        key = name
        if class_name is not None:
            base = _snake_case(class_name)
            used[base] = used.get(base, -1) + 1
            key = base if used[base] == 0 else f"{base}_{used[base]}"
        weights, names = _vars_of(groups[key]) if key in groups else ([], [])
        layers.append(KerasLayer(name, class_name, config, weights, names, inbound))
    return layers, notes


def _read_legacy_h5(handle, path):
    """Keras 2 / tf.keras HDF5: a full model (model_config + model_weights) or weights only (layer_names at the top)."""
    notes = []
    config_layers = None
    if "model_config" in handle.attrs:
        config = json.loads(_text(handle.attrs["model_config"]))
        config_layers = {name: (cls, cfg, inbound) for name, cls, cfg, inbound in _model_layers(config, path)}
    else:
        notes.append("weights-only HDF5 file: no layer classes or configs; each layer's kind is inferred from "
                     "its weight names and shapes")
    weights = handle["model_weights"] if "model_weights" in handle else handle
    layers = []
    for raw_name in weights.attrs["layer_names"]:
        name = _text(raw_name)
        group = weights[name]
        weight_names = [_text(w) for w in group.attrs.get("weight_names", [])]
        arrays = [np.asarray(group[w]) for w in weight_names]
        cls, cfg, inbound = (config_layers or {}).get(name, (None, None, []))
        layers.append(KerasLayer(name, cls, cfg, arrays, weight_names, inbound))
    return layers, notes


# ------------------------------------------------------------------------------------ TF1

def read_tf1_checkpoint(prefix):
    """name -> array of every variable in a TF1 checkpoint (PREFIX, PREFIX.index, or the folder with `checkpoint`)."""
    import tensorflow as tf

    prefix = os.fspath(prefix)
    if os.path.isdir(prefix):
        latest = tf.train.latest_checkpoint(prefix)
        if latest is None:
            raise UserError(f"{prefix}: no checkpoint found in this folder")
        prefix = latest
    if prefix.endswith(".index") or ".data-" in prefix:
        prefix = prefix.split(".data-")[0].removesuffix(".index")
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = reader.get_variable_to_shape_map()
        return {name: reader.get_tensor(name) for name in names}
    except (tf.errors.OpError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{prefix}: not a readable TF checkpoint ({first})") from None
