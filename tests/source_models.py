"""Model files of other frameworks for the import tests, written without those frameworks' model code."""
# PyTorch state dicts are built with numpy in PyTorch's documented layout (nn.LSTM weight_ih_l{k}
# [4H, I] rows i, f, g, o; nn.GRU [3H, I] rows r, z, n) and written as .npz, .safetensors, or a
# zip-format .pt assembled by hand: the same archive layout and pickle opcodes as torch.save, with
# stand-in `torch` modules registered only while pickling so that the pickle names torch's classes.
import io
import pickle
import sys
import types
import zipfile

import numpy as np


def torch_lm_state_dict(kind, layers=2, vocab=13, emb=5, size=4, seed=0, prefix="rnn.", tied=False,
                        bias=True):
    """A word-level LM state dict: encoder.weight, {prefix}weight_ih_l{k}..., decoder.weight/bias."""
    rng = np.random.default_rng(seed)
    n = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    sd = {"encoder.weight": rng.normal(size=(vocab, emb)).astype(np.float32)}
    for layer in range(layers):
        inp = emb if layer == 0 else size
        sd[f"{prefix}weight_ih_l{layer}"] = rng.uniform(-0.7, 0.7, (n * size, inp)).astype(np.float32)
        sd[f"{prefix}weight_hh_l{layer}"] = rng.uniform(-0.7, 0.7, (n * size, size)).astype(np.float32)
        if bias:
            sd[f"{prefix}bias_ih_l{layer}"] = rng.uniform(-0.5, 0.5, n * size).astype(np.float32)
            sd[f"{prefix}bias_hh_l{layer}"] = rng.uniform(-0.5, 0.5, n * size).astype(np.float32)
    if tied:
        assert emb == size
    else:
        sd["decoder.weight"] = rng.normal(size=(vocab, size)).astype(np.float32)
    sd["decoder.bias"] = rng.normal(size=vocab).astype(np.float32)
    return sd


class _FakeStorage:
    def __init__(self, array, key):
        self.array, self.key = array, key


_DTYPE_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage"}


def _fake_torch_modules(extra_globals=None):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in set(_DTYPE_STORAGE.values()):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)

    def _rebuild_tensor_v2(*args):  # only its name is pickled
        raise AssertionError("not called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name, obj in (extra_globals or {}).items():
        obj.__module__ = "torch"
        obj.__qualname__ = name
        setattr(torch, name, obj)
    return torch, utils


class _Tensor:
    def __init__(self, storage, shape, torch):
        self.storage, self.shape, self.torch = storage, shape, torch

    def __reduce__(self):
        strides, acc = [], 1
        for dim in reversed(self.shape):
            strides.insert(0, acc)
            acc *= dim
        import collections

        return (self.torch._utils._rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(strides), False, collections.OrderedDict()))


def write_pt(path, state_dict, *, wrap=None, extra=None, archive_name="archive"):
    """Write a zip-format torch.save file of state_dict (optionally nested: {wrap: state_dict}) by hand.

    extra: {name: object} pickled beside the tensors (e.g. an instance of a class registered as
    torch.NAME, to test that the reader refuses classes outside a state dict).
    """
    torch, utils = _fake_torch_modules({type(obj).__name__: type(obj) for obj in (extra or {}).values()})
    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        storages = {}
        import collections

        ordered = collections.OrderedDict()
        # torch's state_dict() carries the modules' versions as an attribute, pickled with BUILD
        ordered._metadata = collections.OrderedDict({"": {"version": 1}, "rnn": {"version": 1}})
        for key, value in state_dict.items():
            value = np.ascontiguousarray(value)
            storage = _FakeStorage(value, str(len(storages)))
            storages[storage.key] = storage
            ordered[key] = _Tensor(storage, value.shape, torch)
        obj = {wrap: ordered} if wrap else ordered
        if extra:
            obj = dict(obj) if isinstance(obj, dict) else obj
            obj.update(extra)

        class Pickler(pickle.Pickler):
            def persistent_id(self, item):
                if isinstance(item, _FakeStorage):
                    storage_type = getattr(torch, _DTYPE_STORAGE[item.array.dtype])
                    return ("storage", storage_type, item.key, "cpu", item.array.size)
                return None

        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(obj)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{archive_name}/data.pkl", buffer.getvalue())
        archive.writestr(f"{archive_name}/byteorder", "little")
        archive.writestr(f"{archive_name}/version", "3\n")
        for key, storage in storages.items():
            archive.writestr(f"{archive_name}/data/{key}", storage.array.tobytes())
    return path


def write_vocab_lines(path, words):
    path.write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
    return path
