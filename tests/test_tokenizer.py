"""Tokenizers against llama.cpp: every corpus string, every test model's tokenizer.

The reference ids in tests/data/tokenizer/<model>.json were written by
tools/make_tokenizer_refs.py with llama-cpp-python (see that script); the corpus of hard strings
is tests/data/tokenizer/corpus.json.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.tokenizer import from_gguf, from_gguf_file
from engine.tokenizer.gguf_meta import read_metadata

DATA = Path(__file__).parent / "data" / "tokenizer"
MODEL_KEYS = ["smollm2-q4_1", "gemma3-q4_k_m", "minilm-f16"]


def load_refs(key):
    return json.loads((DATA / f"{key}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", params=MODEL_KEYS)
def case(request, model_path):
    key = request.param
    tok = from_gguf_file(model_path(key))
    return key, tok, load_refs(key)


def test_corpus_is_the_one_the_refs_were_made_from():
    corpus = json.loads((DATA / "corpus.json").read_text(encoding="utf-8"))
    for key in MODEL_KEYS:
        assert [c["text"] for c in load_refs(key)["cases"]] == corpus, key


def test_encode_matches_llama_cpp(case):
    key, tok, refs = case
    failures = []
    for c in refs["cases"]:
        for flags, want in c["ids"].items():
            add, parse = (bool(int(part.split("=")[1])) for part in flags.split(","))
            got = tok.encode(c["text"], add_special=add, parse_special=parse)
            if got != want:
                failures.append(f"{c['text']!r} [{flags}]: got {got}, llama.cpp {want}")
    assert not failures, f"{key}: {len(failures)} mismatches\n" + "\n".join(failures[:10])


def test_decode_matches_llama_cpp_pieces(case):
    key, tok, refs = case
    for c in refs["cases"]:
        ids = c["ids"]["add=1,parse=1"]
        assert tok.decode(ids, special=True) == bytes.fromhex(c["decode_special"]).decode("utf-8", "replace"), c["text"]
        assert tok.decode(ids, special=False) == bytes.fromhex(c["decode_plain"]).decode("utf-8", "replace"), c["text"]


def test_every_token_bytes_match_llama_cpp(case):
    key, tok, refs = case
    assert tok.n_vocab == refs["n_vocab"]
    digest = hashlib.sha256()
    for t in range(tok.n_vocab):
        p = tok.token_bytes(t)
        digest.update(len(p).to_bytes(4, "little") + p)
    assert digest.hexdigest() == refs["pieces_sha256"]


def test_special_ids_and_classes_match_llama_cpp(case):
    key, tok, refs = case
    assert (tok.bos_id, tok.eos_id, tok.eot_id) == (refs["bos"], refs["eos"], refs["eot"])
    assert sorted(t for t in range(tok.n_vocab) if tok.is_eog(t)) == refs["eog_ids"]
    assert [t for t in range(tok.n_vocab) if tok.is_control(t)] == refs["control_ids"]


def test_round_trip_and_streaming(case):
    """decode(encode(text)) gives the text back (WordPiece normalises, so only its words), and
    pushing ids one by one through a streamer yields exactly the full decode, never a broken char."""
    key, tok, refs = case
    for c in refs["cases"]:
        text = c["text"]
        ids = tok.encode(text, add_special=False)
        full = tok.decode(ids)
        if key != "minilm-f16":
            assert full == text, (key, text)
        for special in (True, False):
            ids = c["ids"]["add=1,parse=1"]
            s = tok.streamer(special=special)
            parts = [s.push(t) for t in ids] + [s.flush()]
            assert "".join(parts) == tok.decode(ids, special=special), text
            assert all("\ufffd" not in p for p in parts) or "\ufffd" in tok.decode(ids, special=special)


def test_streamer_holds_back_split_characters(model_path):
    """An emoji split over several byte tokens comes out whole, at the token that completes it."""
    tok = from_gguf_file(model_path("smollm2-q4_1"))
    ids = tok.encode("a😀b", add_special=False)
    assert len(ids) >= 4      # 'a', the emoji's 4 bytes in 2+ tokens, 'b'
    s = tok.streamer()
    outs = [s.push(t) for t in ids]
    assert "".join(outs) == "a😀b" and s.flush() == ""
    assert all(o in ("", "a", "b", "😀") for o in outs)
    # and a stream cut in the middle of the character flushes a replacement char, like decode does
    s = tok.streamer()
    cut = [s.push(t) for t in ids[:2]]
    assert "".join(cut) + s.flush() == tok.decode(ids[:2])


def test_from_gguf_caches_per_metadata_object(model_path):
    meta = read_metadata(model_path("smollm2-q4_1"))
    assert from_gguf(meta) is from_gguf(meta)
    assert from_gguf(dict(meta)) is not from_gguf(meta)


def test_every_pre_tokenizer_matches_llama_cpp(model_path):
    """SmolLM2's BPE vocabulary under each pre-tokenizer name: llama.cpp's ids were recorded from
    vocab-only copies of the file with tokenizer.ggml.pre replaced (tools/make_tokenizer_refs.py)."""
    refs = json.loads((DATA / "pretokenizers.json").read_text(encoding="utf-8"))
    corpus = json.loads((DATA / "corpus.json").read_text(encoding="utf-8"))
    base = read_metadata(model_path("smollm2-q4_1"))
    failures = []
    for pre, want_all in refs["pre"].items():
        tok = from_gguf(dict(base, **{"tokenizer.ggml.pre": pre}))
        for text, want in zip(corpus, want_all):
            got = tok.encode(text, add_special=False)
            if got != want:
                failures.append(f"{pre}: {text!r}: got {got}, llama.cpp {want}")
    assert not failures, f"{len(failures)} mismatches\n" + "\n".join(failures[:12])


def test_prompts_match_upstream_gpt4all(model_path):
    """Second oracle: upstream gpt4all 2.8.2's prompt token ids (recorded by
    tools/make_tokenizer_refs.py gpt4all). Upstream follows a raw prompt with its own "\\n\\n"
    separator, so its ids are ours plus that token."""
    refs = json.loads((DATA / "gpt4all-smollm2.json").read_text(encoding="utf-8"))
    tok = from_gguf_file(model_path("smollm2-q4_1"))
    sep = tok.encode("\n\n", add_special=False)
    failures = [c for c in refs["cases"]
                if c["ids"] != tok.encode(c["text"], add_special=False, parse_special=c["special"]) + sep]
    assert len(refs["cases"]) > 100 and not failures, failures[:5]
