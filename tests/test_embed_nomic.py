"""nomic-bert (nomic-embed-text) against llama.cpp, on a tiny random-weight model in the real layout.

No nomic weights are reachable offline, so the test writes its own nomic-bert GGUF with
tools/random_bert.py: the tensor set, names, shapes and hyperparameter keys that llama.cpp's loader
expects (gguf-py's MODEL_TENSORS[NOMIC_BERT] / TENSOR_NAMES name them), random F32/F16 weights, and the
real WordPiece vocab borrowed from the all-MiniLM-L6-v2 test model.  What makes nomic-bert different
from BERT is all exercised: fused attn_qkv, NeoX-style RoPE on q and k (no position table), SwiGLU feed-forward
(silu(ffn_gate x) * ffn_up x), no biases on the projections, mean pooling, non-causal attention.

Oracles: llama-cpp-python (llama.cpp's nomic-bert graph, oracle venv, subprocess) for the pooled
vector of each token list, on our NumPy and Vulkan (lavapipe) backends, with all texts packed into one
forward pass (each row's RoPE position is its position inside its own sequence, ops.rope's
``positions``) and, for comparison, one text per pass; upstream gpt4all 2.8.2's
Embed4All for the SDK path (prefixes, Matryoshka layer norm + truncation) on the same file renamed
'nomic-embed-text-v1.5'.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import random_bert  # noqa: E402  (tools/ is a folder of scripts)

ORACLE_PYTHON = os.environ.get("GPT4ALL_ORACLE_PYTHON", "/opt/oracle/bin/python")
T = gguf.GGMLQuantizationType

# tiny but not degenerate: 4 heads of 16 dims, so RoPE rotates 8 frequency pairs per head
N_EMBD, N_HEAD, N_FF, N_LAYER, N_CTX = (getattr(random_bert.SHAPES["tiny"], k)
                                       for k in ("n_embd", "n_head", "n_ff", "n_layer", "n_ctx"))

TEXTS = ["hello",
         "The quick brown fox jumps over the lazy dog.",
         "Rotary position embeddings rotate each query and key pair by an angle that grows with the "
         "token's position, so attention sees relative distances; this text is long enough to reach "
         "positions where the low frequencies matter too."]


def write_nomic_bert(path: Path, vocab_model: Path, **kw) -> Path:
    """tools/random_bert.py's writer in the tiny shape (N_EMBD, N_HEAD, N_FF, N_LAYER, N_CTX above)."""
    return random_bert.write_nomic_bert(path, vocab_model, shape=random_bert.SHAPES["tiny"], **kw)


# ------------------------------------------------------------------ llama.cpp
_LLAMA_CPP = r"""
import json, sys
from llama_cpp import Llama
paths, texts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for path in paths:
    m = Llama(path, embedding=True, n_ctx=128, n_batch=128, n_ubatch=128, verbose=False)
    out[path] = [{"ids": m.tokenize(t.encode("utf-8")), "embedding": m.embed(t)} for t in texts]
    m.close()
print(json.dumps(out))
"""


def _oracle(script: str, *args: str) -> object:
    assert Path(ORACLE_PYTHON).exists(), f"oracle venv missing: {ORACLE_PYTHON} (see tools/setup.sh)"
    # -I: isolated mode, so this repo (with its own `gpt4all`) is not on the oracle's sys.path
    r = subprocess.run([ORACLE_PYTHON, "-I", "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def files(model_path, tmp_path_factory):
    """kind -> path: 'f32', 'f16' (matrices F16), 'base10k' (the f32 weights, another RoPE base)."""
    out = tmp_path_factory.mktemp("nomic")
    vocab = model_path("minilm-f16")
    return {"f32": write_nomic_bert(out / "nomic-tiny.f32.gguf", vocab, name="nomic-tiny"),
            "f16": write_nomic_bert(out / "nomic-tiny.f16.gguf", vocab, name="nomic-tiny",
                                    matrix_dtype=np.float16),
            "base10k": write_nomic_bert(out / "nomic-tiny.base10k.gguf", vocab, name="nomic-tiny",
                                        rope_base=10000.0)}


@pytest.fixture(scope="module")
def llama_cpp(files):
    """path -> [{'ids': llama.cpp's tokens (CLS ... SEP), 'embedding': its mean-pooled vector}] per text."""
    paths = [str(files["f32"]), str(files["f16"])]
    return _oracle(_LLAMA_CPP, json.dumps(paths), json.dumps(TEXTS))


def test_file_has_llama_cpp_nomic_bert_layout(files):
    r = gguf.GGUFReader(files["f16"])
    kv = {k: f.contents() for k, f in r.fields.items()}
    assert kv["general.architecture"] == "nomic-bert"
    assert kv["nomic-bert.rope.freq_base"] == 1000.0 and kv["nomic-bert.pooling_type"] == 1
    shapes = {t.name: [int(d) for d in t.shape] for t in r.tensors}
    assert shapes["blk.1.attn_qkv.weight"] == [N_EMBD, 3 * N_EMBD]          # GGUF order: [E, 3E]
    assert shapes["blk.0.ffn_gate.weight"] == shapes["blk.0.ffn_up.weight"] == [N_EMBD, N_FF]
    assert "position_embd.weight" not in shapes
    assert {t.name: t.tensor_type for t in r.tensors}["blk.0.ffn_down.weight"] == T.F16


@pytest.mark.parametrize("kind", ["f32", "f16"])
def test_numpy_matches_llama_cpp(files, llama_cpp, kind):
    from engine import load
    want = llama_cpp[str(files[kind])]
    ids = [w["ids"] for w in want]
    assert [len(i) for i in ids] == sorted({len(i) for i in ids}) and len(ids[-1]) > 40, ids
    m = load(files[kind], n_ctx=N_CTX)
    assert m.model.plan([len(i) for i in ids]) == [[0, 1, 2]]     # the three texts share one pass
    got = m.embed(ids)
    for g, w, text in zip(got, want, TEXTS):
        assert unit(g) @ unit(w["embedding"]) >= 0.9999, text
    _packed_equals_one_per_pass(m, ids, got)
    # the texts are told apart (the model is not degenerate), so agreement above means something
    v = [unit(w["embedding"]) for w in want]
    assert max(v[0] @ v[1], v[0] @ v[2], v[1] @ v[2]) < 0.99


def _packed_equals_one_per_pass(m, ids: list[list[int]], packed: np.ndarray) -> None:
    """Packing changes nothing: each sequence alone in its own pass gives the same vector, in either
    order.  What this catches is leakage between sequences (attention's seq_ids, mean_pool's ranges).
    It cannot catch a sequence rotated from its row index instead of from 0: RoPE scores depend only
    on the distance between two positions, so that differs by rounding alone.  Positions restart per
    sequence anyway (ops.rope's ``positions``), as llama.cpp's do, so the pass is the same computation
    as llama.cpp's, not merely an equivalent one; the rope ops' own tests check ``positions``."""
    alone = np.stack([m.embed([i])[0] for i in ids])
    np.testing.assert_allclose(packed, alone, rtol=1e-5, atol=1e-5)
    # and a pass holding the sequences in another order gives each the same vector again
    np.testing.assert_allclose(m.embed(ids[::-1])[::-1], packed, rtol=1e-5, atol=1e-5)


def test_a_wrong_rope_is_caught(files, llama_cpp):
    """Control: the same weights with another RoPE base give embeddings the check above rejects."""
    from engine import load
    want = llama_cpp[str(files["f32"])][-1]
    got = load(files["base10k"], n_ctx=N_CTX).embed([want["ids"]])[0]
    assert unit(got) @ unit(want["embedding"]) < 0.9999


def test_vulkan_matches_llama_cpp(files, llama_cpp):
    from engine import load
    want = llama_cpp[str(files["f16"])]
    m = load(files["f16"], device="kompute", n_ctx=N_CTX)
    assert m.backend == "kompute"
    ids = [w["ids"] for w in want]
    assert m.model.plan([len(i) for i in ids]) == [[0, 1, 2]]     # one pass on the GPU too
    got = m.embed(ids)
    for g, w, text in zip(got, want, TEXTS):
        assert unit(g) @ unit(w["embedding"]) >= 0.9999, text
    _packed_equals_one_per_pass(m, ids, got)
    m.close()


# ------------------------------------------------------------------ upstream gpt4all 2.8.2: SDK path
_UPSTREAM = r"""
import json, os, sys
from gpt4all import Embed4All
path, calls = sys.argv[1], json.loads(sys.argv[2])
e = Embed4All(os.path.basename(path), model_path=os.path.dirname(path), allow_download=False, device='cpu')
print(json.dumps([e.embed(texts, return_dict=True, **kw) for texts, kw in calls]))
"""


@pytest.mark.filterwarnings("ignore:Dimensionality .* less than the suggested minimum")   # upstream's too
def test_sdk_prefix_and_matryoshka_match_upstream_gpt4all(model_path, tmp_path):
    """Embed4All on a file named nomic-embed-text-v1.5: task prefixes, Matryoshka dims, as upstream."""
    from gpt4all import Embed4All
    path = write_nomic_bert(tmp_path / "nomic-embed-text-v1.5.f16.gguf", model_path("minilm-f16"),
                            name="nomic-embed-text-v1.5", matrix_dtype=np.float16, seed=1)
    calls = [(TEXTS, {}),                                            # default prefix: search_document
             (TEXTS[:2], {"prefix": "search_query", "dimensionality": 32}),
             (TEXTS[2:], {"prefix": "clustering", "dimensionality": 48})]
    upstream = _oracle(_UPSTREAM, str(path), json.dumps(calls))
    e = Embed4All(path.name, model_path=str(path.parent), allow_download=False)
    for (texts, kw), want in zip(calls, upstream):
        got = e.embed(texts, return_dict=True, **kw)
        assert got["n_prompt_tokens"] == want["n_prompt_tokens"], kw
        g, w = np.asarray(got["embeddings"]), np.asarray(want["embeddings"])
        assert g.shape == w.shape == (len(texts), kw.get("dimensionality", N_EMBD)), kw
        for a, b in zip(g, w):
            assert unit(a) @ unit(b) >= 0.9999, kw
    e.close()
