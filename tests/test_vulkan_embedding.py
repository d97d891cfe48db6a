"""Embedding models on the Vulkan backend: all-MiniLM-L6-v2 (BERT) pooled vectors equal the NumPy
engine's.  Exercises layer_norm, add_weight, gelu, non-causal attention with seq_ids (several texts
packed into one batch) and mean_pool on the GPU."""
import numpy as np
import pytest

import engine

TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "Vulkan on a CPU"]


@pytest.mark.parametrize("key", ["minilm-f16"])
def test_minilm_embeddings_match_numpy(model_path, key):
    path = model_path(key)
    cpu = engine.load(path)
    gpu = engine.load(path, device="kompute")
    assert gpu.backend == "kompute" and gpu.is_embedding
    batch = [cpu.tokenizer.encode(t) for t in TEXTS]
    want, got = cpu.embed(batch), gpu.embed(batch)
    assert got.shape == want.shape == (len(TEXTS), cpu.n_embd)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    # one text alone gives the same vector as inside the packed batch (seq_ids isolate sequences)
    np.testing.assert_allclose(gpu.embed(batch[1:2])[0], got[1], atol=1e-5)
