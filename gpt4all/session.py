"""A chat session: the conversation so far, and how to turn it into the tokens the model reads.

Two template forms are supported (see templates.py):

* Jinja (SDK 3 and the desktop app): the *whole* conversation is rendered on every turn, tokenized with special
  tokens parsed, and engine prefix reuse means only the new part is evaluated.
* ``{0}``/``{1}`` (SDK 2.8): the system prompt, then each turn wrapped in the template; control tokens written in
  the template or the system prompt are parsed, the user's own text is not (so a user cannot forge them).

If the conversation no longer fits in the context, the oldest turns are left out of the rendering (the system
message always stays); a single message that cannot fit raises ValueError as upstream does.
"""
from __future__ import annotations

from dataclasses import dataclass

from .templates import LegacyTemplate, render_chat

CONTEXT_RESERVE = 4   # tokens kept free beyond the prompt, as upstream's "n_ctx - 4" length check


@dataclass
class ChatSession:
    messages: list[dict]                    # [{"role": "system"|"user"|"assistant", "content": str}, ...]
    jinja_template: str | None = None       # exactly one of these two is set
    legacy_template: LegacyTemplate | None = None

    @property
    def has_system(self) -> bool:
        return bool(self.messages) and self.messages[0]["role"] == "system"

    # ---------------------------------------------------------------------------------------------- rendering
    def prompt_tokens(self, tokenizer, n_ctx: int) -> list[int]:
        """Tokens of the conversation, ending where the assistant's next reply begins."""
        limit = n_ctx - CONTEXT_RESERVE
        head = self.messages[:1] if self.has_system else []
        turns = self.messages[len(head):]
        while True:
            tokens = self._tokens(tokenizer, head + turns)
            if len(tokens) <= limit:
                return tokens
            if len(turns) <= 1:   # only the new message is left, and it is too long on its own
                raise ValueError(f"Your message was too long and could not be processed ({len(tokens)} > {limit}).")
            turns = turns[2:] if turns[0]["role"] == "user" and len(turns) > 2 else turns[1:]   # drop oldest turn

    def _tokens(self, tokenizer, messages: list[dict]) -> list[int]:
        if self.jinja_template is not None:
            return self._jinja_tokens(tokenizer, messages)
        return self._legacy_tokens(tokenizer, messages)

    def _jinja_tokens(self, tokenizer, messages: list[dict]) -> list[int]:
        bos = tokenizer.decode([tokenizer.bos_id]) if tokenizer.bos_id is not None else None
        eos = tokenizer.decode([tokenizer.eos_id]) if tokenizer.eos_id is not None else None
        text = render_chat(self.jinja_template, messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)
        # many templates write the BOS token themselves; adding another would give the model "<s><s>"
        add_special = not (bos and text.startswith(bos))
        return tokenizer.encode(text, add_special=add_special, parse_special=True)

    def _legacy_tokens(self, tokenizer, messages: list[dict]) -> list[int]:
        t = self.legacy_template
        pieces: list[tuple[str, bool]] = []          # (text, control tokens parsed?)
        for message in messages:
            role, content = message["role"], message["content"]
            if role == "system":
                pieces.append((content, True))
            elif role == "user":
                pieces += [(t.before_user, True), (content, False), (t.before_reply, True)]
            elif role == "assistant":
                pieces += [(content, False), (t.after_reply, True)]
        tokens = tokenizer.encode("", add_special=True)   # BOS, where the model's GGUF asks for it
        for text, special in pieces:
            if text:
                tokens += tokenizer.encode(text, add_special=False, parse_special=special)
        return tokens
