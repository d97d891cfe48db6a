"""GPT4All end to end on SmolLM2-135M (NumPy backend): upstream's own test scenarios rewritten for a local
model, plus agreement with upstream gpt4all 2.8.2 itself (oracle venv) on the very same file.

Generations are kept to a few tokens: the NumPy engine on a shared 2-core machine does about 1-2 tokens/s.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from gpt4all import GPT4All
from gpt4all.templates import render_chat

ORACLE_PYTHON = os.environ.get("GPT4ALL_ORACLE_PYTHON", "/opt/oracle/bin/python")
SMOL = "smollm2-q4_1"

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
CHATML = "<|im_start|>user\n{0}<|im_end|>\n<|im_start|>assistant\n{1}<|im_end|>\n"


@pytest.fixture(scope="module")
def model(model_path):
    path = model_path(SMOL)
    with GPT4All(path.name, model_path=path.parent, allow_download=False) as m:
        yield m


def _spy_eval(monkeypatch, llm):
    """Record (n_tokens, n_batch) of every LLM.eval call."""
    calls = []
    real = llm.eval

    def eval(tokens, n_batch=None):
        calls.append((len(tokens), n_batch))
        return real(tokens, n_batch)
    monkeypatch.setattr(llm, "eval", eval)
    return calls


# ------------------------------------------------------------------------------------ the independent oracle

UPSTREAM_SCRIPT = """
import json, sys
from gpt4all import GPT4All
spec = json.load(sys.stdin)
m = GPT4All(spec["name"], model_path=spec["dir"], allow_download=False, device="cpu")
out = {"raw": m.generate(spec["raw"], top_k=1, max_tokens=spec["n"]), "sessions": []}

events = []   # every token id upstream's backend evaluates ("p") or generates ("g"), in order
m.model._prompt_callback = lambda token_id: events.append(["p", token_id]) or True
decoder = m.model._callback_decoder
def logging_decoder(callback):
    inner = decoder(callback)
    def on_token(token_id, piece):
        events.append(["g", token_id])
        return inner(token_id, piece)
    return on_token
m.model._callback_decoder = logging_decoder

for template in spec["templates"]:
    events.clear()
    with m.chat_session(spec["system"], template):
        for p in spec["turns"]:
            m.generate(p, top_k=1, max_tokens=spec["n"])
        out["sessions"].append({"history": m.current_chat_session, "events": list(events)})
print(json.dumps(out))
"""


def _before_each_reply(events: list) -> list[list[int]]:
    """From upstream's event log: the full token sequence in the KV cache when each reply started."""
    sequences, seen, previous = [], [], "p"
    for kind, token in events:
        if kind == "g" and previous == "p":
            sequences.append(list(seen))
        seen.append(token)
        previous = kind
    return sequences


def test_matches_upstream_2_8_2_raw_and_legacy_session(model, model_path, tmp_path):
    """Upstream gpt4all 2.8.2 on the same file with the same calls (SDK 2.8 API): a raw prompt, then {0}-template
    sessions over two turns, one template with {1} and one without (upstream then ends replies with a blank
    line).  Compared: the raw continuation and each session's first reply as text, and - exactly, free of any
    numeric near-tie - the token sequence upstream had in its KV cache when each reply began against the tokens
    our session builds from the same conversation (template pieces, control tokens, BOS, reply suffixes)."""
    from gpt4all.session import ChatSession
    from gpt4all.templates import LegacyTemplate
    from tools.upstream_runner import upstream_copy   # upstream rejects pre-tokenizer 'smollm': same-regex copy

    assert Path(ORACLE_PYTHON).exists(), f"oracle venv missing: {ORACLE_PYTHON} (see tools/setup.sh)"
    copy = upstream_copy(model_path(SMOL), tmp_path)
    spec = {"name": copy.name, "dir": str(copy.parent), "raw": "The capital of France is", "n": 8,
            "system": SYSTEM, "templates": [CHATML, "### User:\n{0}\n### Response:\n"],
            "turns": ["What is the capital of France?", "And of Italy?"]}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # our package is also called gpt4all
    done = subprocess.run([ORACLE_PYTHON, "-c", UPSTREAM_SCRIPT], input=json.dumps(spec), capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    upstream = json.loads(done.stdout.strip().splitlines()[-1])

    assert model.generate(spec["raw"], top_k=1, max_tokens=spec["n"]) == upstream["raw"]
    tok = model.model.llm.tokenizer
    for template, theirs in zip(spec["templates"], upstream["sessions"]):
        history = theirs["history"]
        assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
        kv_at_reply = _before_each_reply(theirs["events"])
        assert len(kv_at_reply) == 2
        for turn, expected in enumerate(kv_at_reply):
            session = ChatSession([dict(m) for m in history[:2 + 2 * turn]],
                                  legacy_template=LegacyTemplate.parse(template))
            assert session.prompt_tokens(tok, model.model.llm.n_ctx) == expected, (template, turn)
        with model.chat_session(spec["system"], template):
            model.generate(spec["turns"][0], top_k=1, max_tokens=spec["n"])
            assert model.current_chat_session == history[:3]


# ----------------------------------------------------------------------------- upstream's scenarios, locally

def test_same_greedy_output_before_and_after_a_session(model):
    output_1 = model.generate("hello", top_k=1, max_tokens=6)
    with model.chat_session():
        model.generate(prompt="hello", top_k=1, max_tokens=6)
        model.generate(prompt="thank you", top_k=1, max_tokens=4)
        history = model.current_chat_session
    output_2 = model.generate("hello", top_k=1, max_tokens=6)
    assert output_1 == output_2 and output_1
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]   # no system: template's own
    assert history[0]["content"] == "hello" and history[1]["content"]
    assert model.current_chat_session is None


def test_streaming_yields_tokens_lazily_and_matches_the_string(model):
    llm = model.model.llm
    llm.reset()
    stream = model.generate("The capital of France is", temp=0, max_tokens=6, streaming=True)
    assert llm.tokens == []                     # a generator: nothing runs before the first next()
    tokens = list(stream)
    assert len(tokens) > 1 and all(isinstance(t, str) and t for t in tokens)
    assert "".join(tokens) == model.generate("The capital of France is", temp=0, max_tokens=6)


def test_streaming_inside_a_session_records_the_reply(model):
    with model.chat_session():
        pieces = list(model.generate("What is the capital of France?", top_k=1, max_tokens=6, streaming=True))
        assert model.current_chat_session[-1] == {"role": "assistant", "content": "".join(pieces)}


def test_long_input_with_n_batch_512_in_a_session_is_clamped_to_128(model, monkeypatch):
    long_input = " ".join(["hello how are you"] * 40)
    calls = _spy_eval(monkeypatch, model.model.llm)
    model.model.llm.reset()
    with model.chat_session():
        reply = model.generate(long_input, n_batch=512, max_tokens=2)
        assert model.current_chat_session[-1]["content"] == reply
    assert calls and all(n_batch == 128 for _, n_batch in calls)
    assert sum(n for n, _ in calls) > 160                       # the whole prompt went through eval


def test_kv_cache_is_reused_across_turns(model, monkeypatch):
    llm = model.model.llm
    with model.chat_session():
        model.generate("Name a colour.", top_k=1, max_tokens=4)
        length_after_turn_1 = len(llm.tokens)
        calls = _spy_eval(monkeypatch, llm)
        model.generate("Another one?", top_k=1, max_tokens=1)
    evaluated = sum(n for n, _ in calls)
    assert 0 < evaluated < 20 < length_after_turn_1             # only the new turn, not the whole conversation


def test_session_without_template_uses_the_gguf_chat_template(model):
    """Upstream raises NotImplementedError for a sideloaded model; we read tokenizer.chat_template."""
    llm = model.model.llm
    tok = llm.tokenizer
    with model.chat_session(system_message="Be brief."):
        model.generate("Hi", top_k=1, max_tokens=1)
    expected_text = render_chat(llm.chat_template, [{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": "Hi"}])
    assert expected_text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    expected = tok.encode(expected_text, add_special=True, parse_special=True)
    assert llm.tokens[:len(expected)] == expected


def test_callback_returning_false_stops(model):
    seen = []

    def stop_after_two(token_id, text):
        seen.append((token_id, text))
        return len(seen) < 2
    full = model.generate("The capital of France is", temp=0, max_tokens=8)
    text = model.generate("The capital of France is", temp=0, max_tokens=8, callback=stop_after_two)
    assert len(seen) == 2 and text == seen[0][1] + seen[1][1] and full.startswith(text) and text != full
    seen.clear()
    streamed = list(model.generate("The capital of France is", temp=0, max_tokens=8, streaming=True,
                                   callback=stop_after_two))
    assert streamed == [seen[0][1]]             # upstream: the piece that stopped it is not yielded


def test_stop_strings_end_generation_and_are_not_emitted(model):
    full = model.generate("The capital of France is", temp=0, max_tokens=8)
    assert full.startswith(" Paris.\n")          # SmolLM2's greedy continuation (same as upstream above)
    assert model.generate("The capital of France is", temp=0, max_tokens=8, stop=["\n"]) == " Paris."
    assert model.generate("The capital of France is", temp=0, max_tokens=8, stop=["is."]) == " Par"
    # a false alarm ("Paris." starts like "Paris!") is released unchanged
    assert model.generate("The capital of France is", temp=0, max_tokens=8, stop=["Paris!"]) == full


def test_n_predict_overrides_max_tokens_and_zero_generates_nothing(model):
    n = []
    model.generate("One, two,", temp=0, max_tokens=50, n_predict=3, callback=lambda i, s: n.append(i) or True)
    assert len(n) == 3
    assert model.generate("One, two,", temp=0, n_predict=0) == ""


def test_seeded_sampling_is_reproducible(model):
    a = model.generate("Once upon a time", temp=1.0, top_k=40, top_p=0.9, max_tokens=5, seed=7)
    b = model.generate("Once upon a time", temp=1.0, top_k=40, top_p=0.9, max_tokens=5, seed=7)
    assert a == b


def test_current_chat_session_setter_and_system_message(model):
    with pytest.raises(ValueError, match="active chat session"):
        model.current_chat_session = []
    with model.chat_session(system_message="You are terse."):
        assert model.current_chat_session == [{"role": "system", "content": "You are terse."}]
        model.current_chat_session = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
        assert model.current_chat_session[1]["content"] == "b"
    with model.chat_session(system_message=False):
        assert model.current_chat_session == []


def test_thread_count_and_properties(model):
    model.model.set_thread_count(1)
    assert model.model.thread_count() == 1
    assert model.backend == "cpu" and model.device is None


# ----------------------------------------------------------------------------- context limits (small n_ctx)

@pytest.fixture(scope="module")
def tiny_context(model_path):
    path = model_path(SMOL)
    with GPT4All(path.name, model_path=path.parent, allow_download=False, n_ctx=48) as m:
        yield m


def test_prompt_longer_than_the_context_raises(tiny_context):
    long_input = " ".join(["hello how are you"] * 20)
    with pytest.raises(ValueError, match="too long"):
        tiny_context.generate(long_input, max_tokens=1)
    with tiny_context.chat_session(system_message=False):
        with pytest.raises(ValueError, match="too long"):
            tiny_context.generate(long_input, max_tokens=1)
        assert tiny_context.current_chat_session == []     # the refused message is not kept


def test_generation_continues_past_a_full_context(tiny_context):
    """Upstream 2.8.1+: when the context fills mid-reply, old tokens are dropped and generation goes on."""
    prompt = " ".join(["one two three"] * 10)              # ~30 tokens: 18 left in a 48-token context
    pieces = []
    tiny_context.generate(prompt, temp=0, max_tokens=24, callback=lambda i, s: pieces.append(i) or True)
    assert len(pieces) > 48 - len(tiny_context.model.llm.tokenizer.encode(prompt))
    assert len(tiny_context.model.llm.tokens) <= 48


# ------------------------------------------------------------------------------------------ construction

def test_unknown_file_and_device_errors(model_path, tmp_path):
    path = model_path(SMOL)
    with pytest.raises(FileNotFoundError, match="Model file does not exist"):
        GPT4All("no-such-model", model_path=tmp_path, allow_download=False)
    for device in ("cuda", "cuda:NVIDIA H100", "metal"):
        with pytest.raises(ValueError, match="not in this build"):
            GPT4All(path.name, model_path=path.parent, allow_download=False, device=device)


def test_close_and_context_manager(model_path):
    path = model_path(SMOL)
    with GPT4All(path.stem, model_path=path.parent, allow_download=False) as m:   # '.gguf' optional
        assert m.backend == "cpu"
    with pytest.raises(ValueError, match="closed"):
        m.generate("hi", max_tokens=1)
    with pytest.raises(ValueError, match="closed"):
        _ = m.backend


def test_list_gpus_and_an_unknown_device(model_path):
    gpus = GPT4All.list_gpus()
    assert gpus and all(g.startswith("kompute:") for g in gpus)     # lavapipe at least, on every machine we run
    path = model_path(SMOL)
    with pytest.raises(ValueError, match="no-such-gpu") as err:
        GPT4All(path.name, model_path=path.parent, allow_download=False, device="no-such-gpu")
    assert gpus[0].removeprefix("kompute:") in str(err.value)        # the error names what is available


def test_a_gpu_from_list_gpus_runs_the_model_and_reports_it(model, model_path):
    """backend/device tell the truth: on a Vulkan device (lavapipe on CI) the forward pass runs in Kompute,
    and greedy text equals the CPU's."""
    gpu = GPT4All.list_gpus()[0]
    path = model_path(SMOL)
    with GPT4All(path.name, model_path=path.parent, allow_download=False, device=gpu) as on_gpu:
        assert on_gpu.backend == "kompute" and on_gpu.device == gpu.removeprefix("kompute:")
        text = on_gpu.generate("The capital of France is", temp=0, max_tokens=3)
    assert text == model.generate("The capital of France is", temp=0, max_tokens=3)


def test_an_abandoned_stream_cannot_disturb_the_next_generation(model):
    stream = model.generate("The capital of France is", temp=0, max_tokens=4, streaming=True)
    first = next(stream)
    full = model.generate("The capital of France is", temp=0, max_tokens=4)
    assert full.startswith(first)
    assert list(stream) == []                # it was ended, not resumed onto the newer KV cache
