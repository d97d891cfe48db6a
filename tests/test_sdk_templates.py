"""Chat templates: every Jinja template in the catalogue renders, the helpers real templates need exist, the
sandbox holds, and the 2.8-style {0} templates split as SDK 2.8 used them."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from jinja2 import TemplateError
from jinja2.exceptions import SecurityError

from gpt4all.templates import LegacyTemplate, is_legacy_template, render_chat

CATALOGUE = json.loads((Path(__file__).parents[1] / "gpt4all" / "models3.json").read_text())
JINJA_ENTRIES = [e for e in CATALOGUE if e.get("chatTemplate")]

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>add them</think>It is 4."},
    {"role": "user", "content": "And 3+3?"},
]


def test_catalogue_copy_is_the_reference():
    reference = Path("/work/shared/reference/models3.json")
    if reference.exists():   # the bundled copy must not drift from upstream's snapshot
        assert json.loads(reference.read_text()) == CATALOGUE
    assert len(JINJA_ENTRIES) == 25


# A defect in upstream's data, kept as is: this template loops over `loop_messages`, which it never defines, so
# it renders only the system message and the assistant header (upstream renders it the same way).
BROKEN_IN_CATALOGUE = {"wizardlm-13b-v1.2.Q4_0.gguf"}


@pytest.mark.parametrize("entry", JINJA_ENTRIES, ids=[e["filename"] for e in JINJA_ENTRIES])
def test_every_catalogue_template_renders_a_multi_turn_conversation(entry):
    text = render_chat(entry["chatTemplate"], CONVERSATION, bos_token="<s>", eos_token="</s>")
    if entry["filename"] in BROKEN_IN_CATALOGUE:
        assert text == "Be brief. ASSISTANT:"
        return
    assert "What is 2+2?" in text and "And 3+3?" in text
    assert "It is 4." in text
    # the new user message is the last thing before the assistant's header
    assert text.rindex("And 3+3?") > text.rindex("It is 4.")
    first_turn = render_chat(entry["chatTemplate"], CONVERSATION[1:2], bos_token="<s>", eos_token="</s>")
    assert "What is 2+2?" in first_turn


DEEPSEEK = [e for e in JINJA_ENTRIES if e["filename"].startswith("DeepSeek")]


@pytest.mark.parametrize("entry", DEEPSEEK, ids=[e["filename"] for e in DEEPSEEK])
def test_deepseek_templates_strip_reasoning_with_regex_replace(entry):
    # upstream's Python SDK failed here: "No filter named 'regex_replace'"
    text = render_chat(entry["chatTemplate"], CONVERSATION)
    assert text == ("Be brief.<｜User｜>What is 2+2?<｜Assistant｜>It is 4.<｜end▁of▁sentence｜>"
                    "<｜User｜>And 3+3?<｜Assistant｜>")


def test_chatml_exact_rendering():
    entry = next(e for e in CATALOGUE if e["filename"] == "Nous-Hermes-2-Mistral-7B-DPO.Q4_0.gguf")
    text = render_chat(entry["chatTemplate"], CONVERSATION[:2])
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_llama32_template_uses_bos_and_todays_date():
    entry = next(e for e in CATALOGUE if e["filename"] == "Llama-3.2-1B-Instruct-Q4_0.gguf")
    text = render_chat(entry["chatTemplate"], CONVERSATION[1:2], bos_token="<|begin_of_text|>")
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert f"Today Date: {datetime.now().strftime('%d %b %Y')}" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_raise_exception_reaches_the_caller():
    entry = next(e for e in CATALOGUE if e["filename"] == "mistral-7b-instruct-v0.1.Q4_0.gguf")
    with pytest.raises(TemplateError):
        # two user messages in a row: the Mistral template refuses
        render_chat(entry["chatTemplate"], [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                    eos_token="</s>")


def test_tojson_keeps_unicode():
    assert render_chat("{{ messages[0] | tojson }}", [{"role": "user", "content": "héllo"}]) == \
        '{"role": "user", "content": "héllo"}'


def test_sandbox_is_immutable_and_closed():
    with pytest.raises(SecurityError):
        render_chat("{{ messages.append(1) }}", [])
    with pytest.raises(SecurityError):
        render_chat("{{ ''.__class__.__mro__[1].__subclasses__() }}", [])


def test_legacy_template_detection_and_split():
    assert is_legacy_template("USER: {0}\nASSISTANT: ")
    assert not is_legacy_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    t = LegacyTemplate.parse("<|user|>\n{0}</s>\n<|assistant|>\n{1}</s>\n")
    assert (t.before_user, t.before_reply, t.after_reply) == ("<|user|>\n", "</s>\n<|assistant|>\n", "</s>\n")
    t = LegacyTemplate.parse("### User:\n{0}\n\n### Response:\n")
    assert (t.before_user, t.before_reply, t.after_reply) == ("### User:\n", "\n\n### Response:\n", "\n\n")
    with pytest.raises(ValueError, match="literal '%1'"):
        LegacyTemplate.parse("USER: %1 ASSISTANT:")
