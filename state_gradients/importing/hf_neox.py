"""Convert a Hugging Face GPT-NeoX folder (Pythia: config.json + model.safetensors, model_type gpt_neox) to NeoXLM's arrays."""
# Shape letters: V vocabulary, D model size, F feed-forward size, A heads, K head size.
#
# GPTNeoXForCausalLM's state dict (nn.Linear [out, in], transposed into kernels [in, out]). Its fused
# query_key_value [3D, D] interleaves the heads: output row h 3K + c K + i is component i of head
# h's query (c 0), key (1) or value (2); it is regrouped into this project's [q | k | v] columns.
#
#   gpt_neox.embed_in [V, D] -> embedding          gpt_neox.layers.{l}.input_layernorm -> ln1_gain, ln1_bias
#   attention.query_key_value -> qkv_kernel, qkv_bias (regrouped)   attention.dense -> proj_kernel, proj_bias
#   post_attention_layernorm -> ln2_gain, ln2_bias  mlp.dense_h_to_4h, dense_4h_to_h -> fc_*, out_*
#   gpt_neox.final_layer_norm -> final_gain, final_bias           embed_out [V, D] -> softmax_w
import numpy as np

from state_gradients.core.errors import UserError
from state_gradients.importing.hf_llama import WEIGHTS
from state_gradients.models import neox

BLOCK_MAP = {"input_layernorm.weight": "ln1_gain", "input_layernorm.bias": "ln1_bias",
             "attention.dense.weight": "proj_kernel", "attention.dense.bias": "proj_bias",
             "post_attention_layernorm.weight": "ln2_gain", "post_attention_layernorm.bias": "ln2_bias",
             "mlp.dense_h_to_4h.weight": "fc_kernel", "mlp.dense_h_to_4h.bias": "fc_bias",
             "mlp.dense_4h_to_h.weight": "out_kernel", "mlp.dense_4h_to_h.bias": "out_bias"}


def model_shape(config, where):
    """NeoXLM's description from a gpt_neox config.json; UserError for what models/neox.py does not compute."""
    if config.get("model_type") != "gpt_neox":
        raise UserError(f"{where}: model_type {config.get('model_type')!r}, expected gpt_neox")
    if config.get("hidden_act", "gelu") != "gelu":
        raise UserError(f"{where}: hidden_act {config['hidden_act']!r}; the GPT-NeoX block here uses exact GELU")
    rope = dict(config.get("rope_parameters") or {})
    scaling = config.get("rope_scaling") or {}
    if rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default"))) != "default":
        raise UserError(f"{where}: rope scaling is not supported for gpt_neox")
    try:
        heads, size = int(config["num_attention_heads"]), int(config["hidden_size"])
        # transformers' default rotary_pct is 0.25 (Pythia's)
        fraction = float(rope.get("partial_rotary_factor", config.get("rotary_pct", 0.25)))
        return {"num_layers": int(config["num_hidden_layers"]), "size": size, "num_heads": heads,
                "ffn_size": int(config["intermediate_size"]), "rotary_dims": int(size // heads * fraction),
                "rope_base": float(rope.get("rope_theta", config.get("rope_theta", config.get("rotary_emb_base",
                                                                                             10000)))),
                "norm_epsilon": float(config.get("layer_norm_eps", 1e-5)),
                "parallel_residual": bool(config.get("use_parallel_residual", True)),
                "max_positions": int(config.get("max_position_embeddings", 2048))}
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{where}: a required gpt_neox setting is missing or not a number ({err})") from None


def convert(config, arrays, where):
    """(NeoXLM's weights.npz arrays, [source names used]) of a gpt_neox folder's config and arrays."""
    shape = model_shape(config, where)
    d, f, heads = shape["size"], shape["ffn_size"], shape["num_heads"]
    k = d // heads
    used = []

    def get(name, expected):
        name = name if name in arrays else name.removeprefix("gpt_neox.")
        if name not in arrays:
            raise UserError(f"{where}: {WEIGHTS} has no {name}")
        if arrays[name].shape != expected:
            raise UserError(f"{where}: {name} has shape {arrays[name].shape}, config.json implies {expected}")
        used.append(name)
        return arrays[name]

    embedding = get("gpt_neox.embed_in.weight", (arrays.get("gpt_neox.embed_in.weight", np.zeros((0, d))).shape[0], d))
    out = {"embedding": embedding}
    shapes = {"fc_kernel": (f, d), "fc_bias": (f,), "out_kernel": (d, f), "proj_kernel": (d, d)}
    for layer in range(shape["num_layers"]):
        prefix = f"gpt_neox.layers.{layer}."
        w = get(prefix + "attention.query_key_value.weight", (3 * d, d)).reshape(heads, 3, k, d)
        b = get(prefix + "attention.query_key_value.bias", (3 * d,)).reshape(heads, 3, k)
        out[f"layer{layer}/qkv_kernel"] = np.concatenate([w[:, c].reshape(d, d) for c in range(3)], 0).T
        out[f"layer{layer}/qkv_bias"] = np.concatenate([b[:, c].reshape(d) for c in range(3)])
        for source, target in BLOCK_MAP.items():
            a = get(prefix + source, shapes.get(target, (d,)))
            out[f"layer{layer}/{target}"] = a.T if a.ndim == 2 else a
    out["final_gain"] = get("gpt_neox.final_layer_norm.weight", (d,))
    out["final_bias"] = get("gpt_neox.final_layer_norm.bias", (d,))
    out["softmax_w"] = get("embed_out.weight", (embedding.shape[0], d)).T
    out.update({"cell_type": np.array(neox.CELL_TYPE), "forget_bias": np.array(0.0),
                "num_layers": np.array(shape["num_layers"], np.int64), "num_heads": np.array(heads, np.int64),
                "rotary_dims": np.array(shape["rotary_dims"], np.int64), "rope_base": np.array(shape["rope_base"]),
                "norm_epsilon": np.array(shape["norm_epsilon"]),
                "parallel_residual": np.array(shape["parallel_residual"]),
                "max_positions": np.array(shape["max_positions"], np.int64)})
    # the rotary tables and causal masks some versions store as buffers carry no weights
    extra = sorted(n for n in set(arrays) - set(used) if not n.endswith((".attention.bias", ".attention.masked_bias",
                                                                          "rotary_emb.inv_freq")))
    if extra:
        raise UserError(f"{where}: arrays this converter does not map: {', '.join(extra[:5])}")
    return {name: np.ascontiguousarray(a) if a.ndim else a for name, a in out.items()}, used
