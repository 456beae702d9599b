"""Read a GGUF file of the Llama architecture (llama.cpp's format, e.g. SmolLM2) into LlamaLM's weights.npz arrays."""
# Shape letters: V vocabulary, D model size, F feed-forward size, A query heads, G key/value heads,
# K head size, L blocks.
#
# GGUF (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) stores each tensor with its
# dimensions fastest-first, so a tensor listed as [in, out] reads in numpy as [out, in]: the
# orientation of Hugging Face's nn.Linear weights. The `gguf` package (pure numpy) reads the file
# and dequantises every type it knows (Q4_1, Q8_0, F16, ...) to float32. Names:
#
#   token_embd [V, D] -> embedding                blk.{l}.attn_norm -> layer{l}/attn_norm
#   blk.{l}.attn_q [Q, D] -> q_kernel (transposed, un-permuted), attn_k [G K, D] -> k_kernel (same)
#   blk.{l}.attn_v -> v_kernel, attn_output [D, Q] -> o_kernel (transposed)
#   blk.{l}.ffn_norm -> mlp_norm; ffn_gate, ffn_up [F, D], ffn_down [D, F] -> *_kernel (transposed)
#   output_norm -> final_gain; output [V, D] -> softmax_w (transposed; absent: tied to the embedding)
#
# llama.cpp's converter permutes the rows of the query and key weights of every head from Hugging
# Face's rotate-half layout (pairs (i, i + K/2)) to interleaved pairs (2i, 2i + 1):
# w.reshape(H, 2, K/2, D).swapaxes(1, 2).reshape(H K, D). unpermute() reverses it, so that the
# model computes with Hugging Face's rotary layout (models/llama.py). A check written from the same
# reading of the file cannot see this permutation; the --reference check against transformers'
# own outputs on the same file does (tests/data/reference/, written by tests/reference_outputs.py).
import os

import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.models import llama

ARCHITECTURE = "llama"
BLOCK_MAP = {"attn_norm": "attn_norm", "attn_q": "q_kernel", "attn_k": "k_kernel", "attn_v": "v_kernel",
             "attn_output": "o_kernel", "ffn_norm": "mlp_norm", "ffn_gate": "gate_kernel", "ffn_up": "up_kernel",
             "ffn_down": "down_kernel"}
NORMS = ("attn_norm", "ffn_norm")


def unpermute(w, heads):
    """Rows [H K, D] of llama.cpp's interleaved rotary layout -> Hugging Face's rotate-half layout."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader, key, default=None):
    field = reader.fields.get(key)
    if field is None:
        return default
    value = field.contents()
    return value


def read_gguf(path):
    """(config {num_layers, size, ffn_size, num_heads, num_kv_heads, head_size, rope_base, rope_scale,
    norm_epsilon, max_positions, vocab_size}, {GGUF tensor name: float32 array}, {tokenizer key: value}) of a
    GGUF file of the llama architecture; UserError naming the file and what it lacks otherwise."""
    import gguf

    if not os.path.isfile(path):
        raise UserError(f"{path}: no such GGUF file")
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: not a readable GGUF file ({err})") from None
    arch = _field(reader, "general.architecture")
    if arch != ARCHITECTURE:
        raise UserError(f"{path}: general.architecture is {arch!r}; only {ARCHITECTURE!r} GGUF files are read")

    def need(key):
        value = _field(reader, f"{arch}.{key}")
        if value is None:
            raise UserError(f"{path}: no {arch}.{key} in the GGUF metadata")
        return value

    scaling = _field(reader, f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", "linear"):
        raise UserError(f"{path}: rope scaling {scaling!r} is not supported (none or linear)")
    heads = int(need("attention.head_count"))
    size = int(need("embedding_length"))
    config = {"num_layers": int(need("block_count")), "size": size, "ffn_size": int(need("feed_forward_length")),
              "num_heads": heads, "num_kv_heads": int(_field(reader, f"{arch}.attention.head_count_kv", heads)),
              "head_size": int(_field(reader, f"{arch}.attention.key_length",
                                      _field(reader, f"{arch}.rope.dimension_count", size // heads))),
              "rope_base": float(_field(reader, f"{arch}.rope.freq_base", llama.DEFAULT_ROPE_BASE)),
              "rope_scale": float(_field(reader, f"{arch}.rope.scaling.factor", 1.0)) if scaling == "linear" else 1.0,
              "norm_epsilon": float(need("attention.layer_norm_rms_epsilon")),
              "max_positions": int(need("context_length"))}
    rotary = int(_field(reader, f"{arch}.rope.dimension_count", config["head_size"]))
    if rotary != config["head_size"]:
        raise UserError(f"{path}: rotary dimension {rotary} is not the head size {config['head_size']} (partial "
                        "rotary positions are not supported for llama)")
    tensors = {}
    for t in reader.tensors:
        try:
            tensors[t.name] = np.asarray(gguf.dequantize(t.data, t.tensor_type), np.float32)
        except (NotImplementedError, ValueError) as err:
            raise UserError(f"{path}: tensor {t.name} of type {t.tensor_type.name} cannot be dequantised "
                            f"({err})") from None
    # Llama 3.1's rope scaling is stored as per-frequency factors (rope_freqs), with no rope.scaling.type: a file
    # with factors other than 1 would load with the wrong rotary frequencies
    factors = tensors.pop("rope_freqs.weight", None)
    if factors is not None and not np.all(factors == 1):
        raise UserError(f"{path}: per-frequency rope factors (rope_freqs, Llama 3.1's rope scaling) are not supported")
    tokenizer = {key: _field(reader, key) for key in reader.fields if key.startswith("tokenizer.ggml.")}
    config["vocab_size"] = tensors["token_embd.weight"].shape[0] if "token_embd.weight" in tensors else None
    return config, tensors, tokenizer


def convert(config, tensors, where):
    """(weights.npz arrays of LlamaLM, [source names used]) from read_gguf's tensors; UserError naming a missing or
    misshapen tensor."""
    def get(name, shape=None):
        if name not in tensors:
            raise UserError(f"{where}: no tensor {name}")
        a = tensors[name]
        if shape is not None and a.shape != shape:
            raise UserError(f"{where}: tensor {name} has shape {a.shape}, expected {shape}")
        return a

    d, f, k = config["size"], config["ffn_size"], config["head_size"]
    heads, kv_heads = config["num_heads"], config["num_kv_heads"]
    embedding = get("token_embd.weight")
    v = embedding.shape[0]
    if embedding.shape[1] != d:
        raise UserError(f"{where}: token_embd.weight has width {embedding.shape[1]}, embedding_length is {d}")
    arrays, used = {"embedding": embedding}, ["token_embd.weight"]
    shapes = {"attn_q": (heads * k, d), "attn_k": (kv_heads * k, d), "attn_v": (kv_heads * k, d),
              "attn_output": (d, heads * k), "ffn_gate": (f, d), "ffn_up": (f, d), "ffn_down": (d, f),
              "attn_norm": (d,), "ffn_norm": (d,)}
    for layer in range(config["num_layers"]):
        for source, ours in BLOCK_MAP.items():
            name = f"blk.{layer}.{source}.weight"
            a = get(name, shapes[source])
            if source == "attn_q":
                a = unpermute(a, heads)
            elif source == "attn_k":
                a = unpermute(a, kv_heads)
            arrays[f"layer{layer}/{ours}"] = a if source in NORMS else a.T
            used.append(name)
    arrays["final_gain"] = get("output_norm.weight", (d,))
    used.append("output_norm.weight")
    tied = "output.weight" not in tensors
    if not tied:
        arrays["softmax_w"] = get("output.weight", (v, d)).T
        used.append("output.weight")
    arrays.update({"cell_type": np.array(llama.CELL_TYPE), "forget_bias": np.array(0.0, np.float32),
                   "num_layers": np.array(config["num_layers"], np.int64), "tied": np.array(tied)})
    for key in ("num_heads", "num_kv_heads", "head_size", "max_positions"):
        arrays[key] = np.array(config[key], np.int64)
    for key in ("rope_base", "rope_scale", "norm_epsilon"):
        arrays[key] = np.array(config[key], np.float64)
    extra = sorted(set(tensors) - set(used))
    if extra:
        raise UserError(f"{where}: tensors this reader does not map: {', '.join(extra[:5])}"
                        + (f" and {len(extra) - 5} more" if len(extra) > 5 else ""))
    return {name: (np.ascontiguousarray(a) if a.ndim else a) for name, a in arrays.items()}, used
