"""Tokenizers built from GGUF metadata, token for token equal to llama.cpp's.

    tok = engine.tokenizer.from_gguf(llm.metadata)
    ids = tok.encode("<|im_start|>user\\nHi<|im_end|>", parse_special=True)
    text = tok.decode(ids)

Modules, one concept each:
    vocab.py        the Tokenizer: vocabulary, special tokens, BOS/EOS, bytes of a token
    spm.py          SentencePiece-style score-driven merging (tokenizer.ggml.model 'llama')
    bpe.py          byte-level BPE with merge ranks ('gpt2')
    pretokenize.py  the regexes that cut text into words before BPE (tokenizer.ggml.pre)
    wordpiece.py    BERT's WordPiece ('bert')
    streaming.py    detokenising a stream without emitting half a UTF-8 character
    gguf_meta.py    reading only a GGUF file's metadata, fast
"""
from __future__ import annotations

from collections import OrderedDict

from .streaming import Streamer
from .vocab import Tokenizer

__all__ = ["Tokenizer", "Streamer", "from_gguf", "from_gguf_file"]

# One Tokenizer per metadata object: engine.load, the SDK and the tests may all ask for it.
# The cache keeps the metadata alive, so its id() cannot be reused while cached.
_CACHE: OrderedDict[int, tuple[dict, Tokenizer]] = OrderedDict()
_CACHE_SIZE = 4


def from_gguf(metadata: dict) -> Tokenizer:
    """The Tokenizer described by a GGUF metadata dict (``tokenizer.ggml.*`` keys)."""
    hit = _CACHE.get(id(metadata))
    if hit is not None and hit[0] is metadata:
        _CACHE.move_to_end(id(metadata))
        return hit[1]
    tok = Tokenizer(metadata)
    _CACHE[id(metadata)] = (metadata, tok)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return tok


def from_gguf_file(path) -> Tokenizer:
    """A Tokenizer straight from a .gguf file, reading only its metadata (no tensors)."""
    from .gguf_meta import read_metadata
    return Tokenizer(read_metadata(path))
