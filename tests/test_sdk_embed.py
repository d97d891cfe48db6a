"""Embed4All's surface (the SDK side): argument errors, result shapes, lifetime.  The embedding values
themselves are checked against independent oracles in tests/test_embed.py."""
from __future__ import annotations

import math

import pytest

from gpt4all import Embed4All, GPT4All


@pytest.fixture(scope="module")
def embedder(model_path):
    path = model_path("minilm-f16")
    with Embed4All(path.name, model_path=str(path.parent), allow_download=False, n_threads=1) as e:
        yield e


def test_shapes_str_list_and_dict(embedder):
    one = embedder.embed("hello world")
    assert isinstance(one, list) and len(one) == 384 and isinstance(one[0], float)
    assert math.isclose(sum(x * x for x in one), 1.0, rel_tol=1e-9)
    many = embedder.embed(["hello world", "good night"])
    assert len(many) == 2 and many[0] == pytest.approx(one, abs=1e-5)   # f32 forward: batching moves the last digits
    d = embedder.embed("hello world", return_dict=True)
    assert set(d) == {"embeddings", "n_prompt_tokens"}
    assert d["embeddings"] == pytest.approx(one, abs=1e-9) and d["n_prompt_tokens"] == 2
    d = embedder.embed(["hello world", "good night"], return_dict=True)
    assert len(d["embeddings"]) == 2 and d["n_prompt_tokens"] == 4


@pytest.mark.parametrize("text", ["", [], None])
def test_empty_text_raises(embedder, text):
    with pytest.raises(ValueError, match="text must not be None or empty"):
        embedder.embed(text)


def test_dimensionality_arguments(embedder):
    with pytest.raises(ValueError, match="Dimensionality"):
        embedder.embed("x", dimensionality=0)
    with pytest.warns(UserWarning, match="Performance may be degraded"):
        with pytest.raises(RuntimeError, match="unsupported dimensionality 32"):   # MiniLM is not Matryoshka
            embedder.embed("x", dimensionality=32)


def test_wrong_kind_of_model_both_ways(model_path, embedder):
    smol = model_path("smollm2-q4_1")
    with pytest.raises(RuntimeError, match="not an embedding model"):
        Embed4All(smol.name, model_path=str(smol.parent), allow_download=False).embed("x")
    with pytest.raises(RuntimeError, match="Not a text completion model"):
        embedder.gpt4all.generate("x", max_tokens=1)


def test_close(model_path):
    path = model_path("minilm-f16")
    e = Embed4All(path.name, model_path=str(path.parent), allow_download=False)
    e.close()
    with pytest.raises(ValueError, match="closed"):
        e.embed("x")
    assert isinstance(e.gpt4all, GPT4All)
