"""quant_matvec's Numba kernels (the NumPy backend's decode products on quantised bytes) against the
float32 product of gguf-py's own dequantisation, and the NumPy engine with them against itself without
them on a real model (the pure-NumPy reference path, GPT4ALL_NUMBA=0)."""
import gguf.quants as gq
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

import engine
from engine.backends import quant_matvec
from engine.backends.numpy_ops import NumpyOps, _FusedMatmul

TYPES = sorted(quant_matvec.SUPPORTED, key=int)
# where the k-quants keep their float16 scales (gguf-py cannot quantise to them: random bytes get sane scales there)
F16_FIELDS = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}


def quantised(rng, rows, width, qtype):
    """A [rows, width] matrix of ``qtype`` as GGUF bytes, and gguf-py's dequantisation of it."""
    if qtype in F16_FIELDS:
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, (rows, width // block, block_bytes), dtype=np.uint8)
        for at in F16_FIELDS[qtype]:
            scale = (rng.uniform(1e-3, 1e-2, raw.shape[:2])).astype(np.float16)
            raw[:, :, at:at + 2] = scale[..., None].view(np.uint8)
        raw = raw.reshape(rows, -1)
    else:
        raw = gq.quantize(rng.standard_normal((rows, width)).astype(np.float32), qtype)
    return raw, gq.dequantize(raw, qtype).reshape(rows, width).astype(np.float32)


def test_numba_is_installed_and_on():
    # numba is a dependency in pyproject.toml: without it the CPU decode silently falls back to the
    # float32 path (4x the bytes), so the suite insists on it
    assert quant_matvec.numba is not None
    assert quant_matvec.available() and NumpyOps().quant_matvec


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: T(t).name)
@pytest.mark.parametrize("rows,width", [(64, 256), (100, 768), (576, 512), (130, 1536), (3, 256)])
def test_matvec_equals_dequantised_product(qtype, rows, width):
    rng = np.random.default_rng(rows * 7 + width)
    raw, w = quantised(rng, rows, width, qtype)
    x = rng.standard_normal(width).astype(np.float32)
    got = quant_matvec.QuantMatrix([raw], [qtype]).matvec(x)
    want = w.astype(np.float64) @ x.astype(np.float64)
    assert got.shape == (rows,) and got.dtype == np.float32
    # float32 sums of `width` terms, in another order than the float64 reference
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(w).sum(axis=1).max() * np.abs(x).max())


@pytest.mark.parametrize("types", [(T.Q4_0,) * 3, (T.Q4_K, T.Q4_1, T.Q4_0), (T.Q5_0, T.Q5_0, T.Q8_0),
                                   (T.Q4_K, T.Q6_K, T.Q8_0), (T.Q2_K, T.Q3_K, T.Q5_K)],
                         ids=lambda ts: "+".join(T(t).name for t in ts))
def test_stacked_parts_and_out_buffer(types):
    """q/k/v or gate/up stacks, of one type or mixed as gemma's (Q5_0 and Q8_0, Q4_K and Q6_K)."""
    rng = np.random.default_rng(1)
    parts = [quantised(rng, n, 256, t) for n, t in zip((70, 30, 30), types)]
    x = rng.standard_normal(256).astype(np.float32)
    m = quant_matvec.QuantMatrix([raw for raw, _ in parts], types)
    assert m.nibbles == all(t in quant_matvec.NIBBLE_TYPES for t in types)
    out = np.full((1, 130), np.nan, np.float32)
    m.matvec(x, out[0])
    want = np.concatenate([w for _, w in parts]).astype(np.float64) @ x
    np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert m.rows == 130 and m.width == 256


def test_float_types_are_refused_by_name():
    with pytest.raises(ValueError, match="F16"):
        quant_matvec.QuantMatrix([np.zeros((1, 64), np.uint8)], [T.F16])


def test_switch_off_by_environment(monkeypatch):
    monkeypatch.setenv("GPT4ALL_NUMBA", "0")
    assert not quant_matvec.available() and not NumpyOps().quant_matvec


@pytest.mark.parametrize("key", ["smollm2-q4_0", "smollm2-q8_0", "smollm2-q4_1", "gemma3-q4_k_m"])
def test_engine_decode_with_kernels_equals_reference_path(model_path, key):
    """SmolLM2 (Q4_0, Q8_0, and Q4_1 with a Q8_0 embedding table) and gemma3 (Q5_0, Q8_0, Q4_K and Q6_K,
    mixed within its q/k/v and down stacks): a prompt, then 12 greedy tokens on the NumPy engine with
    the kernels and without; logits within float32 rounding, the same tokens."""
    runs = {}
    for on in (True, False):
        llm = engine.load(model_path(key), device="cpu", n_ctx=128, n_threads=2)
        llm.ops.quant_matvec = on
        logits = [llm.eval(llm.tokenizer.encode("The capital of France is")).copy()]
        tokens = []
        for _ in range(12):
            tokens.append(int(np.argmax(logits[-1])))
            logits.append(llm.eval([tokens[-1]]).copy())
        runs[on] = (np.array(logits), tokens, llm)
    (lg_on, tok_on, llm_on), (lg_off, tok_off, llm_off) = runs[True], runs[False]
    assert tok_on == tok_off
    assert np.abs(lg_on - lg_off).max() < 1e-3 * np.abs(lg_off).max(), np.abs(lg_on - lg_off).max()
    # the kernels really ran: one repacked stack per q/k/v and gate/up, none without them
    n_layer = len(llm_on.model.blk)
    assert sum(k[0] == "quant" for k in llm_on.ops._stacked) == 2 * n_layer
    assert not any(k[0] == "quant" for k in llm_off.ops._stacked)


def test_profile_reports_the_bytes_a_product_read(model_path):
    llm = engine.load(model_path("smollm2-q4_0"), device="cpu", n_ctx=64, n_threads=2)
    llm.eval([1, 2, 3])
    llm.ops.profile = True
    try:
        llm.eval([4])
    finally:
        llm.ops.profile = False
    prog = next(p for (cap, *_), (p, _) in llm.model._programs.items() if cap == 1)
    fused = [s for s in prog.steps if isinstance(s, _FusedMatmul)]
    assert len(fused) == 2 * llm.model.hp.n_layer and all(s.q_cat is not None for s in fused)
    # Q4_0 repacked: 0.75 bytes a weight (4-bit values, a float32 scale and offset per 32)
    params = sum(s.q_cat.rows * s.q_cat.width for s in fused)
    assert sum(s.read_bytes for s in fused) == pytest.approx(0.75 * params, rel=0.01)
    matmuls = [t for t in llm.ops.timings(prog) if t["op"] == "matmul"]
    weights = sum(t["bytes"] for t in matmuls) / 0.75        # every product of the step, LM head included
    assert weights == pytest.approx(134.5e6, rel=0.02)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernels_run_on_the_callers_thread_count(model_path, n_threads):
    """n_threads (the SDK's, applied to BLAS through threadpoolctl) is the kernels' thread count too."""
    llm = engine.load(model_path("smollm2-q4_0"), device="cpu", n_ctx=32, n_threads=n_threads)
    llm.eval([1, 2])
    llm.eval([3])
    assert quant_matvec.numba.get_num_threads() == n_threads
