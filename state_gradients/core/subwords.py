"""A pretrained model's own subword tokenizer, and which word of the text every token belongs to."""
# Shape letters: N tokens, W words.
#
# The tokenizer is the checkpoint's: its tokenizer.json (Hugging Face folders) or the tokenizer.ggml.*
# fields of a GGUF file (model gpt2: byte-level BPE, its vocabulary and merges in the file), built
# with the `tokenizers` library. Words are the text's whitespace-separated words (the unit of the
# word-level classes: POS in context, frequency bins); the text is encoded as the words joined by
# single spaces, and a token belongs to the word its first character falls in (byte-level BPE puts a
# word's leading space on its first token; offsets exclude it).
import bisect

import numpy as np

from state_gradients.core.errors import UserError

CONTROL = 3     # tokenizer.ggml.token_type of special (control) tokens
# llama.cpp pre-tokenisers whose splitting is GPT-2's byte-level regex, checked against transformers' own
# tokenizer of the file (tests/unit/core/test_subwords.py); others (llama-bpe, qwen2, ...) split digits and
# contractions otherwise and are refused
VERIFIED_PRE = ("smollm",)


def gguf_tokenizer(fields, where="GGUF file"):
    """tokenizers.Tokenizer of a GGUF file's tokenizer.ggml.* fields (a dict of their values); UserError for a
    tokenizer model other than byte-level BPE (gpt2)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    kind = fields.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise UserError(f"{where}: tokenizer.ggml.model {kind!r}; only byte-level BPE (gpt2) is read")
    pre = fields.get("tokenizer.ggml.pre", "default")
    if pre not in VERIFIED_PRE:
        raise UserError(f"{where}: tokenizer.ggml.pre {pre!r}: its pre-tokeniser is not known here (known: "
                        f"{', '.join(VERIFIED_PRE)}); give the checkpoint's tokenizer.json instead")
    tokens, merges = fields.get("tokenizer.ggml.tokens"), fields.get("tokenizer.ggml.merges")
    if not tokens or not merges:
        raise UserError(f"{where}: no tokenizer.ggml.tokens or tokenizer.ggml.merges")
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges]))
    # llama.cpp's gpt2-family pre-tokenisers split as GPT-2's regex does; as transformers reads them
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    kinds = fields.get("tokenizer.ggml.token_type") or []
    tokenizer.add_special_tokens([AddedToken(tokens[i], special=True) for i, t in enumerate(kinds) if t == CONTROL])
    return tokenizer


def file_tokenizer(path):
    """tokenizers.Tokenizer of a tokenizer.json; UserError naming the file when it cannot be read."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(path)
    except Exception as err:      # the library raises its own exception types for a missing or malformed file
        raise UserError(f"{path}: not a readable tokenizer.json ({str(err).splitlines()[0]})") from None


def encode_words(tokenizer, words):
    """(ids [N], word [N]: the index of the word each token belongs to) of words [W] joined by single spaces;
    every word has at least one token, in order."""
    text = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]).tolist()
    encoding = tokenizer.encode(text, add_special_tokens=False)
    ids = np.array(encoding.ids, np.int64)
    # a token's first character that is not the space before its word (offsets may include that space)
    first = [start + (start < end - 1 and text[start] == " ") for start, end in encoding.offsets]
    word = np.array([bisect.bisect_right(starts, at) - 1 for at in first], np.int64)
    last = np.array([bisect.bisect_right(starts, end - 1) - 1 for _, end in encoding.offsets], np.int64)
    if np.any(last != word):
        raise UserError("a token spans two words (the tokenizer merges across the space): no word-level map")
    if len(words) and (word[0] != 0 or np.any(np.diff(word) < 0) or len(np.unique(word)) != len(words)):
        raise UserError("the tokenizer's offsets do not give every word its own tokens in order")
    return ids, word
