"""SentencePiece-style tokenisation (``tokenizer.ggml.model`` = 'llama'), as llama.cpp does it.

This is not SentencePiece's own unigram search: llama.cpp (``llm_tokenizer_spm_session``) does a
greedy *score-driven bigram merge*:

1. spaces become U+2581 "▁" (and a leading "▁" is added when the vocabulary asks for a space
   prefix); the text is split into single characters;
2. every adjacent pair whose concatenation is a vocabulary token is a candidate, ranked by that
   token's score (higher first; on a tie the leftmost pair);
3. the best candidate is merged into one symbol and the new pairs it forms with its neighbours
   become candidates; candidates that refer to symbols which changed meanwhile are stale and
   skipped;
4. when no candidate is left, each symbol is a token, or, if it is not (a character missing
   from the vocabulary), its UTF-8 bytes become the byte tokens ``<0xXX>`` ("byte fallback").

Gemma 3 uses this with 262,144 tokens and no space prefix.
"""
from __future__ import annotations

import heapq


def escape_spaces(text: str, add_space_prefix: bool) -> str:
    """SentencePiece writes spaces as '▁'; llama.cpp adds one in front when the model wants it."""
    return ("▁" if add_space_prefix else "") + text.replace(" ", "▁")


def encode(text: str, token_to_id: dict, scores, byte_token) -> list[int]:
    """Token ids for already-escaped ``text``; ``byte_token(b)`` gives the id of byte b."""
    if not text:
        return []
    n = len(text)
    # Symbol i covers text[start[i]:end[i]]; prev/next link the live symbols ([n] each).
    start = list(range(n))
    end = list(range(1, n + 1))
    prev = list(range(-1, n - 1))
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    heap: list[tuple] = []   # (-score, left index, right index, merged length)

    def try_pair(left: int, right: int) -> None:
        if left < 0 or right < 0:
            return
        tok = token_to_id.get(text[start[left]:end[right]])
        if tok is not None:
            heapq.heappush(heap, (-scores[tok], left, right, end[right] - start[left]))

    for i in range(n - 1):
        try_pair(i, i + 1)

    while heap:
        _, left, right, size = heapq.heappop(heap)
        # stale if either side was merged away or grew since the candidate was made
        if end[left] == start[left] or end[right] == start[right] \
                or (end[left] - start[left]) + (end[right] - start[right]) != size:
            continue
        end[left] = end[right]           # the right symbol joins the left one
        end[right] = start[right]        # ... and becomes empty
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        try_pair(prev[left], left)
        try_pair(left, nxt[left])

    out: list[int] = []
    i = 0
    while i != -1:
        piece = text[start[i]:end[i]]
        tok = token_to_id.get(piece)
        if tok is not None:
            out.append(tok)
        else:                            # byte fallback
            out.extend(byte_token(b) for b in piece.encode("utf-8"))
        i = nxt[i]
    return out
