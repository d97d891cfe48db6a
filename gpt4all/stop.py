"""Stop strings: end generation when the text contains one, and never show it to the caller.

The model writes text a token at a time, so a stop string can arrive in pieces ("###", " Human", ":").  Text that
could still turn out to be the start of a stop string is held back until the next piece decides: either the stop
string completes (generation ends and the held text is dropped) or it cannot (the held text is released).  Upstream
GPT4All does this for its built-in list; we do the same for the caller's ``stop=`` strings as well.
"""
from __future__ import annotations

from typing import Iterable

# Upstream's built-in list (gpt4all HEAD's llmodel_shared.cpp): the headers of common prompt formats, so a model that
# starts writing the next turn itself is cut off there.
BUILTIN_STOP_STRINGS = (
    "### System", "### Instruction", "### Human", "### User", "### Response", "### Assistant", "### Context",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>",
)


class StopFilter:
    """Feed text pieces in order; get back what may be shown now and whether a stop string was reached."""

    def __init__(self, stop_strings: Iterable[str]):
        self.stop_strings = [s for s in dict.fromkeys(stop_strings) if s]   # unique, non-empty, order kept
        self.pending = ""        # text received but not yet released (a possible stop-string prefix)
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that can safely be released now (maybe '')."""
        if self.stopped:
            return ""
        text = self.pending + piece
        # a complete stop string: release what precedes the earliest one, drop the rest, and stop
        first = min((i for i in (text.find(s) for s in self.stop_strings) if i >= 0), default=-1)
        if first >= 0:
            self.pending = ""
            self.stopped = True
            return text[:first]
        # hold back the longest tail of `text` that is the beginning of some stop string
        hold = 0
        for s in self.stop_strings:
            for n in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:n]):
                    hold = n
                    break
        self.pending = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold]

    def flush(self) -> str:
        """Generation ended for another reason: whatever is held back was never a stop string, release it."""
        text, self.pending = ("" if self.stopped else self.pending), ""
        return text
