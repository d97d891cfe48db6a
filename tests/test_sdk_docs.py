"""Every example of the SDK's documentation (../shared/seeds/), run as written.

The documents name catalogue models (orca-mini-3b, wizardlm-13b) that are not on this machine, so a model folder
is made in which those file names are links to SmolLM2-135M: the examples then run with their own model names,
and the catalogue entry of the named model (its templates, its system prompt) is what the SDK uses - exactly as
for the real file.  Only folder paths are changed (to temporary ones), and generation lengths are capped (the
NumPy engine does ~1-2 tokens/s on the shared CI machine; the docs' default is 200 tokens per reply).
Nothing may touch the network: requests.get is replaced by a function that fails the test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

import gpt4all.gpt4all as sdk_module
from gpt4all import GPT4All

DOC_MODELS = ("orca-mini-3b-gguf2-q4_0.gguf", "wizardlm-13b-v1.2.Q4_0.gguf")
CATALOGUE = {e["filename"]: e for e in json.loads((Path(sdk_module.__file__).with_name("models3.json")).read_text())}
MAX_TOKENS_CAP = 8


@pytest.fixture
def models_dir(tmp_path, model_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in DOC_MODELS:
        (folder / name).symlink_to(model_path("smollm2-q4_1"))
    monkeypatch.setattr(sdk_module, "DEFAULT_MODEL_DIRECTORY", folder)   # where '~/.cache/gpt4all/' would be

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access: {args}")
    monkeypatch.setattr(requests, "get", no_network)

    real_generate = GPT4All.generate

    def capped(self, prompt, **kwargs):
        kwargs["max_tokens"] = min(kwargs.get("max_tokens", 200), MAX_TOKENS_CAP)
        return real_generate(self, prompt, **kwargs)
    monkeypatch.setattr(GPT4All, "generate", capped)
    return folder


def test_quickstart(models_dir):
    from gpt4all import GPT4All
    model = GPT4All("orca-mini-3b-gguf2-q4_0.gguf")
    assert model.config["path"] == str(models_dir / "orca-mini-3b-gguf2-q4_0.gguf")
    assert model.config["name"] == "Mini Orca (Small)"


def test_chatting_with_gpt4all(models_dir, capsys):
    model = GPT4All(model_name='orca-mini-3b-gguf2-q4_0.gguf')
    with model.chat_session():
        response1 = model.generate(prompt='hello', temp=0)
        response2 = model.generate(prompt='write me a short poem', temp=0)
        response3 = model.generate(prompt='thank you', temp=0)
        print(model.current_chat_session)
    printed = capsys.readouterr().out
    # the documented output shape: user/assistant turns, no system entry (orca-mini has no systemMessage)
    history = eval(printed)   # noqa: S307 - our own print of a list of dicts
    assert [m["role"] for m in history] == ["user", "assistant"] * 3
    assert [m["content"] for m in history[1::2]] == [response1, response2, response3]
    # orca-mini's Jinja template from the catalogue formatted the conversation
    llm = model.model.llm
    assert llm.tokenizer.decode(llm.tokens).startswith("### User:\nhello\n\n### Response:\n")


def test_streaming_generations(models_dir, capsys):
    from gpt4all import GPT4All
    model = GPT4All("orca-mini-3b-gguf2-q4_0.gguf")
    tokens = []
    with model.chat_session():
        for token in model.generate("What is the capital of France?", streaming=True):
            tokens.append(token)
    print(tokens)
    assert tokens and all(isinstance(t, str) and t for t in tokens)
    assert capsys.readouterr().out.strip() == repr(tokens)


def test_specifying_the_model_folder(models_dir):
    from pathlib import Path
    from gpt4all import GPT4All
    model = GPT4All(model_name='orca-mini-3b-gguf2-q4_0.gguf', model_path=models_dir)   # doc: ~/.cache/gpt4all
    assert Path(model.config["path"]).parent == models_dir


def test_model_folder_positional_linux_example(models_dir):
    from pathlib import Path
    from gpt4all import GPT4All

    model_name = 'orca-mini-3b-gguf2-q4_0.gguf'
    model_path = models_dir                      # doc: Path.home() / '.local' / 'share' / 'nomic.ai' / 'GPT4All'
    model = GPT4All(model_name, model_path)
    assert Path(model.config["path"]) == model_path / model_name


def test_changing_the_default_model_directory(models_dir, tmp_path, model_path):
    other = tmp_path / "my" / "models-directory"   # doc: Path.home() / 'my' / 'models-directory'
    other.mkdir(parents=True)
    (other / "orca-mini-3b-gguf2-q4_0.gguf").symlink_to(model_path("smollm2-q4_1"))

    from pathlib import Path
    from gpt4all import GPT4All, gpt4all
    gpt4all.DEFAULT_MODEL_DIRECTORY = other
    model = GPT4All('orca-mini-3b-gguf2-q4_0.gguf')
    assert Path(model.config["path"]).parent == other


def test_managing_templates(models_dir, capsys):
    from gpt4all import GPT4All
    model = GPT4All('wizardlm-13b-v1.2.Q4_0.gguf')
    system_template = 'A chat between a curious user and an artificial intelligence assistant.\n'
    # many models use triple hash '###' for keywords, Vicunas are simpler:
    prompt_template = 'USER: {0}\nASSISTANT: '
    with model.chat_session(system_template, prompt_template):
        response1 = model.generate('why is the grass green?')
        print(response1)
        print()
        response2 = model.generate('why is the sky blue?')
        print(response2)
        history = model.current_chat_session
    assert capsys.readouterr().out == f"{response1}\n\n{response2}\n"
    # SDK 2.8 semantics: the system prompt first, then each turn wrapped in the {0} template
    assert history[0] == {"role": "system", "content": system_template}
    llm = model.model.llm
    assert llm.tokenizer.decode(llm.tokens).startswith(
        system_template + "USER: why is the grass green?\nASSISTANT: " + response1)


def test_prompt_template_retrieval(models_dir, capsys):
    from gpt4all import GPT4All
    model = GPT4All('orca-mini-3b-gguf2-q4_0.gguf')
    print(repr(model.config['systemPrompt']))
    print(repr(model.config['promptTemplate']))
    entry = CATALOGUE["orca-mini-3b-gguf2-q4_0.gguf"]
    assert capsys.readouterr().out.splitlines() == [
        repr(entry["systemPrompt"]),
        repr(entry["promptTemplate"].replace("%1", "{0}")),   # '### User:\n{0}\n\n### Response:\n'
    ]


def test_offline_instance_with_explicit_templates(models_dir):
    from gpt4all import GPT4All
    model = GPT4All('orca-mini-3b-gguf2-q4_0.gguf', allow_download=False)

    system_prompt = '### System:\nYou are an AI assistant that follows instruction extremely well. Help as much as you can.\n\n'
    prompt_template = '### User:\n{0}\n\n### Response:\n'

    with model.chat_session(system_prompt=system_prompt, prompt_template=prompt_template):
        ...
        assert model.current_chat_session == [{"role": "system", "content": system_prompt}]


def test_interrupting_generation_with_a_callback(models_dir, capsys, monkeypatch):
    monkeypatch.setitem(globals(), "MAX_TOKENS_CAP", 40)   # this example ends itself at the first '.'
    from gpt4all import GPT4All
    model = GPT4All('orca-mini-3b-gguf2-q4_0.gguf')

    def stop_on_token_callback(token_id, token_string):
        # one sentence is enough:
        if '.' in token_string:
            return False
        else:
            return True

    response = model.generate('Blue Whales are the biggest animal to ever inhabit the Earth.',
                              temp=0, callback=stop_on_token_callback)
    print(response)
    # generation stopped with the first piece holding a '.': at most that piece's few characters follow it
    assert "." in response and len(response) - response.index(".") <= 8
    assert capsys.readouterr().out == response + "\n"
