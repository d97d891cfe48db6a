"""Embed4All on all-MiniLM-L6-v2: agreement with independent oracles, and upstream's semantics.

Oracles: tests/embed_reference.py (the sentence-transformers recipe in NumPy from the safetensors,
HF `tokenizers` ids) and upstream gpt4all 2.8.2's Embed4All on the very same GGUF (oracle venv,
subprocess).  Upstream keys its behaviour by general.name, so re-converting MiniLM under other names
exercises its Matryoshka and unknown-model paths with the same weights on both sides.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embed_reference import cosine, minilm_hf_dir, reference

REPO = Path(__file__).resolve().parents[1]
ORACLE_PYTHON = os.environ.get("GPT4ALL_ORACLE_PYTHON", "/opt/oracle/bin/python")

TEXTS = ["The quick brown fox jumps over the lazy dog.",
         "Hello",
         "naïve café ümlaut — 東京 tokens!!",
         "GPU compute shaders pool the hidden states of every token into one vector per text."]
LONG = " ".join(f"paragraph {i}: embeddings of long documents are averaged over overlapping windows."
                for i in range(90))      # ~1500 tokens: 3 windows of 510


def _embedder(path: Path, **kw):
    from gpt4all import Embed4All
    return Embed4All(path.name, model_path=str(path.parent), allow_download=False, **kw)


@pytest.fixture(scope="module")
def minilm(model_path):
    e = _embedder(model_path("minilm-f16"))
    yield e
    e.close()


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    """name -> the MiniLM GGUF converted with general.name = name (upstream's spec lookup key)."""
    sys.path.insert(0, str(REPO / "tools"))
    import convert_bert
    out = tmp_path_factory.mktemp("renamed")
    return {n: convert_bert.convert(minilm_hf_dir(), out / f"{n}.gguf", "f16", name=n)
            for n in ("nomic-embed-text-v1.5", "my-own-encoder")}


# ------------------------------------------------------------------ against the NumPy recipe
def test_single_texts_match_sentence_transformers(minilm):
    ref = reference()
    for text in TEXTS:
        assert cosine(minilm.embed(text), ref.embed(text)) >= 0.9999, text


def test_batch_of_mixed_lengths_matches_one_by_one(minilm):
    ref = reference()
    batch = TEXTS + [TEXTS[0] * 5, "a"]
    got = minilm.embed(batch)
    assert len(got) == len(batch) and all(len(v) == 384 for v in got)
    for text, v in zip(batch, got):
        assert cosine(v, ref.embed(text)) >= 0.9999, text
        assert abs(np.linalg.norm(v) - 1.0) < 1e-6


def test_grouping_into_passes_changes_nothing(minilm):
    """Texts are packed into passes of about pass_tokens rows (a long one alone); any grouping gives the
    same vectors, because attention and pooling never cross sequences."""
    bert = minilm.gpt4all.model.llm.model
    assert bert.plan([300, 300, 100, 511, 5]) == [[0], [1, 2], [3], [4]]     # pass_tokens 512
    batch = TEXTS + [TEXTS[0] * 5, "a"]
    want = np.array(minilm.embed(batch))
    saved = bert.pass_tokens
    try:
        for pass_tokens in (1, 40, 4096):      # one text per pass .. all texts in one pass
            bert.pass_tokens = pass_tokens
            np.testing.assert_allclose(np.array(minilm.embed(batch)), want, atol=2e-6)
    finally:
        bert.pass_tokens = saved


@pytest.mark.parametrize("mode", ["mean", "truncate"])
def test_long_text_windows(minilm, mode):
    ref = reference()
    n_tokens = len(ref.token_ids(LONG, add_special=False))
    assert n_tokens > 2 * 510                 # really needs three windows
    res = minilm.embed(LONG, long_text_mode=mode, return_dict=True)
    assert cosine(res["embeddings"], ref.embed_long(LONG, 510, mode)) >= 0.9999
    # overlap tokens count twice; prefix (CLS) and SEP not at all
    n_windows = 1 if mode == "truncate" else -(-(n_tokens - 8) // (510 - 8))
    assert res["n_prompt_tokens"] == (510 if mode == "truncate" else n_tokens + 8 * (n_windows - 1))
    # the two modes really differ
    other = minilm.embed(LONG, long_text_mode="truncate" if mode == "mean" else "mean")
    assert cosine(res["embeddings"], other) < 0.999


# ------------------------------------------------------------------ upstream's semantics
def test_errors_and_options(minilm):
    from gpt4all import CancellationError
    with pytest.raises(ValueError, match="text must not be None or empty"):
        minilm.embed("")
    with pytest.raises(ValueError, match="Long text mode must be one of"):
        minilm.embed("x", long_text_mode="max")
    with pytest.raises(RuntimeError, match=r"unsupported dimensionality 128 for model all-MiniLM-L6-v2 \(supported: 384\)"):
        minilm.embed("x", dimensionality=128)
    with pytest.raises(RuntimeError, match='"search_query" is not a valid task type for model all-MiniLM-L6-v2'):
        minilm.embed("x", prefix="search_query")
    seen = []
    with pytest.raises(CancellationError, match="operation was canceled"):
        minilm.embed(["one", "two words"], cancel_cb=lambda sizes, backend: seen.append((sizes, backend)) or True)
    assert seen == [([3 + 4], "cpu")]           # [CLS] one [SEP] + [CLS] two words [SEP], one pass
    atlas_text = "word " * 8200
    with pytest.raises(RuntimeError, match="length of text at index 1 is 8200 tokens which exceeds limit of 8192"):
        minilm.embed(["ok", atlas_text], atlas=True)
    assert minilm.embed(atlas_text, atlas=True, long_text_mode="truncate", return_dict=True)["n_prompt_tokens"] == 510


def test_empty_item_uses_placeholder(minilm, capfd):
    from gpt4all._embed import EMPTY_PLACEHOLDER
    got = minilm.embed(["", "x"])
    assert "zero tokens" in capfd.readouterr().err
    assert cosine(got[0], minilm.embed(EMPTY_PLACEHOLDER)) > 0.999999


def test_matryoshka_and_unknown_model_paths(renamed):
    nomic = _embedder(renamed["nomic-embed-text-v1.5"])
    full = np.array(nomic.embed("hello world"))           # prefix search_document by default
    small = np.array(nomic.embed("hello world", dimensionality=128))
    assert small.shape == (128,) and abs(np.linalg.norm(small) - 1) < 1e-9
    assert cosine(small, full[:128]) > 0.9999                   # truncation of the same layer-normed vector
    with pytest.raises(RuntimeError, match=r"\(recommended: \[768, 512, 384, 256, 128\]\)"):
        nomic.embed("x", dimensionality=1000)
    assert cosine(nomic.embed("hello world", prefix="search_query"), full) < 0.9999   # the prefix is used
    nomic.close()
    unknown = _embedder(renamed["my-own-encoder"])
    with pytest.raises(RuntimeError, match="unknown model my-own-encoder, specify a prefix"):
        unknown.embed("x")
    assert len(unknown.embed("x", prefix="")) == 384
    unknown.close()


# ------------------------------------------------------------------ against upstream gpt4all 2.8.2
_UPSTREAM = r"""
import json, os, sys
from gpt4all import Embed4All
calls = json.loads(sys.argv[1])
out = []
for path, text, kw in calls:
    e = Embed4All(os.path.basename(path), model_path=os.path.dirname(path), allow_download=False, device='cpu')
    out.append(e.embed(text, return_dict=True, **kw))
    e.close()
print(json.dumps(out))
"""


def test_same_as_upstream_gpt4all(model_path, renamed):
    assert Path(ORACLE_PYTHON).exists(), f"oracle venv missing: {ORACLE_PYTHON}"
    f16 = str(model_path("minilm-f16"))
    nomic = str(renamed["nomic-embed-text-v1.5"])
    calls = [(f16, TEXTS, {}),
             (f16, LONG, {"long_text_mode": "mean"}),
             (f16, ["", "x"], {}),
             (nomic, ["hello world", "a longer sentence about vectors"], {"dimensionality": 256}),
             (nomic, "hello world", {"prefix": "clustering"})]
    r = subprocess.run([ORACLE_PYTHON, "-I", "-c", _UPSTREAM, json.dumps(calls)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    upstream = json.loads(r.stdout.strip().splitlines()[-1])
    for (path, text, kw), want in zip(calls, upstream):
        got = _embedder(Path(path)).embed(text, return_dict=True, **kw)
        assert got["n_prompt_tokens"] == want["n_prompt_tokens"], (path, kw)
        g, w = np.atleast_2d(got["embeddings"]), np.atleast_2d(want["embeddings"])
        assert g.shape == w.shape
        for a, b in zip(g, w):
            assert cosine(a, b) >= 0.9999, (path, kw)


# ------------------------------------------------------------------ Vulkan (lavapipe in CI: keep it short)
def test_vulkan_matches_sentence_transformers(model_path):
    """The same Bert forward pass on the Vulkan backend (mean pooling in a shader): single, batch, long."""
    ref = reference()
    # n_ctx 128: passes of at most 128 tokens and windows of 126 (upstream's rule), cheap on lavapipe
    e = _embedder(model_path("minilm-f16"), device="kompute", n_ctx=128)
    assert e.gpt4all.model.llm.backend == "kompute"
    assert cosine(e.embed(TEXTS[0]), ref.embed(TEXTS[0])) >= 0.9999
    for text, v in zip(TEXTS, e.embed(TEXTS)):
        assert cosine(v, ref.embed(text)) >= 0.9999, text
    long = LONG[: len(LONG) // 5]            # ~300 tokens: three windows of 126
    for mode in ("mean", "truncate"):
        assert cosine(e.embed(long, long_text_mode=mode), ref.embed_long(long, 126, mode)) >= 0.9999, mode
    e.close()
