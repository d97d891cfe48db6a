"""LangChain's community wrappers, unmodified, on our package and local files.

langchain_community.llms.GPT4All passes model_type, reads client.model_type, calls
client.model.set_thread_count(n) and iterates generate(...) with upstream's keywords;
langchain_community.embeddings.GPT4AllEmbeddings calls Embed4All(model_name=..., n_threads=..., device=...,
**gpt4all_kwargs).embed(text).
"""
from __future__ import annotations

import math

import pytest

def _lc():
    try:
        from langchain_community.embeddings import GPT4AllEmbeddings
        from langchain_community.llms import GPT4All as LangChainGPT4All
    except ImportError as e:   # a failure, not a skip: the test environment installs it (pyproject test extra)
        pytest.fail(f"langchain-community is not installed: {e}")
    return LangChainGPT4All, GPT4AllEmbeddings

def test_langchain_llm_wrapper_generates_what_the_sdk_generates(model_path):
    LangChainGPT4All, _ = _lc()
    from gpt4all import GPT4All

    path = model_path("smollm2-q4_1")
    llm = LangChainGPT4All(model=str(path), n_threads=1, max_tokens=6, n_predict=6, top_k=1, temp=0,
                           backend="llama")
    assert llm.client.model_type == "llama" and llm.backend == "llama"
    assert llm.client.model.thread_count() == 1
    text = llm.invoke("The capital of France is")
    direct = GPT4All(path.name, model_path=path.parent, allow_download=False).generate(
        "The capital of France is", max_tokens=6, top_k=1, temp=0, top_p=0.1)
    assert text == direct and "Paris" in text
    # LangChain's own stop handling on top of ours (it joins stop strings into a regex: keep them literal)
    assert "\n" in direct
    assert llm.invoke("The capital of France is", stop=["\n"]) == direct.split("\n")[0]

def test_langchain_embeddings_wrapper(model_path):
    _, GPT4AllEmbeddings = _lc()
    from gpt4all import Embed4All

    path = model_path("minilm-f16")
    kwargs = {"model_path": str(path.parent), "allow_download": False}
    emb = GPT4AllEmbeddings(model_name=path.name, n_threads=1, device="cpu", gpt4all_kwargs=kwargs)
    query = emb.embed_query("The quick brown fox")
    docs = emb.embed_documents(["The quick brown fox", "jumps over the lazy dog"])
    assert len(query) == 384 and math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-6)
    assert docs[0] == pytest.approx(query, abs=1e-6)
    direct = Embed4All(path.name, device="cpu", **kwargs).embed("jumps over the lazy dog")
    assert docs[1] == pytest.approx(direct, abs=1e-6)
