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
    # with stacked q/k/v (split layouts) and an even NR, decode ran rope_qkv in the mat-vec's epilogue
    if qtype != "F16" and gpu.ops.matvec != "v1" and gpu.ops.rope_epilogue and gpu.ops.matvec_kernel.nr % 2 == 0:
        assert any(key[0].startswith("matmul_vec_stack_rope_") for key in gpu.ops._algos)


def test_random_llama_in_the_tile_layout_matches_numpy(tmp_path, monkeypatch):
    """GPT4ALL_MATVEC=v3 (the GPU default): Q4_0 rows of whole 1024-weight tiles go in the tile layout,
    permuted on the device, and every kernel of a decode step reads it (stacked q/k/v, gate-up, tied LM head)."""
    monkeypatch.setenv("GPT4ALL_MATVEC", "v3:4x128")
    path = tmp_path / "random-tiny-tiles-Q4_0.gguf"
    write_random_gguf(path, "tiny-tiles", "Q4_0")
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    cpu = _reference_engine(path, gpu, monkeypatch)
    assert gpu.ops.matvec == "v3" and any(vw.handle.layout.shader == "q4_0_tile"
                                          for vw in gpu.model.blk[0].__dict__.values() if hasattr(vw, "handle"))
    gpu.is_eog = cpu.is_eog = lambda t: False
    compare_engines("tiny-tiles Q4_0 v3", cpu, gpu, N_TOKENS)
    # decode's q/k/v + rope_qkv ran as one dispatch over the tile layout (NR = 4 is even), unless switched off
    fused = any(key[0].startswith("matmul_vec_stack_rope_q4_0_tile") for key in gpu.ops._algos)
    assert fused == gpu.ops.rope_epilogue
    # with integer dot products every tile mat-vec is the _idot build (lavapipe has them)
    tile_kernels = {key[0] for key in gpu.ops._algos if key[0].startswith("matmul_vec_") and "_tile" in key[0]}
    assert tile_kernels and all(("_idot" in k) == gpu.ops.integer_dot for k in tile_kernels), tile_kernels


def _reference_engine(path, gpu, monkeypatch):
    """The NumPy engine on ``path``, rounding x wherever ``gpu``'s mat-vec does (op_harness.IntDotReference: its
    integer dot products over the tile layout), so that the usual tolerance holds; against the float engine the
    tiny-tiles logits differ by ~2e-2 with them."""
    import engine.llm
    from op_harness import IntDotReference
    with monkeypatch.context() as m:
        if gpu.ops.integer_dot:
            m.setattr(engine.llm, "_open_ops", lambda device: IntDotReference())
        return engine.load(path, n_ctx=64, n_batch=16)


def test_random_llama_with_float_tile_products_matches_the_float_engine(tmp_path, monkeypatch):
    """GPT4ALL_INT_DOT=0: the tile layout's float mat-vec (what devices without integer dot products run) against
    the plain NumPy engine."""
    monkeypatch.setenv("GPT4ALL_MATVEC", "v3:4x128")
    monkeypatch.setenv("GPT4ALL_INT_DOT", "0")
    path = tmp_path / "random-tiny-tiles-Q4_0.gguf"
    write_random_gguf(path, "tiny-tiles", "Q4_0")
    cpu = engine.load(path, n_ctx=64, n_batch=16)
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    assert not gpu.ops.integer_dot
    gpu.is_eog = cpu.is_eog = lambda t: False
    compare_engines("tiny-tiles Q4_0 v3 float", cpu, gpu, N_TOKENS)
    assert any(key[0] == "matmul_vec_glu_q4_0_tile_sg" for key in gpu.ops._algos)


def test_matvec_rows_per_workgroup_follow_the_matrix_size():
    """_matvec_nr on a GPU: NR halved below MATVEC_MIN_GROUPS workgroups, a q/k/v stack at 1.5 NR where that still
    leaves MATVEC_MIN_GROUPS (the 8B shape's 6144 rows: 6), NR otherwise; a CPU device and GPT4ALL_MATVEC_FIT=0 keep
    NR everywhere."""
    from types import SimpleNamespace
    from engine.backends.vulkan_ops import MATVEC_MIN_GROUPS, MatvecKernel, VulkanOps

    def nr(n_out, stack=False, device="discrete", fit=True):
        fake = SimpleNamespace(matvec_kernel=MatvecKernel.parse("v3:4x128"), matvec_fit=fit,
                               info=SimpleNamespace(type=device))
        return VulkanOps._matvec_nr(fake, n_out, stack)
    g = MATVEC_MIN_GROUPS
    assert [nr(4 * g - 1), nr(4 * g), nr(6 * g - 1, True), nr(6 * g, True), nr(6 * g), nr(14 * g)] == [2, 4, 4, 6, 4, 4]
    assert nr(3 * g, True) == 2 and nr(6 * g, True, device="cpu") == 4 and nr(6 * g, True, fit=False) == 4


def test_stack_of_six_rows_per_workgroup_matches_numpy(tmp_path, monkeypatch):
    """q/k/v with the rope epilogue at NR 6 (what the 8B shape's stack takes on a GPU): passes start at multiples of
    6, so one covers the end of q and the start of k; forced here on the tiny model through _matvec_nr."""
    from engine.backends.vulkan_ops import VulkanOps
    real = VulkanOps._matvec_nr
    monkeypatch.setattr(VulkanOps, "_matvec_nr", lambda self, n_out, stack=False: 6 if stack else real(self, n_out))
    monkeypatch.setenv("GPT4ALL_MATVEC", "v3:4x128")
    path = tmp_path / "random-tiny-tiles-Q4_0.gguf"
    write_random_gguf(path, "tiny-tiles", "Q4_0")
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    cpu = _reference_engine(path, gpu, monkeypatch)
    gpu.is_eog = cpu.is_eog = lambda t: False
    compare_engines("tiny-tiles Q4_0 v3, q/k/v at NR 6", cpu, gpu, N_TOKENS)
    specs = {key[4] for key in gpu.ops._algos if key[0].startswith("matmul_vec_stack_rope_")}
    assert specs and all(spec[1] == 6 for spec in specs), specs


def test_rope_epilogue_saves_a_dispatch_and_a_barrier_per_layer(tmp_path, monkeypatch):
    """Decode records each layer's q/k/v mat-vec and rope_qkv as one dispatch (matmul_vec.comp -DROPE), one
    barrier fewer too; GPT4ALL_ROPE_EPILOGUE=0 records them apart (the A/B switch for GPU timings)."""
    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    recorded = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("GPT4ALL_ROPE_EPILOGUE", flag)
        gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
        prog, _ = gpu.model.program(1, decode_steps=1)
        recorded[flag] = prog.n_dispatches, prog.n_barriers, [op for op, _, _ in prog.labels]
        n_layer = gpu.model.hp.n_layer
        gpu.close()
    (fused, fused_barriers, fused_ops), (apart, apart_barriers, apart_ops) = recorded["1"], recorded["0"]
    assert (apart - fused, apart_barriers - fused_barriers) == (n_layer, n_layer), recorded
    assert sum(op.startswith("matmul_vec_stack_rope_") for op in fused_ops) == n_layer and "rope_qkv" not in fused_ops
    assert apart_ops.count("rope_qkv") == n_layer and not any("stack_rope" in op for op in apart_ops)


def test_random_llama_greedy_matches_numpy_without_the_rope_epilogue(tmp_path, monkeypatch):
    """The unfused pair (GPT4ALL_ROPE_EPILOGUE=0) still decodes as NumPy does (the other tests run the fused one)."""
    monkeypatch.setenv("GPT4ALL_ROPE_EPILOGUE", "0")
    path = tmp_path / f"random-{SHAPE}-Q4_0.gguf"
    write_random_gguf(path, SHAPE, "Q4_0")
    cpu = engine.load(path, n_ctx=64, n_batch=16)
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    assert not gpu.ops.rope_epilogue
    gpu.is_eog = cpu.is_eog = lambda t: False
    compare_engines(f"{SHAPE} Q4_0 rope epilogue off", cpu, gpu, N_TOKENS)
