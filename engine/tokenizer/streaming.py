"""Streaming detokenisation: turn token ids into text as they arrive, never half a character.

A token is a run of *bytes*, not characters: an emoji (4 UTF-8 bytes) is often split over two
or more byte-level tokens, and SentencePiece byte-fallback tokens carry one byte each. Printing
each token's bytes as soon as it arrives would print broken characters. The streamer feeds the
bytes to Python's incremental UTF-8 decoder, which returns only complete characters and keeps
an unfinished sequence until its last byte arrives. Bytes that can never form a character
become U+FFFD, exactly as a one-shot ``bytes.decode('utf-8', 'replace')`` of the whole output
would, so the concatenated stream always equals ``Tokenizer.decode`` of the same ids.
"""
from __future__ import annotations

import codecs


class Streamer:
    def __init__(self, tokenizer, special: bool = True):
        self._piece = tokenizer.token_bytes if special else tokenizer._piece_no_special
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Add one token; returns the text it completes (possibly '')."""
        return self._decoder.decode(self._piece(token_id))

    def flush(self) -> str:
        """End of stream: whatever bytes are still pending, as U+FFFD."""
        return self._decoder.decode(b"", final=True)
