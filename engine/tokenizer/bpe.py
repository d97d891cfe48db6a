"""Byte-level BPE (``tokenizer.ggml.model`` = 'gpt2'), as llama.cpp does it.

1. The pre-tokenizer (pretokenize.py) cuts the text into words.
2. Each word's UTF-8 bytes are written with GPT-2's byte-to-unicode alphabet: the 188 printable
   bytes stand for themselves, the other 68 (controls, space, ...) are moved to U+0100 onwards,
   so " the" becomes "Ġthe". Vocabulary and merges are written in this alphabet.
3. Starting from single characters, the adjacent pair with the lowest merge rank (its line in
   ``tokenizer.ggml.merges``; leftmost on a tie) is merged, again and again, until no adjacent
   pair has a rank. Each resulting symbol is a token.

Some pre-tokenizers (Llama 3, Tekken) "ignore merges": a word that is already a whole token is
emitted as that token directly.
"""
from __future__ import annotations

import functools
import heapq


@functools.lru_cache(maxsize=1)
def byte_to_unicode() -> tuple[str, ...]:
    """GPT-2's byte -> character table (256 entries)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:                        # not printable: shift into U+0100.. in byte order
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


@functools.lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in enumerate(byte_to_unicode())}


def byte_encode(word: str) -> str:
    table = byte_to_unicode()
    return "".join(table[b] for b in word.encode("utf-8"))


def parse_merges(merges) -> dict[tuple[str, str], int]:
    """'first second' lines -> {(first, second): rank}. The split is at the first space after
    position 0, so a merge whose first part is itself a space still parses (llama.cpp does the same)."""
    ranks = {}
    for rank, line in enumerate(merges):
        pos = line.find(" ", 1)
        if pos >= 0:
            ranks[(line[:pos], line[pos + 1:])] = rank
    return ranks


def merge_word(word: str, ranks: dict) -> list[str]:
    """BPE-merge one byte-encoded word into its symbols (lowest rank first, leftmost on ties)."""
    syms = list(word)
    n = len(syms)
    if n < 2:
        return syms
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prev = list(range(-1, n - 1))
    heap: list[tuple] = []   # (rank, left index, right index, merged text)

    def try_pair(left: int, right: int) -> None:
        if left >= 0 and right >= 0:
            rank = ranks.get((syms[left], syms[right]))
            if rank is not None:
                heapq.heappush(heap, (rank, left, right, syms[left] + syms[right]))

    for i in range(n - 1):
        try_pair(i, i + 1)
    while heap:
        _, left, right, text = heapq.heappop(heap)
        if not syms[left] or not syms[right] or syms[left] + syms[right] != text:
            continue                         # stale: a side changed since this pair was queued
        syms[left], syms[right] = text, ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        try_pair(prev[left], left)
        try_pair(left, nxt[left])
    return [s for s in syms if s]


class BpeEncoder:
    """Encodes raw-text fragments; keeps a per-word cache because prompts repeat words a lot."""

    def __init__(self, token_to_id: dict, merges, pre: str, ignore_merges: bool):
        from . import pretokenize
        self._split = functools.partial(pretokenize.split, name=pre)
        pretokenize._compiled(pre)           # fail early on an unknown pre-tokenizer name
        self._token_to_id = token_to_id
        self._ranks = parse_merges(merges)
        self._ignore_merges = ignore_merges
        self._cache: dict[str, list[int]] = {}

    def _word_ids(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        encoded = byte_encode(word)
        t2i = self._token_to_id
        if self._ignore_merges and encoded in t2i:
            ids = [t2i[encoded]]
        else:
            ids = []
            for sym in merge_word(encoded, self._ranks):
                tok = t2i.get(sym)
                if tok is not None:
                    ids.append(tok)
                else:    # not in the vocabulary: llama.cpp tries each byte of the symbol as a token
                    ids.extend(t2i[chr(b)] for b in sym.encode("utf-8") if chr(b) in t2i and b < 0x80)
        if len(self._cache) < 100_000:
            self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for word in self._split(text):
            out.extend(self._word_ids(word))
        return out
