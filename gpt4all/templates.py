"""Chat templates: the Jinja form (whole conversation) and the older ``{0}`` prompt-template form.

Jinja templates come from a model's catalogue entry (models3.json ``chatTemplate``), from the GGUF file itself
(``tokenizer.chat_template``) or from the caller.  They are rendered the way upstream GPT4All (and Hugging Face
transformers before it) renders them: in jinja2's *immutable sandbox*, so a template from a downloaded file cannot
touch Python objects, with ``trim_blocks``/``lstrip_blocks`` on, and with the small set of helpers real templates
call.  Upstream forgot ``regex_replace`` (its desktop app's template engine has it), which makes the catalogue's
DeepSeek-R1 templates fail on any conversation that already holds an assistant turn; we provide it.

The older form (SDK 2.8 and its docs) is a plain string with ``{0}`` where the user's message goes and, optionally,
``{1}`` where the model's reply goes: ``'### User:\\n{0}\\n\\n### Response:\\n'``.  The catalogue writes the same
thing with ``%1``/``%2``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# ------------------------------------------------------------------------------------------------ Jinja templates


def _raise_exception(message: str):
    # templates call this to refuse a conversation they cannot format (e.g. roles not alternating)
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    # Llama 3.x templates print today's date into the system header
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None) -> str:
    # like transformers: keep non-ASCII text readable instead of \\u-escaping it
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _regex_replace(value: str, pattern: str, replacement: str = "") -> str:
    # the desktop app's (minja) filter: replace every match; DeepSeek-R1 templates strip "<think>...</think>" with it
    return re.sub(pattern, replacement, value)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The one Jinja environment every chat template is compiled in."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.filters["regex_replace"] = _regex_replace
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@lru_cache(maxsize=32)
def _compile(source: str):
    return environment().from_string(source)


def render_chat(template: str, messages: list[dict], *, add_generation_prompt: bool = True,
                bos_token: str | None = None, eos_token: str | None = None) -> str:
    """The whole conversation as the model expects to read it.

    ``messages`` is a list of ``{"role": ..., "content": ...}``; with ``add_generation_prompt`` the text ends with
    the header that invites the assistant's next reply.  ``bos_token``/``eos_token`` are passed only when the
    vocabulary has them (templates test ``bos_token is defined``).
    """
    variables: dict[str, Any] = {"messages": messages, "add_generation_prompt": add_generation_prompt}
    if bos_token is not None:
        variables["bos_token"] = bos_token
    if eos_token is not None:
        variables["eos_token"] = eos_token
    return _compile(template).render(**variables)


# ----------------------------------------------------------------------------------- the older {0} prompt template

DEFAULT_PROMPT_TEMPLATE = "### Human:\n{0}\n\n### Assistant:\n"   # what SDK 2.8 falls back to (Alpaca style)

_JINJA_MARKERS = ("{{", "{%", "{#")


def is_legacy_template(template: str) -> bool:
    """True for a ``{0}``-style prompt template, False for a Jinja chat template."""
    return "{0}" in template and not any(marker in template for marker in _JINJA_MARKERS)


def catalogue_to_legacy(template: str) -> str:
    """models3.json writes ``%1``/``%2``; SDK 2.8 turned them into ``{0}``/``{1}`` (first occurrence each)."""
    return template.replace("%1", "{0}", 1).replace("%2", "{1}", 1)


@dataclass(frozen=True)
class LegacyTemplate:
    """A ``{0}``/``{1}`` template split around its placeholders.

    ``'<|user|>\\n{0}</s>\\n<|assistant|>\\n{1}</s>\\n'`` -> before_user ``'<|user|>\\n'``,
    before_reply ``'</s>\\n<|assistant|>\\n'``, after_reply ``'</s>\\n'``.  Without ``{1}`` the reply follows
    the whole template and a blank line ends it (upstream's backend does the same: good for Alpaca-style formats).
    """
    before_user: str
    before_reply: str
    after_reply: str

    @classmethod
    def parse(cls, template: str) -> "LegacyTemplate":
        if re.search(r"%1(?![0-9])", template):
            raise ValueError("Prompt template containing a literal '%1' is not supported. For a prompt "
                             "placeholder, please use '{0}' instead.")
        if "{0}" not in template:
            raise ValueError(f"Prompt template must contain '{{0}}' where the user's message goes: {template!r}")
        before_user, rest = template.split("{0}", 1)
        before_reply, has_reply, after_reply = rest.partition("{1}")
        if not has_reply:
            after_reply = "\n\n"
        # str.format semantics: '{{' and '}}' in the constant parts mean literal braces
        unescape = lambda s: s.replace("{{", "{").replace("}}", "}")  # noqa: E731
        return cls(unescape(before_user), unescape(before_reply), unescape(after_reply))
