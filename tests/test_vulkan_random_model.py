"""Vulkan vs NumPy on random-weight llama files written on the spot (tools/random_gguf.py).

Unlike tests/test_vulkan_generation.py this needs no test-model cache, so it also runs on a GPU machine
that cannot receive model files (tools/gpu_run.sh runs it there).  The shape defaults to 'tiny' (2 layers,
Llama 3.2 rope frequency factors, tied embeddings); GPT4ALL_RANDOM_SHAPE=llama-3.2-1b checks the real 1B
shape on a GPU.  Greedy tokens are compared up to the first near-tie, as in test_vulkan_generation."""
import os
import sys
from pathlib import Path

import pytest

import engine
from tests.test_vulkan_generation import compare_engines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from random_gguf import write_random_gguf  # noqa: E402

SHAPE = os.environ.get("GPT4ALL_RANDOM_SHAPE", "tiny")
N_TOKENS = 8


@pytest.mark.parametrize("qtype", ["Q4_0", "Q8_0", "F16"])
def test_random_llama_greedy_matches_numpy(tmp_path, qtype):
    path = tmp_path / f"random-{SHAPE}-{qtype}.gguf"
    write_random_gguf(path, SHAPE, qtype)
    cpu = engine.load(path, n_ctx=64, n_batch=16)
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    gpu.is_eog = cpu.is_eog = lambda t: False       # random weights: always compare N_TOKENS tokens
    compare_engines(f"{SHAPE} {qtype}", cpu, gpu, N_TOKENS)


@pytest.mark.parametrize("matvec", ["v3:4x128", "v4:4x128/2"])
def test_random_llama_in_the_tile_layout_matches_numpy(tmp_path, monkeypatch, matvec):
    """GPT4ALL_MATVEC=v3 / v4 (the GPU's): Q4_0 rows of whole 1024-weight tiles go in the tile layout,
    permuted on the device, and every kernel of a decode step reads it (stacked q/k/v, gate-up, tied LM head)."""
    monkeypatch.setenv("GPT4ALL_MATVEC", matvec)
    path = tmp_path / "random-tiny-tiles-Q4_0.gguf"
    write_random_gguf(path, "tiny-tiles", "Q4_0")
    cpu = engine.load(path, n_ctx=64, n_batch=16)
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    assert gpu.ops.matvec == matvec[:2] and any(vw.handle.layout.shader == "q4_0_tile"
                                          for vw in gpu.model.blk[0].__dict__.values() if hasattr(vw, "handle"))
    gpu.is_eog = cpu.is_eog = lambda t: False
    compare_engines(f"tiny-tiles Q4_0 {matvec}", cpu, gpu, N_TOKENS)
