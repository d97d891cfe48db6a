"""Vulkan vs NumPy on random-weight llama files written on the spot (tools/random_gguf.py).

Unlike tests/test_vulkan_generation.py this needs no test-model cache, so it also runs on a GPU machine
that cannot receive model files (tools/gpu_run.sh runs it there).  The shape defaults to 'tiny' (2 layers,
Llama 3.2 rope frequency factors, tied embeddings); GPT4ALL_RANDOM_SHAPE=llama-3.2-1b checks the real 1B
shape on a GPU.  Greedy tokens are compared up to the first near-tie, as in test_vulkan_generation."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.sampling import SamplingParams
from tests.test_vulkan_generation import LOGIT_ATOL, numpy_greedy

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
    assert gpu.backend == "kompute" and gpu.device
    gpu.is_eog = cpu.is_eog = lambda t: False       # random weights: always compare N_TOKENS tokens
    prompt = cpu.tokenizer.encode("The capital of France is")

    want_logits, want, gaps = numpy_greedy(cpu, prompt, N_TOKENS)
    gpu.reset()
    got_logits = gpu.eval(prompt)
    err = float(np.max(np.abs(got_logits - want_logits)))
    assert err <= LOGIT_ATOL, f"{SHAPE} {qtype}: last-position logits differ by {err:.2e}"

    gpu.reset()
    got = list(gpu.generate(prompt, SamplingParams(temp=0.0, repeat_penalty=1.0), N_TOKENS))
    ties = [i for i, g in enumerate(gaps) if g < LOGIT_ATOL]
    upto = ties[0] if ties else len(want)
    print(f"\n{SHAPE} {qtype}: logit err {err:.1e}, tokens compared {upto}/{len(want)}")
    assert got[:upto] == want[:upto], f"{SHAPE} {qtype}: vulkan {got} != numpy {want} (up to step {upto})"
