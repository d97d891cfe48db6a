"""From prompt tokens to text pieces: the loop behind GPT4All.generate().

engine.LLM.generate gives token ids; the SDK promises text.  In between sit four jobs, done here in order:

1. prompt evaluation in batches of ``n_batch`` tokens, reusing the KV cache for the prefix the prompt shares with
   what the cache already holds (a chat session's earlier turns);
2. a full context does not end the reply: like upstream (2.8.1+), the oldest 75 % of the tokens after the first
   one are dropped and the rest re-evaluated, and generation goes on;
3. token bytes become text only in whole UTF-8 characters (an emoji can span several tokens; undecodable bytes
   become U+FFFD), so every piece handed to a callback is printable;
4. stop strings (upstream's built-in list plus the caller's) are held back while they might be forming and are
   never emitted (see stop.py).
"""
from __future__ import annotations

from typing import Iterable, Iterator

from engine.llm import common_prefix

from .stop import BUILTIN_STOP_STRINGS, StopFilter

CONTEXT_ERASE = 0.75   # fraction of the context dropped when it fills up mid-reply (upstream's context_erase)


def prefill(llm, tokens: list[int], n_batch: int) -> None:
    """Bring the KV cache to ``tokens[:-1]``, evaluating only what it does not already hold.

    The last token is left for ``llm.generate``, which always evaluates at least one token itself (it needs the
    logits of the last position) and then finds everything before it already cached.
    """
    keep = min(common_prefix(llm.tokens, tokens), len(tokens) - 1)
    if keep < len(llm.tokens):
        llm.truncate(keep)
    if keep < len(tokens) - 1:
        llm.eval(tokens[keep:-1], n_batch=n_batch)


def _shift_context(llm, sequence: list[int]) -> list[int]:
    """The sequence to continue from once the context is full: first token (BOS) + the newest quarter."""
    n_keep = 1 if sequence and sequence[0] == llm.tokenizer.bos_id else 0
    n_tail = max(1, int(llm.n_ctx * (1 - CONTEXT_ERASE)))
    return sequence[:n_keep] + sequence[-n_tail:]


def token_ids(llm, tokens: list[int], params, n_predict: int, n_batch: int) -> Iterator[int]:
    """Sampled token ids continuing ``tokens``: at most ``n_predict``, ending early at an end-of-generation token."""
    prefill(llm, tokens, n_batch)
    sequence = list(tokens)          # what the model has read or written so far (mirrors the KV cache)
    remaining = n_predict
    while remaining > 0:
        room = llm.n_ctx - len(sequence)
        if room <= 0:
            sequence = _shift_context(llm, sequence)
            prefill(llm, sequence, n_batch)
            room = llm.n_ctx - len(sequence)
        want = min(room, remaining)
        produced = 0
        ids = llm.generate(sequence, params, want)
        try:
            for token in ids:
                produced += 1
                sequence.append(token)
                yield token
        finally:
            close = getattr(ids, "close", None)   # the caller may stop early: end the engine's loop with ours
            if close is not None:
                close()
        remaining -= produced
        if produced < want:          # the model ended its reply (an end-of-generation token)
            return


def text_pieces(llm, tokens: list[int], params, n_predict: int, n_batch: int,
                stop: Iterable[str] = ()) -> Iterator[tuple[int, str]]:
    """``(token_id, text)`` pieces of the reply: whole UTF-8 characters, stop strings removed.

    A piece may carry the text of several tokens (then ``token_id`` is the newest); a token whose bytes end
    mid-character, or whose text might begin a stop string, yields nothing until the following tokens decide.
    """
    streamer = llm.tokenizer.streamer()    # token bytes -> whole characters (special tokens as their text)
    stops = StopFilter([*BUILTIN_STOP_STRINGS, *stop])
    last = -1
    ids = token_ids(llm, tokens, params, n_predict, n_batch)
    try:
        for last in ids:
            text = stops.feed(streamer.push(last))
            if text:
                yield last, text
            if stops.stopped:
                return
        # the reply ended: release what was held back (an incomplete character becomes U+FFFD)
        text = stops.feed(streamer.flush())
        text += stops.flush()
        if text:
            yield last, text
    finally:
        ids.close()
