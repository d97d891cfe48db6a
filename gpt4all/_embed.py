"""Embed4All.embed's semantics, exactly as upstream gpt4all defines them (LLamaModel::embed/embedInternal).

From texts to vectors:

1. Task prefix.  Upstream keeps a table keyed by the GGUF's ``general.name`` (not the file name):
   nomic-embed-text wants "search_document: ..." / "search_query: ..." etc., MiniLM wants nothing.
   ``prefix=None`` picks the model's document prefix; an unknown model then needs an explicit one.
2. Tokens.  Each text gets a leading space if it lacks one and is tokenised without CLS/SEP; an empty
   result is replaced by the tokens of a fixed placeholder.  The prefix is tokenised as
   ``prefix + ':'`` with CLS (its SEP dropped); an empty prefix is just CLS.
3. Chunks.  Each chunk is ``prefix_tokens + window + [SEP]``; windows are ``max_len`` tokens with an
   8-token overlap, where max_len = min(n_ctx_train, n_batch) - (len(prefix_tokens) + 1).
   'truncate' keeps only the first window, 'mean' all of them.
4. Model.  Chunks are packed into forward passes of up to n_batch (= n_ctx) tokens; the engine returns
   one mean-pooled vector per chunk.
5. Per chunk, in float64: Matryoshka models (nomic-embed-text-v1.5) are layer-normalised first
   (mean removed, divided by sqrt(unbiased variance + 1e-5)) and truncated to ``dimensionality``;
   then every chunk is L2-normalised and added to its text's sum.
6. Per text: divide by the chunk count, truncate to ``dimensionality``, L2-normalise again.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

ATLAS_MAX_TOKENS = 8192
CHUNK_OVERLAP = 8                                  # tokens shared by neighbouring windows, as Atlas does
EMPTY_PLACEHOLDER = "24df574ea1c998de59d5be15e769658e"   # MD5 of "nomic empty": stands in for an empty text


@dataclass(frozen=True)
class EmbedSpec:
    """What upstream knows about one family of embedding models."""
    doc_prefix: str
    query_prefix: str
    other_prefixes: tuple[str, ...] = ()
    matryoshka: bool = False                       # may be truncated to fewer dimensions
    recommended_dims: Optional[str] = None

    def valid_prefixes(self) -> set[str]:
        return {self.doc_prefix, self.query_prefix, *self.other_prefixes}


_NOPREFIX = EmbedSpec("", "")
_NOMIC = EmbedSpec("search_document", "search_query", ("clustering", "classification"))
_NOMIC_1_5 = EmbedSpec("search_document", "search_query", ("clustering", "classification"),
                       matryoshka=True, recommended_dims="[768, 512, 384, 256, 128]")
_LLM_EMBEDDER = EmbedSpec("Represent this document for retrieval",
                          "Represent this query for retrieving relevant documents")
_BGE = EmbedSpec("", "Represent this sentence for searching relevant passages")
_E5 = EmbedSpec("passage", "query")
_E5_MISTRAL = EmbedSpec("", "Instruct: Given a query, retrieve relevant passages that answer the query\nQuery")

# general.name -> spec (upstream's table, group by group)
SPECS: dict[str, EmbedSpec] = {}
for _spec, _names in (
    (_NOPREFIX, ("all-MiniLM-L6-v1", "all-MiniLM-L12-v1", "all-MiniLM-L6-v2", "all-MiniLM-L12-v2")),
    (_NOMIC, ("nomic-embed-text-v1", "nomic-embed-text-v1-ablated", "nomic-embed-text-v1-unsupervised")),
    (_NOMIC_1_5, ("nomic-embed-text-v1.5",)),
    (_LLM_EMBEDDER, ("llm-embedder",)),
    (_BGE, ("bge-small-en", "bge-base-en", "bge-large-en", "bge-small-en-v1.5", "bge-base-en-v1.5",
            "bge-large-en-v1.5")),
    (_E5, ("e5-small", "e5-base", "e5-large", "e5-small-unsupervised", "e5-base-unsupervised",
           "e5-large-unsupervised", "e5-small-v2", "e5-base-v2", "e5-large-v2")),
    (_E5_MISTRAL, ("e5-mistral-7b-instruct", "multilingual-e5-small", "multilingual-e5-base",
                   "multilingual-e5-large", "multilingual-e5-large-instruct")),
):
    for _n in _names:
        SPECS[_n] = _spec


class EmbedError(RuntimeError):
    """An error upstream's backend reports; the SDK shows it as 'Failed to generate embeddings: ...'."""

    def __init__(self, msg: str):
        super().__init__(f"Failed to generate embeddings: {msg}")


@dataclass
class _Chunk:
    text_index: int
    tokens: list[int] = field(default_factory=list)


def _tokenize(tok, text: str, with_cls: bool, wordpiece: bool) -> list[int]:
    """Upstream's tokenize(): leading space, CLS only when asked, and for WordPiece vocabs no SEP."""
    if text and text[0] != " ":
        text = " " + text
    ids = tok.encode(text, add_special=with_cls, parse_special=False)
    if ids and wordpiece and with_cls and tok.eos_id is not None and ids[-1] == tok.eos_id:
        ids = ids[:-1]      # the SEP is appended per chunk instead
    return ids


def _resolve(llm, prefix: Optional[str], dimensionality: int) -> tuple[Optional[EmbedSpec], str, int]:
    """Check dimensionality and prefix against the model's spec; returns (spec, prefix, dimensionality)."""
    name, n_embd = llm.name, llm.n_embd
    spec = SPECS.get(name)
    if spec is None:
        print(f"embed: warning: unknown model {name}", file=sys.stderr)
    if dimensionality < 0:
        dimensionality = n_embd
    elif dimensionality != n_embd and (spec is not None or dimensionality > n_embd):
        msg = f"unsupported dimensionality {dimensionality} for model {name}"
        if spec is None or not spec.matryoshka:
            raise EmbedError(f"{msg} (supported: {n_embd})")
        if dimensionality == 0 or dimensionality > n_embd:
            raise EmbedError(f"{msg} (recommended: {spec.recommended_dims})")
    if prefix is None:
        if spec is None:
            raise EmbedError(f"unknown model {name}, specify a prefix if applicable or an empty string")
        prefix = spec.doc_prefix
    elif spec is not None and prefix not in spec.valid_prefixes():
        raise EmbedError(f'"{prefix}" is not a valid task type for model {name}')
    return spec, prefix, dimensionality


def batch_sizes(chunks: list[list[int]], n_batch: int) -> list[int]:
    """Tokens in each forward pass when chunks are packed greedily into passes of at most n_batch."""
    sizes, used = [], 0
    for c in chunks:
        if used + len(c) > n_batch:
            sizes.append(used)
            used = 0
        used += len(c)
    sizes.append(used)
    return sizes


def embed(llm, texts: list[str], *, prefix: Optional[str] = None, dimensionality: Optional[int] = None,
          long_text_mode: str = "mean", return_dict: bool = False, atlas: bool = False,
          cancel_cb: Optional[Callable[[list[int], str], bool]] = None) -> Any:
    """Normalised embeddings of ``texts`` (a list of str) by the embedding model ``llm`` (engine.LLM).

    Returns a list of vectors (lists of float), or {'embeddings': ..., 'n_prompt_tokens': N} with
    return_dict, where N counts the text tokens of every chunk (overlaps twice; prefix and SEP not).
    """
    from .gpt4all import CancellationError

    if not texts:
        raise ValueError("text must not be None or empty")
    if long_text_mode not in ("mean", "truncate"):
        raise ValueError(f"Long text mode must be one of 'mean' or 'truncate', got {long_text_mode!r}")
    do_mean = long_text_mode == "mean"
    if not getattr(llm, "is_embedding", False):
        raise EmbedError(f"not an embedding model: {llm.name}")
    spec, prefix, dim = _resolve(llm, prefix, -1 if dimensionality is None else int(dimensionality))
    tok, n_embd = llm.tokenizer, llm.n_embd
    wordpiece = llm.metadata.get("tokenizer.ggml.model") == "bert"

    # 2. tokens of each text (no CLS/SEP)
    inputs: list[list[int]] = []
    for i, text in enumerate(texts):
        ids = _tokenize(tok, text, with_cls=False, wordpiece=wordpiece)
        if atlas and len(ids) > ATLAS_MAX_TOKENS:
            if do_mean:
                raise EmbedError(f"length of text at index {i} is {len(ids)} tokens which exceeds limit of "
                                 f"{ATLAS_MAX_TOKENS}")
            ids = ids[:ATLAS_MAX_TOKENS]
        elif not ids:
            if not atlas or text:
                print(f"embed: warning: chunking tokenized text at index {i} into zero tokens", file=sys.stderr)
            ids = _tokenize(tok, EMPTY_PLACEHOLDER, with_cls=False, wordpiece=wordpiece)
        inputs.append(ids)

    prefix_tokens = [tok.bos_id] if prefix == "" else _tokenize(tok, prefix + ":", with_cls=True,
                                                                wordpiece=wordpiece)
    eos = tok.eos_id

    # 3. chunks: prefix + window + SEP, windows overlapping by CHUNK_OVERLAP tokens
    n_batch = llm.n_ctx                       # upstream: n_batch = n_ubatch = n_ctx for embedding models
    max_len = min(llm.n_ctx_train, n_batch) - (len(prefix_tokens) + int(wordpiece))
    if max_len <= CHUNK_OVERLAP:
        raise EmbedError(f"max chunk length of {max_len} is smaller than overlap of {CHUNK_OVERLAP} tokens")
    chunks: list[_Chunk] = []
    n_prompt_tokens = 0
    for i, ids in enumerate(inputs):
        start = 0
        while start < len(ids):
            end = min(start + max_len, len(ids))
            chunks.append(_Chunk(i, prefix_tokens + ids[start:end] + [eos]))
            n_prompt_tokens += end - start
            if not do_mean or end == len(ids):
                break
            start = end - CHUNK_OVERLAP

    if cancel_cb is not None and cancel_cb(batch_sizes([c.tokens for c in chunks], n_batch), llm.backend):
        raise CancellationError("operation was canceled")

    # 4. one pooled vector per chunk (the engine packs chunks into forward passes)
    try:
        pooled = np.asarray(llm.embed([c.tokens for c in chunks]), dtype=np.float64)   # [n_chunks, n_embd]
    except (ValueError, RuntimeError) as e:
        raise EmbedError(str(e)) from e

    # 5. per chunk: (Matryoshka layer norm + truncation), L2 normalisation, summed per text
    sums = np.zeros((len(texts), n_embd), dtype=np.float64)
    counts = np.zeros(len(texts), dtype=np.int64)
    for c, v in zip(chunks, pooled):
        if spec is not None and spec.matryoshka:
            v = v - v.mean()
            var = (v @ v) / (n_embd - 1)           # unbiased (Bessel's correction)
            v = v[:dim] / np.sqrt(var + 1e-5)
        v = v / max(np.linalg.norm(v), 1e-12)
        sums[c.text_index, :len(v)] += v
        counts[c.text_index] += 1

    # 6. per text: mean over chunks, truncation, L2 normalisation
    out = sums[:, :dim] / counts[:, None]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    embeddings = out.tolist()
    if return_dict:
        return {"embeddings": embeddings, "n_prompt_tokens": n_prompt_tokens}
    return embeddings
