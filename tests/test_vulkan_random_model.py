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
