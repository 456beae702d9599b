"""sg-import --from gpt2: a GPT-2-layout folder (config.json + model.safetensors) becomes a checked Transformer import."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from aux_scripts.import_model import main as import_main
from state_gradients.files.saved_model import SavedModel
from state_gradients.importing import gpt2
from tests.main_runs import number, run

V, D, L, A, P = 20, 8, 2, 2, 16
WORDS = ["<eos>", "<unk>"] + [f"w{i}" for i in range(V - 2)]


def write_checkpoint(folder, *, prefix="transformer.", config_changes=None, drop=None, seed=0):
    """A GPT-2 checkpoint as transformers saves GPT2LMHeadModel (tied head, Conv1D weights [in, out]), random weights."""
    rng = np.random.default_rng(seed)
    arrays = {"wte.weight": rng.normal(0, 0.3, (V, D)), "wpe.weight": rng.normal(0, 0.3, (P, D)),
              "ln_f.weight": 1 + rng.normal(0, 0.2, D), "ln_f.bias": rng.normal(0, 0.2, D)}
    for layer in range(L):
        shapes = {"ln_1.weight": (D,), "ln_1.bias": (D,), "attn.c_attn.weight": (D, 3 * D), "attn.c_attn.bias": (3 * D,),
                  "attn.c_proj.weight": (D, D), "attn.c_proj.bias": (D,), "ln_2.weight": (D,), "ln_2.bias": (D,),
                  "mlp.c_fc.weight": (D, 4 * D), "mlp.c_fc.bias": (4 * D,), "mlp.c_proj.weight": (4 * D, D),
                  "mlp.c_proj.bias": (D,)}
        for name, shape in shapes.items():
            arrays[f"h.{layer}.{name}"] = rng.normal(1.0 if name.startswith("ln") and "weight" in name else 0.0,
                                                     0.3, shape)
        arrays[f"h.{layer}.attn.bias"] = np.tril(np.ones((P, P)))[None, None]   # an older checkpoint's mask buffer
    for name in drop or ():
        del arrays[name]
    folder.mkdir(parents=True, exist_ok=True)
    save_file({prefix + k: v.astype(np.float32) for k, v in arrays.items()}, str(folder / "model.safetensors"))
    config = {"model_type": "gpt2", "n_layer": L, "n_head": A, "n_embd": D, "n_positions": P, "vocab_size": V,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, **(config_changes or {})}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(WORDS)}))
    return folder


def test_import_is_checked_and_usable_by_main(tmp_path, capsys):
    """The self-check (GPT-2's equations on the source arrays vs the converted model, float64) passes; a
    --reference of float32 outputs passes at 1e-4; main.py evaluates the import with its import.config."""
    source = write_checkpoint(tmp_path / "gpt2")
    config, arrays = gpt2.read_checkpoint(str(source))
    ids = np.random.default_rng(3).integers(0, V, (2, 7))
    hidden, logits = gpt2.gpt2_forward(config, arrays, ids)
    np.savez(tmp_path / "ref.npz", ids=ids, logits=logits.astype(np.float32), hidden_l2=hidden[2].astype(np.float32),
             hidden_l1=hidden[1].astype(np.float32))
    out = tmp_path / "imported"
    code = import_main(["--from", "gpt2", str(source), "--vocab", str(source / "vocab.json"), "--out", str(out),
                        "--eos-token", "<eos>", "--unk-token", "<unk>", "--reference", str(tmp_path / "ref.npz")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "import_report.json").read_text())
    assert report["passed"] and len(report["checks"]) == 5
    assert all(c["error"] < 1e-12 for c in report["checks"] if c["check"].startswith("self-check"))
    assert report["ignored"] == []          # the mask buffers are not weights
    model = SavedModel(str(out)).load()
    assert (model.num_layers, model.num_heads, model.size, model.input_kernel) == (L, A, D, None)

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    for split in ("train", "valid", "test"):
        (data / f"{split}.txt").write_text("\n".join(" ".join(rng.choice(WORDS[2:], 7)) for _ in range(12)) + "\n")
    cfg = tmp_path / "use.config"
    cfg.write_text((out / "import.config").read_text() + f"data_path {data}\nlog_dir {tmp_path / 'logs'}\n"
                   "num_steps 8\nbatch_size 2\n")
    code, printed, err = run(capsys, "--config", cfg, "--notrain", "--notest")
    assert code == 0, err
    assert number(printed, "Valid Perplexity:") > 1


@pytest.mark.parametrize("changes,drop,message", [
    (dict(activation_function="gelu"), None, "tanh form"),
    (dict(layer_norm_epsilon=1e-6), None, "layer_norm_epsilon"),
    (dict(scale_attn_by_inverse_layer_idx=True), None, "scale_attn_by_inverse_layer_idx"),
    (dict(n_embd=12), None, "config.json implies"),
    (None, ["h.1.mlp.c_fc.bias"], "has no h.1.mlp.c_fc.bias"),
])
def test_what_cannot_be_imported_is_named(tmp_path, capsys, changes, drop, message):
    source = write_checkpoint(tmp_path / "gpt2", config_changes=changes, drop=drop)
    code = import_main(["--from", "gpt2", str(source), "--vocab", str(source / "vocab.json"), "--out",
                        str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "weights.npz").exists()


def test_without_prefix_and_with_an_untied_head(tmp_path):
    """GPT2Model-style names (no 'transformer.') and tie_word_embeddings False with its own lm_head.weight."""
    source = write_checkpoint(tmp_path / "gpt2", prefix="", config_changes=dict(tie_word_embeddings=False))
    config, arrays = gpt2.read_checkpoint(str(source))
    arrays["lm_head.weight"] = np.random.default_rng(9).normal(0, 0.3, (V, D))
    converted, _, _ = gpt2.convert_arrays(config, arrays, "test")
    np.testing.assert_array_equal(converted["softmax_w"], arrays["lm_head.weight"].T)
    SavedModel(str(tmp_path / "m")).write_arrays(converted)
    assert all(r["passed"] for r in gpt2.check_conversion(config, arrays, str(tmp_path / "m" / "weights.npz")))
