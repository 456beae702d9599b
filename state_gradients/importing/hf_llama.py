"""Convert a Hugging Face Llama folder (config.json + model.safetensors, model_type llama) to LlamaLM's arrays."""
# Shape letters: V vocabulary, D model size, F feed-forward size, A query heads, G key/value heads,
# K head size.
#
# Hugging Face's LlamaForCausalLM state dict (nn.Linear weights [out, in], so transposed into this
# project's kernels [in, out]); its rotary layout is the one models/llama.py computes, so nothing is
# permuted (unlike a GGUF file, importing/gguf_llama.py):
#
#   model.embed_tokens [V, D] -> embedding            model.layers.{l}.input_layernorm -> layer{l}/attn_norm
#   self_attn.{q,k,v,o}_proj -> {q,k,v,o}_kernel      post_attention_layernorm -> mlp_norm
#   mlp.{gate,up,down}_proj -> {gate,up,down}_kernel   model.norm -> final_gain
#   lm_head [V, D] -> softmax_w (absent or tie_word_embeddings: tied to the embedding)
import json
import os

import numpy as np

from state_gradients.core import fileio
from state_gradients.core.errors import UserError
from state_gradients.models import llama

CONFIG, WEIGHTS = "config.json", "model.safetensors"
BLOCK_MAP = {"input_layernorm": "attn_norm", "self_attn.q_proj": "q_kernel", "self_attn.k_proj": "k_kernel",
             "self_attn.v_proj": "v_kernel", "self_attn.o_proj": "o_kernel", "post_attention_layernorm": "mlp_norm",
             "mlp.gate_proj": "gate_kernel", "mlp.up_proj": "up_kernel", "mlp.down_proj": "down_kernel"}


def read_folder(directory):
    """(config.json as a dict, {name: float32 array} of model.safetensors) of a Hugging Face folder."""
    for name in (CONFIG, WEIGHTS):
        if not os.path.isfile(os.path.join(directory, name)):
            raise UserError(f"{directory} has no {name} (a Hugging Face folder has {CONFIG} and {WEIGHTS})")
    try:
        config = json.loads(fileio.read_text(os.path.join(directory, CONFIG), "Hugging Face config"))
    except json.JSONDecodeError as err:
        raise UserError(f"{os.path.join(directory, CONFIG)}: not valid JSON ({err})") from None
    return config, read_safetensors(os.path.join(directory, WEIGHTS))


SAFETENSORS_TYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_safetensors(path):
    """{name: float32 array} of a safetensors file, bfloat16 included (numpy has no such type, and
    safetensors.numpy refuses it: its bits are the high half of a float32's); UserError naming the file."""
    import json as _json

    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = _json.loads(handle.read(length))
            data = handle.read()
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable safetensors file ({err})") from None
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        kind = SAFETENSORS_TYPES.get(info.get("dtype"))
        if kind is None:
            raise UserError(f"{path}: tensor {name} has dtype {info.get('dtype')}; readable: "
                            f"{', '.join(SAFETENSORS_TYPES)}")
        start, end = info["data_offsets"]
        a = np.frombuffer(data[start:end], kind).reshape(info["shape"])
        out[name] = ((a.astype(np.uint32) << 16).view(np.float32) if info["dtype"] == "BF16"
                     else a.astype(np.float32))
    return out


def model_shape(config, where):
    """LlamaLM's description from a llama config.json (rope base and scaling from rope_parameters, transformers 5,
    or rope_theta / rope_scaling before it); UserError for what models/llama.py does not compute."""
    if config.get("model_type") != "llama":
        raise UserError(f"{where}: model_type {config.get('model_type')!r}, expected llama")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key):
            raise UserError(f"{where}: {key} true is not computed by this project's Llama block")
    if config.get("hidden_act", "silu") != "silu":
        raise UserError(f"{where}: hidden_act {config['hidden_act']!r}; the Llama block here is SiLU-gated")
    rope = dict(config.get("rope_parameters") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", llama.DEFAULT_ROPE_BASE))
    scaling = config.get("rope_scaling") or {}
    kind = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if kind not in ("default", "linear"):
        raise UserError(f"{where}: rope type {kind!r} is not supported (default or linear)")
    factor = float(rope.get("factor", scaling.get("factor", 1.0))) if kind == "linear" else 1.0
    try:
        heads, size = int(config["num_attention_heads"]), int(config["hidden_size"])
        return {"num_layers": int(config["num_hidden_layers"]), "size": size,
                "ffn_size": int(config["intermediate_size"]), "num_heads": heads,
                "num_kv_heads": int(config.get("num_key_value_heads") or heads),
                "head_size": int(config.get("head_dim") or size // heads), "rope_base": float(rope["rope_theta"]),
                "rope_scale": factor, "norm_epsilon": float(config.get("rms_norm_eps", llama.DEFAULT_EPSILON)),
                "max_positions": int(config.get("max_position_embeddings", 2048)),
                "tied": bool(config.get("tie_word_embeddings", False))}
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{where}: a required llama setting is missing or not a number ({err})") from None


def convert(config, arrays, where):
    """(LlamaLM's weights.npz arrays, [source names used]) of a llama folder's config and arrays."""
    shape = model_shape(config, where)
    d, f, k = shape["size"], shape["ffn_size"], shape["head_size"]
    q, kv = shape["num_heads"] * k, shape["num_kv_heads"] * k
    shapes = {"input_layernorm": (d,), "post_attention_layernorm": (d,), "self_attn.q_proj": (q, d),
              "self_attn.k_proj": (kv, d), "self_attn.v_proj": (kv, d), "self_attn.o_proj": (d, q),
              "mlp.gate_proj": (f, d), "mlp.up_proj": (f, d), "mlp.down_proj": (d, f)}
    used = []

    def get(name, expected=None):
        if name not in arrays:
            raise UserError(f"{where}: {WEIGHTS} has no {name}")
        if expected is not None and arrays[name].shape != expected:
            raise UserError(f"{where}: {name} has shape {arrays[name].shape}, config.json implies {expected}")
        used.append(name)
        return arrays[name]

    out = {"embedding": get("model.embed_tokens.weight")}
    vocab = out["embedding"].shape[0]
    for layer in range(shape["num_layers"]):
        for source, target in BLOCK_MAP.items():
            a = get(f"model.layers.{layer}.{source}.weight", shapes[source])
            out[f"layer{layer}/{target}"] = a if a.ndim == 1 else a.T
    out["final_gain"] = get("model.norm.weight", (d,))
    tied = shape["tied"] or "lm_head.weight" not in arrays
    if not tied:
        out["softmax_w"] = get("lm_head.weight", (vocab, d)).T
    out.update({"cell_type": np.array(llama.CELL_TYPE), "forget_bias": np.array(0.0),
                "num_layers": np.array(shape["num_layers"], np.int64), "tied": np.array(tied)})
    out.update({key: np.array(shape[key], np.int64) for key in ("num_heads", "num_kv_heads", "head_size",
                                                                 "max_positions")})
    out.update({key: np.array(shape[key], np.float64) for key in ("rope_base", "rope_scale", "norm_epsilon")})
    extra = sorted(set(arrays) - set(used) - ({"lm_head.weight"} if tied else set()))
    if extra:
        raise UserError(f"{where}: arrays this converter does not map: {', '.join(extra[:5])}")
    return {name: np.ascontiguousarray(a) if a.ndim else a for name, a in out.items()}, used
