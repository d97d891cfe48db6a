"""The op harness (tools/op_harness.py) as tests: every case compares the Vulkan backend with the NumPy
reference within the case's stated tolerance (NMSE, or equality for sampling and integer outputs).
Run on lavapipe in CI and on any GPU; standalone: python -m pytest tests/test_ops_harness.py"""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "op_harness", Path(__file__).resolve().parent.parent / "tools" / "op_harness.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules["op_harness"] = harness          # dataclasses look their module up while it loads
_spec.loader.exec_module(harness)

CASES = harness.build_cases()
# shaders with a subgroup variant (*_sg) also run through their portable shared-memory variant
PORTABLE_OPS = ("matmul", "attention", "rms_norm", "add_rms_norm")


@pytest.fixture(scope="module")
def backends():
    return harness.Backends("kompute")


@pytest.fixture(scope="module")
def portable_backends():
    return harness.Backends("kompute", subgroups=False)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_op_matches_numpy(backends, case):
    r = backends.check(case)
    assert r.ok, (f"{case.name} on {backends.vk.device_name}: error {r.error:.3e} > {case.tolerance(backends.vk):.0e} "
                  f"{r.detail}")


PORTABLE = [c for c in CASES if c.op in PORTABLE_OPS]


@pytest.mark.parametrize("case", PORTABLE, ids=[c.name for c in PORTABLE])
def test_op_matches_numpy_portable_reductions(portable_backends, case):
    r = portable_backends.check(case)
    assert r.ok, f"{case.name} (shared-memory reductions): error {r.error:.3e} {r.detail}"


def test_every_op_and_weight_type_is_covered():
    abstract = {m for m in dir(harness.Ops) if getattr(getattr(harness.Ops, m), "__isabstractmethod__", False)}
    not_ops = {"tensor", "weight", "write", "read", "record", "run", "set_step", "set_sampling"}
    assert abstract - not_ops <= {c.op for c in CASES}
    for op in ("matmul", "get_rows"):
        covered = {c.label.split()[0] for c in CASES if c.op == op}
        assert covered == {harness.T(t).name for t in harness.WEIGHT_TYPES}


def test_harness_detects_a_wrong_result(backends):
    """The comparison can fail: the Vulkan matmul of one weight against the reference of another."""
    a = harness.matmul_case(harness.T.Q4_0, 3, 96, 37, seed=1)
    b = harness.matmul_case(harness.T.Q4_0, 3, 96, 37, seed=2)
    got = harness.execute(backends.vk, a.prepare(backends.vk))[0]
    want = harness.execute(backends.ref, b.prepare(backends.ref))[0]
    assert harness.nmse(got, want) > harness.NMSE_TOL
    assert not np.allclose(got, want)


def test_rope_positions_are_used(backends):
    """The per-row positions case cannot pass by ignoring them: the Vulkan result with positions differs
    from the reference's pos + t rotation of the same rows."""
    with_pos = harness.rope_case(True, 9, 50, 4, 64, 64, positions=[0, 1, 2, 0, 1, 0, 1, 2, 3], cap=12)
    plain = harness.rope_case(True, 9, 50, 4, 64, 64, cap=12)
    got = harness.execute(backends.vk, with_pos.prepare(backends.vk))[0]
    want = harness.execute(backends.ref, plain.prepare(backends.ref))[0]
    assert harness.nmse(got, want) > 1e-3


# Every decode mat-vec kernel (GPT4ALL_MATVEC), whichever is the default: v1 = matmul.comp on the padded
# layouts; v2 = Q4_0 / Q8_0 / Q4_K / Q6_K in the split layout, read by matmul_vec.comp for one row and by every other
# typed kernel (batched matmul, get_rows, add/mul_weight) through dequant8v; v3 = v2 with Q4_0 rows of whole
# 1024-weight tiles in the tile layout.
MATVEC_OPS = ("matmul", "matmul_glu", "matmul_stack", "matmul_stack+rope_qkv", "get_rows", "add_weight", "mul_weight")
MATVEC_CASES = [c for c in CASES if c.op in MATVEC_OPS]


@pytest.fixture(scope="module", params=[("v1", None), ("v1", False), ("v2", None), ("v2", False), ("v3", None),
                                        ("v3", False)],
                ids=["v1-subgroup", "v1-portable", "v2-subgroup", "v2-portable", "v3-subgroup", "v3-portable"])
def matvec_backends(request):
    matvec, subgroups = request.param
    return harness.Backends("kompute", subgroups=subgroups, matvec=matvec)


@pytest.mark.parametrize("case", MATVEC_CASES, ids=[c.name for c in MATVEC_CASES])
def test_op_matches_numpy_each_matvec_kernel(matvec_backends, case):
    r = matvec_backends.check(case)
    assert r.ok, f"{case.name} (matvec {matvec_backends.vk.matvec}): error {r.error:.3e} {r.detail}"


def test_matvec_choice_picks_the_kernel(matvec_backends):
    """A one-row Q4_0 / Q8_0 / Q4_K / Q6_K matmul dispatches matmul_vec on the split layout under v2, matmul.comp
    under v1."""
    vk = matvec_backends.vk
    for typ, width in ((harness.T.Q4_0, 96), (harness.T.Q8_0, 96), (harness.T.Q4_K, 512), (harness.T.Q6_K, 512)):
        assert matvec_backends.check(harness.matmul_case(typ, 1, width, 37)).ok
    shaders = {key[0] for key in vk._algos}
    v2 = {f"matmul_vec_{t}_split{vk._sg}" for t in ("q4_0", "q8_0", "q4_k", "q6_k")}
    v1 = {f"matmul_{t}{vk._sg}" for t in ("q4_0", "q8_0", "q4_k", "q6_k")}
    assert (v2 <= shaders and not v1 & shaders) if vk.matvec != "v1" else (v1 <= shaders and not v2 & shaders)
    # v3: a Q4_0 row of whole 1024-weight tiles takes the tile layout, other widths the split one; with integer
    # dot products (subgroup builds on a device that has them) its x is rounded to 8 bits (the _idot build)
    assert matvec_backends.check(harness.matmul_case(harness.T.Q4_0, 1, 2048, 37)).ok
    tile = {key[0] for key in vk._algos if key[0].startswith("matmul_vec_q4_0_tile")}
    assert bool(tile) == (vk.matvec == "v3")
    if tile:
        assert tile == {f"matmul_vec_q4_0_tile{'_idot' if vk.integer_dot else ''}{vk._sg}"}
        assert vk.integer_dot == (vk.subgroups and vk.info.integer_dot and os.environ.get("GPT4ALL_INT_DOT") != "0")


def _device_data(vk, buf, dtype) -> np.ndarray:
    """A device-only kp buffer's contents, copied into a host tensor of its element type ``dtype`` (kp copies
    only between tensors of one type, and its Python module cannot report the type)."""
    import kp
    host = vk.mgr.tensor_t(np.zeros(buf.size(), dtype), kp.TensorTypes.host)
    vk.mgr.sequence().eval(kp.OpTensorCopy([buf, host]))
    return np.asarray(host.data())


def test_tile_layout_made_on_the_device_matches_numpy():
    """v3 uploads Q4_0 in the split layout and permutes it into the tile layout on the GPU (tile_repack.comp):
    the words must be exactly vulkan_ops.repack_tile's, for several tiles per row and rows per chunk."""
    from engine.backends import vulkan_ops
    vk = harness.Backends("kompute", matvec="v3").vk
    rng = np.random.default_rng(3)
    for rows, width in ((3, 1024), (5, 3072)):
        raw = harness.random_weight(rng, harness.T.Q4_0, rows, width)
        lay = vk._split_layout(harness.T.Q4_0, width)
        assert lay.shader == "q4_0_tile"
        buf = vk._upload_split(lay, raw, harness.T.Q4_0, rows, width)
        want = vulkan_ops.repack_tile(raw, harness.T.Q4_0, rows, width)
        np.testing.assert_array_equal(_device_data(vk, buf, np.uint32)[: want.size], want)


def test_matvec_kernel_name_is_checked():
    for bad in ("v4", "v1:4x64", "v2:0x64", "v2:4x2048", "v2:4", "v3:4x48"):
        with pytest.raises(ValueError, match="matvec"):
            harness.Backends("kompute", matvec=bad)


# Both RMSNorm kernel sets (GPT4ALL_NORM): v1 (the default: shared-memory reductions, add_rms_norm as two
# dispatches) is what the cases above run; v2 (subgroup reductions, add_rms_norm in one dispatch) here.
NORM_CASES = [c for c in CASES if c.op in ("rms_norm", "add_rms_norm")]


@pytest.fixture(scope="module", params=[None, False], ids=["subgroup", "portable"])
def norm_v2_backends(request):
    return harness.Backends("kompute", subgroups=request.param, norm="v2")


@pytest.mark.parametrize("case", NORM_CASES, ids=[c.name for c in NORM_CASES])
def test_op_matches_numpy_norm_v2(norm_v2_backends, case):
    r = norm_v2_backends.check(case)
    assert r.ok, f"{case.name} (norm v2): error {r.error:.3e} {r.detail}"


def test_norm_choice_picks_the_kernels():
    """v1 runs add_rms_norm as add + rms_norm; v2 as one add_rms_norm dispatch."""
    case = [c for c in NORM_CASES if c.op == "add_rms_norm"][0]
    for norm, want, unwanted in (("v1", "rms_norm", "add_rms_norm"), ("v2", "add_rms_norm", "add")):
        b = harness.Backends("kompute", norm=norm)
        assert b.check(case).ok
        shaders = {key[0].removesuffix("_sg") for key in b.vk._algos}
        assert want in shaders and unwanted not in shaders, (norm, shaders)
    with pytest.raises(ValueError, match="GPT4ALL_NORM"):
        harness.Backends("kompute", norm="v3")


# v2's rows per workgroup and workgroup size are specialization constants: odd and extreme choices
# (more rows than threads, fewer threads than a subgroup, not powers of two) must give the same results;
# so must the unit-per-thread loop that Q4_0 / Q8_0 leave for their lane kernel (GPT4ALL_MATVEC_LANES=0)
MATVEC_ONE_ROW = [c for c in CASES if c.op in ("matmul", "matmul_glu", "matmul_stack", "matmul_stack+rope_qkv")
                  and " x[1/1," in f" {c.label}"]


@pytest.fixture(scope="module", params=[("v2:32x8", None, True), ("v2:3x48", False, True), ("v2:1x256", None, True),
                                        ("v2:4x64", None, False), ("v3:3x32", False, True), ("v3:16x128", None, True)],
                ids=["32x8", "3x48-portable", "1x256", "4x64-no-lanes", "v3-3x32-portable", "v3-16x128"])
def tuned_backends(request):
    matvec, subgroups, lanes = request.param
    b = harness.Backends("kompute", subgroups=subgroups, matvec=matvec)
    b.vk.matvec_lanes = b.vk_split.matvec_lanes = b.vk.matvec_lanes and lanes
    return b


def test_small_matvecs_take_half_the_rows_on_gpus_only():
    """_matvec_nr halves NR for matrices too small to fill a GPU with workgroups; a CPU device (few workgroups,
    each looping over its groups) keeps NR: halving there only reloaded x twice as often (lavapipe decode 5.4 ->
    4.1 tok/s on SmolLM2 until stop 24)."""
    import dataclasses
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import MATVEC_MIN_GROUPS, VulkanOps
    info = choose("kompute")
    cpu = VulkanOps(dataclasses.replace(info, type="cpu"), matvec="v3:4x128")
    gpu = VulkanOps(dataclasses.replace(info, type="discrete"), matvec="v3:4x128")
    small, big = 576, MATVEC_MIN_GROUPS * 4
    assert (cpu._matvec_nr(small), cpu._matvec_nr(big)) == (4, 4)
    assert (gpu._matvec_nr(small), gpu._matvec_nr(big)) == (2, 4)


@pytest.mark.parametrize("case", MATVEC_ONE_ROW, ids=[c.name for c in MATVEC_ONE_ROW])
def test_matvec_v2_tuning_keeps_results(tuned_backends, case):
    r = tuned_backends.check(case)
    assert r.ok, f"{case.name} (matvec {tuned_backends.vk.matvec_kernel}): error {r.error:.3e} {r.detail}"


# rope_qkv in the decode q/k/v mat-vec's epilogue (matmul_vec.comp -DROPE): the cases above check the results on
# every kernel; these check which dispatches were recorded, so a fusion silently not taken (or taken where a
# rotated pair would straddle two workgroup passes) shows
ROPE_EPILOGUE_CASES = [c for c in CASES if c.op == "matmul_stack+rope_qkv"]


def _dispatched(prog) -> list:
    """The shaders a recorded program dispatches, in order (its barriers left out)."""
    return [shader for shader, _, _ in prog.labels if shader != "barrier"]


def _shaders_recorded(ops, case) -> list:
    return _dispatched(case.prepare(ops).program)


def test_rope_epilogue_is_one_dispatch_where_it_fits(tuned_backends):
    """One row, stacked q/k/v weights, llama's pairing (neox=False) and an even NR (rows per workgroup pass): the
    pair is one matmul_vec_stack_rope_* dispatch; odd NR, neox, a prompt or weights that cannot stack (F16) keep
    rope_qkv as its own dispatch after the q/k/v ones."""
    vk = tuned_backends.vk
    even_nr = vk.matvec_kernel.nr % 2 == 0
    for case in ROPE_EPILOGUE_CASES:
        shaders = _shaders_recorded(vk, case)
        fits = " x[1/1," in case.label and " neox" not in case.label and not case.label.startswith("F16")
        if fits and even_nr and vk.rope_epilogue:           # (unless the run sets GPT4ALL_ROPE_EPILOGUE=0)
            assert len(shaders) == 1 and shaders[0].startswith("matmul_vec_stack_rope_"), (case.name, shaders)
        else:
            assert shaders[-1] == "rope_qkv" and not any("stack_rope" in s for s in shaders), (case.name, shaders)
    assert tuned_backends.check(ROPE_EPILOGUE_CASES[0]).ok


def test_rope_epilogue_can_be_turned_off(monkeypatch):
    """GPT4ALL_ROPE_EPILOGUE=0 (an A/B switch for GPU timings) records the two dispatches, with the same results."""
    monkeypatch.setenv("GPT4ALL_ROPE_EPILOGUE", "0")
    b = harness.Backends("kompute", matvec="v2:4x64")
    for case in ROPE_EPILOGUE_CASES[:2]:
        assert _shaders_recorded(b.vk, case) == [f"matmul_vec_stack_q4_0_split{b.vk._sg}", "rope_qkv"]
        r = b.check(case)
        assert r.ok, f"{case.name} (epilogue off): error {r.error:.3e} {r.detail}"


def test_rope_epilogue_keeps_the_order_of_other_ops(monkeypatch):
    """The q/k/v dispatch is held back until the next op is recorded: an op other than rope_qkv on its outputs
    (here a scale of q, then rope_qkv) records it first, unfused, and so does the end of record()."""
    monkeypatch.delenv("GPT4ALL_ROPE_EPILOGUE", raising=False)
    vk = harness.Backends("kompute", matvec="v2:4x64").vk
    rng = np.random.default_rng(0)
    w = [vk.weight(f"w{i}", harness.T.Q4_0, (64, r), harness.random_weight(rng, harness.T.Q4_0, r, 64))
         for i, r in enumerate((32, 16, 16))]
    x, q, k, v = vk.tensor(1, 64), vk.tensor(1, 32), vk.tensor(1, 16), vk.tensor(1, 16)
    kc, vc = vk.tensor(8, 16), vk.tensor(8, 16)
    with vk.record() as prog:
        vk.matmul_stack([q, k, v], w, x)
        vk.scale(q, q, 2.0)
        vk.rope_qkv(q, k, v, kc, vc, 2, 1, 16, 16, 10000.0, False)
    assert _dispatched(prog) == [f"matmul_vec_stack_q4_0_split{vk._sg}", "scale",
                                                                 "rope_qkv"]
    with vk.record() as prog:
        vk.matmul_stack([q, k, v], w, x)
    assert _dispatched(prog) == [f"matmul_vec_stack_q4_0_split{vk._sg}"]
    with vk.record() as prog:                   # straight after it: one dispatch
        vk.matmul_stack([q, k, v], w, x)
        vk.rope_qkv(q, k, v, kc, vc, 2, 1, 16, 16, 10000.0, False)
    assert _dispatched(prog) == [f"matmul_vec_stack_rope_q4_0_split{vk._sg}"]
    q2, k2, v2 = vk.tensor(1, 32), vk.tensor(1, 16), vk.tensor(1, 16)
    with vk.record() as prog:                   # two held in a row: the first is recorded as it is, in order
        vk.matmul_stack([q, k, v], w, x)
        vk.matmul_stack([q2, k2, v2], w, x)
        vk.rope_qkv(q2, k2, v2, kc, vc, 2, 1, 16, 16, 10000.0, False)
    assert _dispatched(prog) == [f"matmul_vec_stack_q4_0_split{vk._sg}",
                                                                 f"matmul_vec_stack_rope_q4_0_split{vk._sg}"]


def test_stacked_weights_keep_their_keys_ids():
    """VulkanOps._stack caches a stack under its weights' ids: those weights must stay alive with the entry, or new
    weights allocated where they were would find the old stack under their ids and multiply by its rows (on the
    H100 the decode-tuning cases above failed that way now and then: a GLU case got another case's stack, 1e6
    errors).  Checked directly, as an id is reused only when the allocator happens to pick the same address."""
    import gc
    import weakref
    vk = harness.Backends("kompute", matvec="v2:4x64").vk
    rng = np.random.default_rng(0)
    w = [vk.weight(n, harness.T.Q4_0, (64, 8), harness.random_weight(rng, harness.T.Q4_0, 8, 64)) for n in "gu"]
    x, out = vk.tensor(1, 64), vk.tensor(1, 8)
    with vk.record():
        vk.matmul_glu(out, w[0], w[1], x, "silu")            # one row: the stacked gate-up mat-vec
    handles = [weakref.ref(wi.handle) for wi in w]
    del w
    gc.collect()
    assert all(h() is not None for h in handles)


# Both sampling kernels (GPT4ALL_SAMPLE): v1 (sample.comp, one workgroup) and v2 (the default, what the cases
# above run: sample_partial.comp over slices of the vocabulary, then sample.comp -DSLICES in one workgroup).
# sample.comp's workgroup size is a specialization constant: 128 on CPU devices, up to 1024 on GPUs; both ends
# (and one between) must pick the same tokens.  v2 also runs with slices and candidate budgets far below its
# defaults (lavapipe: 4 slices, 512 candidates), so the cases' vocabularies span many slices and short last
# slices, slices shorter than top-k (sent whole, padded) and top-k beyond the budget (selected from scratch):
# 256x32/16 (k 40 > 16 candidates), 96x64/64, 24x128/512 (slices shorter than k 40 and 100; more slices than
# the merge's 32 threads, so a thread reduces several arg-maxes), 1000x1024/40 (k 40 = the budget, k 100 beyond it)
SAMPLE_CASES = [c for c in CASES if c.op in ("sample", "advance")]
SAMPLE_KERNELS = [("v1", 32), ("v1", 256), ("v1", 1024), ("v2", 32), ("v2", 256), ("v2", 1024),
                  ("v2:256x32/16", 64), ("v2:96x64/64", 128), ("v2:24x128/512", 32), ("v2:1000x1024/40", 1024)]


@pytest.fixture(scope="module", params=SAMPLE_KERNELS, ids=[f"{k}-wg{wg}" for k, wg in SAMPLE_KERNELS])
def sample_wg_backends(request):
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    kernel, wg = request.param
    b = harness.Backends("kompute")
    b.vk = VulkanOps(choose("kompute"), sample_wg=wg, sample=kernel)
    assert str(b.vk.sample_kernel).startswith(kernel)
    return b


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[c.name for c in SAMPLE_CASES])
def test_sample_workgroup_sizes_pick_the_same_tokens(sample_wg_backends, case):
    r = sample_wg_backends.check(case)
    assert r.ok, (f"{case.name} (sample kernel {sample_wg_backends.vk.sample_kernel}, workgroup "
                  f"{sample_wg_backends.vk.sample_wg}): {r.detail}")


def _sample_once(ops, logits, history, temp, top_k, top_p, min_p, penalty, last_n, u):
    lt, ht, tok = ops.tensor(1, len(logits)), ops.tensor(len(history) + 2, 1, "i32"), ops.tensor(1, 1, "i32")
    ops.write(lt, logits[None, :])
    ops.write(ht, np.asarray(history, np.int32).reshape(-1, 1))
    with ops.record() as prog:
        ops.sample(tok, lt, ht)
    ops.set_step(1, 0)
    ops.set_sampling(temp, top_k, top_p, min_p, penalty, last_n, [u], len(history))
    ops.run(prog)
    return int(ops.read(tok)[0, 0])


@pytest.mark.parametrize("ties, k, want", [((10, 601, 603, 605), 5, 10), ((601, 603, 605), 5, 601),
                                           ((605, 10, 603), 6, 603)],
                         ids=["across-slices", "in-one-slice", "two-of-three"])
def test_sample_ties_at_the_top_k_cut_go_to_the_lowest_ids(sample_wg_backends, ties, k, want):
    """Equal logits straddling the top-k cut: the candidates keep the lowest ids (NumPy's stable order; the
    reference's argpartition may keep any of them, so the expected id is given here).  Four distinct top logits
    then the tied ones; u = 0.999 draws the last survivor (its probability is ~1.2%)."""
    rng = np.random.default_rng(9)
    logits = rng.uniform(-6.0, -1.0, 1001).astype(np.float32)
    logits[[620, 621, 622, 623]] = [5.0, 4.0, 3.0, 2.0]           # a slice with the top 4 and ties 601..605
    logits[list(ties)] = 1.0
    got = _sample_once(sample_wg_backends.vk, logits, [7], 1.0, k, 1.0, 0.0, 1.0, 64, 0.999)
    assert got == want, f"sample kernel {sample_wg_backends.vk.sample_kernel}: {got}"


def _okey(values: np.ndarray) -> np.ndarray:
    """sample_select.glsl's okey: float32 -> uint32 of the same order."""
    u = np.asarray(values, np.float32).view(np.uint32)
    return np.where(u & 0x80000000, ~u, u | 0x80000000).astype(np.uint32)


def test_sample_slices_leave_their_arg_max_or_candidates():
    """What sample_partial.comp leaves for the merge, read back (a wrong candidate the draw happens not to reach
    would pass the token cases): per slice of 96 logits (11 slices, the last of 41) its penalised arg-max
    (greedy), or its K = 5 largest penalised logits as keys and ids, ties at the cut to the lowest ids (a slice
    of 8 equal maxima; one whose 5th is shared by 3), the 41-logit slice whole for K = 60, padded with
    (0, 0xFFFFFFFF); and for top-k beyond the budget of 64 the penalised logits in scratch."""
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    from engine.sampling import apply_repeat_penalty
    vk = VulkanOps(choose("kompute"), sample="v2:96x64/64")
    nv, sl, cands, G = 1001, 96, 64, 11
    rng = np.random.default_rng(4)
    logits = rng.standard_normal(nv).astype(np.float32)
    logits[[200, 201, 202, 203]] = [10.0, 9.0, 8.0, 7.0]           # slice 2: 200 penalised below 202
    logits[[250, 230, 210]] = 5.0                                   # ... its 5th is one of three
    logits[[500, 490, 570, 520, 481, 555, 560, 575]] = 6.0          # slice 5: 8 equal maxima
    history = [200, 999, -3, 1001, 200, 13, 490]                    # 999 in the short last slice
    pen = apply_repeat_penalty(logits, np.asarray(history), 1.3, 64)
    assert pen[490] < 6.0 and pen[200] < 8.0

    def parts():
        return _device_data(vk, vk._scratch[("sample parts", 2 * G * (1 + cands))], np.float32).view(np.uint32)

    _sample_once(vk, logits, history, 0.0, 40, 1.0, 0.0, 1.3, 64, 0.5)
    p = parts()
    for s in range(G):
        sl_vals = pen[s * sl:(s + 1) * sl]
        assert p[s] == sl_vals.max().view(np.uint32) and p[G + s] == s * sl + int(np.argmax(sl_vals)), s
    for k in (5, 60):
        _sample_once(vk, logits, history, 1.0, k, 1.0, 0.0, 1.3, 64, 0.5)
        p = parts()
        for s in range(G):
            ids = np.arange(s * sl, min((s + 1) * sl, nv))
            top = ids[np.lexsort((ids, -pen[ids]))][:k]              # value desc, id asc
            want = sorted(zip(_okey(pen[top]), top)) + [(0, 0xFFFFFFFF)] * (k - len(top))
            at = 2 * G + s * k
            got = sorted(zip(p[at:at + k], p[at + G * cands:at + G * cands + k]))
            assert got == sorted(want), (k, s, got, want)
        if k == 5:
            assert set(p[2 * G + G * cands + 2 * 5:][:5]) == {200, 201, 202, 203, 210}
            assert set(p[2 * G + G * cands + 5 * 5:][:5]) == {481, 500, 520, 555, 560}     # 490 penalised
    _sample_once(vk, logits, history, 1.0, 65, 1.0, 0.0, 1.3, 64, 0.5)
    np.testing.assert_allclose(_device_data(vk, vk._scratch[("logits", nv)], np.float32), pen, rtol=1e-6)


def test_sample_kernel_choice_records_its_dispatches(monkeypatch):
    """v2 (the default) records sample_partial over one workgroup per slice (on a GPU 2048 logits of 512 threads; on
    a CPU device at most CPU_SAMPLE_SLICES, of CPU_SAMPLE_MIN_SLICE logits or more, of 128 threads) then sample_merge;
    v1 one sample dispatch; GPT4ALL_SAMPLE picks; bad names are refused."""
    from engine.backends.vulkan_device import GpuInfo, choose
    from engine.backends.vulkan_ops import CPU_SAMPLE_MIN_SLICE, SampleKernel, VulkanOps
    monkeypatch.delenv("GPT4ALL_SAMPLE", raising=False)
    info = choose("kompute")
    for spec, want in ((None, ["sample_partial", "sample_merge"]), ("v1", ["sample"]),
                       ("v2:96x64", ["sample_partial", "sample_merge"])):
        vk = VulkanOps(info, sample=spec)
        for case in SAMPLE_CASES[:2]:            # vocabularies of 1000 and 500
            assert _shaders_recorded(vk, case) == want
        groups = sorted(key[2][0] for key in vk._algos if key[0] == "sample_partial")
        assert groups == ([] if spec == "v1" else [6, 11] if spec else [1, 1])   # 1000 / 96 -> 11, 500 / 96 -> 6
    monkeypatch.setenv("GPT4ALL_SAMPLE", "v1")
    assert VulkanOps(info).sample_kernel.version == "v1"
    gpu = GpuInfo(0, "gpu", "nvidia", "discrete", 80 << 30, 32, 1 << 31, 49152, 1024, True)
    assert SampleKernel().slicing(128256, gpu) == (2048, 512)             # 63 workgroups
    cpu = GpuInfo(0, "cpu", "cpu", "cpu", 2 << 30, 8, 1 << 27, 32768, 1024, True)
    assert SampleKernel().slicing(128256, cpu) == (32064, 128)            # 4 workgroups
    assert SampleKernel().slicing(49152, cpu) == (CPU_SAMPLE_MIN_SLICE, 128)      # 3
    assert SampleKernel().slicing(1000, cpu) == (CPU_SAMPLE_MIN_SLICE, 128)       # 1
    assert SampleKernel.parse("v2:2048x128/40").slicing(128256, gpu) == (2048, 128)
    for bad in ("v3", "v1:64x32", "v1/8", "v2:64", "v2:0x64", "v2:64x48", "v2:64x2048", "v2:70000x64", "v2/0",
                "v2/513"):
        with pytest.raises(ValueError, match="sample kernel"):
            VulkanOps(info, sample=bad)


def test_sample_workgroup_size_is_checked():
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    for bad in (8, 96, 4096):
        with pytest.raises(ValueError, match="sample workgroup"):
            VulkanOps(choose("kompute"), sample_wg=bad)


# The batched (prompt) matmul kernels (GPT4ALL_GEMM): 'rows' (matmul.comp -DBATCH, the default on a CPU device,
# so what the cases above run on lavapipe), 'tiled' (shaders/matmul_tiled.comp, the default on a GPU without
# tensor cores) and, on a device with f16 cooperative matrices (an NVIDIA GPU; not lavapipe), 'coopmat'
# (matmul_tiled.comp -DCOOPMAT, the default there; 'coopmat_wide' its 128 x 128 tiles), forced here on both weight layouts: v2's split Q4_0 / Q8_0 /
# Q4_K / Q6_K and v1's padded ones.
BATCH_MATMUL = [c for c in CASES if c.op in ("matmul", "matmul_glu") and " x[1/1," not in f" {c.label}"]


def _device_gemms() -> list:
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import _coopmat_usable
    return ["tiled"] + (["coopmat", "coopmat_wide"] if _coopmat_usable(choose("kompute")) else [])


GEMMS = _device_gemms()


# each also with K split in 3 parts (GPT4ALL_GEMM_SPLIT=3: partial sums + matmul_split_sum.comp); the automatic
# choice splits only long rows of few tiles, which these small cases seldom are
@pytest.fixture(scope="module", params=[(g, m, s) for g in GEMMS for m in ("v2", "v1") for s in ("auto", "3")],
                ids=lambda p: "-".join(p))
def tiled_backends(request):
    gemm, matvec, split = request.param
    b = harness.Backends("kompute", matvec=matvec, gemm=gemm)
    b.vk.gemm_split = b.vk_split.gemm_split = None if split == "auto" else int(split)
    return b


@pytest.mark.parametrize("case", BATCH_MATMUL, ids=[c.name for c in BATCH_MATMUL])
def test_tiled_gemm_matches_numpy(tiled_backends, case):
    r = tiled_backends.check(case)
    assert r.ok, (f"{case.name} ({tiled_backends.vk.gemm} GEMM, split {tiled_backends.vk.gemm_split}, matvec "
                  f"{tiled_backends.vk.matvec}): error "
                  f"{r.error:.3e} > {case.tolerance(tiled_backends.vk):.0e} {r.detail}")


def test_gemm_choice_picks_the_kernel(monkeypatch):
    """A batch matmul dispatches matmul_tiled_<type> under 'tiled', matmul_tiled_cm_<type> under 'coopmat',
    matmul_batch_<type> under 'rows'; the default follows the device; a bad name, or 'coopmat' on a device
    without cooperative matrices, is refused."""
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps, _coopmat_usable
    case = harness.matmul_case(harness.T.Q4_0, 70, 96, 130, cap=80)
    kernel_of = {"tiled": "tiled_", "coopmat": "tiled_cm_", "coopmat_wide": "tiled_cmw_", "rows": "batch_"}
    for gemm in GEMMS + ["rows"]:
        b = harness.Backends("kompute", gemm=gemm)
        assert b.check(case).ok
        kernels = {key[0] for key in b.vk._algos if key[0].startswith("matmul_")}
        assert kernels and all(k.startswith("matmul_" + kernel_of[gemm]) for k in kernels), (gemm, kernels)
        if gemm == "tiled":
            assert not any(k.startswith("matmul_tiled_cm") for k in kernels)
    monkeypatch.delenv("GPT4ALL_GEMM", raising=False)
    info = choose("kompute")
    assert VulkanOps(info).gemm == ("rows" if info.type == "cpu" else "coopmat_wide" if _coopmat_usable(info) else "tiled")
    with pytest.raises(ValueError, match="GPT4ALL_GEMM"):
        VulkanOps(info, gemm="square")
    if not _coopmat_usable(info):
        for gemm in ("coopmat", "coopmat_wide"):
            with pytest.raises(ValueError, match=f"GPT4ALL_GEMM={gemm}"):
                VulkanOps(info, gemm=gemm)


@pytest.mark.parametrize("gemm", GEMMS)
def test_batch_glu_takes_one_gemm_where_built(gemm, monkeypatch):
    """A batch's matmul_glu over stackable weights is one dispatch of matmul_tiled_cmw_glu_<type> on the GEMMs with a
    -DGLU build (GLU_GEMMS: on a device with cooperative matrices), with no separate glu dispatch and no split K;
    on the other GEMMs, and with GPT4ALL_GEMM_GLU=0, two GEMMs and the glu op.  The result matches NumPy either way."""
    from engine.backends.vulkan_ops import GLU_GEMMS
    case = harness.matmul_glu_case(harness.T.Q4_0, 70, 256, 100, cap=80)
    for flag in ("1", "0"):
        monkeypatch.setenv("GPT4ALL_GEMM_GLU", flag)
        b = harness.Backends("kompute", gemm=gemm)
        b.vk.gemm_split = b.vk_split.gemm_split = 3                     # a split is asked for: GLU must not take it
        r = b.check(case)
        assert r.ok, (gemm, flag, r.error, r.detail)
        shaders = [key[0] for key in b.vk._algos]
        one = gemm in GLU_GEMMS and flag == "1"
        assert any(s.startswith("matmul_tiled_cmw_glu_") for s in shaders) == one, (gemm, flag, shaders)
        assert (("glu_silu" in shaders) and ("matmul_split_sum" in shaders)) == (not one), (gemm, flag, shaders)


def test_k_split_fills_the_gpu_and_is_recorded_as_two_dispatches(monkeypatch):
    """The coopmat GEMM splits K when its tiles are few (a 128-row batch of a 1024-wide, 4096-long projection:
    32 tiles -> 16 parts of 8 steps), not when they are many, never below GEMM_MIN_SPLIT_STEPS steps a part;
    the f32 tiled GEMM only when GPT4ALL_GEMM_SPLIT says so;
    a split matmul records matmul_tiled_* then matmul_split_sum; GPT4ALL_GEMM_SPLIT is checked."""
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import GEMM_TARGET_GROUPS, VulkanOps
    vk = VulkanOps(choose("kompute"), gemm="tiled")
    assert vk._k_split(16, 2, 4096) == 1             # the f32 tiled GEMM: never unless asked
    vk.gemm = "coopmat"                              # (only _k_split looks at it here)
    assert vk._k_split(16, 2, 4096) == 16
    assert vk._k_split(GEMM_TARGET_GROUPS, 2, 4096) == 1
    assert vk._k_split(1, 1, 256) == 1 and vk._k_split(1, 1, 512) == 2
    vk.gemm_split = 3
    assert vk._k_split(1000, 2, 4096) == 3 and vk._k_split(1, 1, 40) == 2      # at most one part per step
    b = harness.Backends("kompute", gemm="tiled")
    b.vk.gemm_split = 3
    assert b.check(harness.matmul_case(harness.T.Q4_0, 70, 256, 100, cap=80, bias=True, acc=True)).ok
    shaders = [key[0] for key in b.vk._algos]
    assert any(s.startswith("matmul_tiled_") for s in shaders) and "matmul_split_sum" in shaders
    monkeypatch.setenv("GPT4ALL_GEMM_SPLIT", "0")
    with pytest.raises(ValueError, match="GPT4ALL_GEMM_SPLIT"):
        VulkanOps(choose("kompute"))


def _record_manager_extensions(monkeypatch) -> list:
    """The extension list of every kp.Manager VulkanOps opens from now on (the real Manager still opens)."""
    from engine.backends import vulkan_ops
    asked = []
    real_manager = vulkan_ops.kp.Manager

    def manager(index, queues, extensions):
        asked.append(list(extensions))
        return real_manager(index, queues, extensions)
    monkeypatch.setattr(vulkan_ops.kp, "Manager", manager)
    return asked


def test_coopmat_extensions_are_asked_for_when_gemm_or_attention_uses_them(monkeypatch):
    """The Manager gets COOPMAT_EXTENSIONS where the batched GEMM or the prompt attention runs on cooperative matrices
    (either alone: GPT4ALL_GEMM=tiled keeps attention_prompt_cm), and none where neither does.  A device is made to
    look capable (_coopmat_usable); the patched kp opens lavapipe with the extensions it lacks left out."""
    from engine.backends import vulkan_ops
    from engine.backends.vulkan_device import choose
    asked = _record_manager_extensions(monkeypatch)
    monkeypatch.setattr(vulkan_ops, "_coopmat_usable", lambda info: True)
    info = choose("kompute")
    for gemm, attention, wants in (("tiled", "coopmat", True), ("coopmat", "tiled", True), ("tiled", "tiled", False)):
        monkeypatch.setenv("GPT4ALL_ATTENTION_PROMPT", attention)
        asked.clear()
        vk = vulkan_ops.VulkanOps(info, gemm=gemm)
        assert (vk.gemm, vk.attention_prompt) == (gemm, attention)
        int_dot = [vulkan_ops.INTEGER_DOT_EXTENSION] if vk.integer_dot else []
        assert asked == [(list(vulkan_ops.COOPMAT_EXTENSIONS) if wants else []) + int_dot], (gemm, attention, asked)


def test_integer_dot_extension_is_asked_for_when_the_matvec_uses_it(monkeypatch):
    """The Manager gets VK_KHR_shader_integer_dot_product (whose feature the patched kp then enables) exactly when
    the decode mat-vec rounds x and uses integer dot products: a device that has them, subgroup builds, kp at patch
    level 4, and not GPT4ALL_INT_DOT=0."""
    from engine.backends import vulkan_ops
    from engine.backends.vulkan_device import choose
    asked = _record_manager_extensions(monkeypatch)
    info = choose("kompute")
    for env, subgroups in (("1", None), ("0", None), ("1", False)):
        monkeypatch.setenv("GPT4ALL_INT_DOT", env)
        asked.clear()
        vk = vulkan_ops.VulkanOps(info, gemm="tiled", subgroups=subgroups)
        want = (info.integer_dot and env == "1" and vk.subgroups and vulkan_ops.kp.PATCH_LEVEL >= 4)
        assert vk.integer_dot == want
        assert (vulkan_ops.INTEGER_DOT_EXTENSION in asked[0]) == want, (env, subgroups, asked)


def test_coopmat_needs_shape_subgroup_and_patched_kp(monkeypatch):
    """The tensor-core GEMM is offered only with f16 cooperative matrices of its shape, 32-wide subgroups and
    a kp that enables the extensions' features (tools/kp_patch.py PATCH_LEVEL 2)."""
    import dataclasses
    from engine.backends import vulkan_ops
    from engine.backends.vulkan_device import choose
    base = dataclasses.replace(choose("kompute"), subgroup_size=32, coopmat_shapes=((16, 8, 8), (16, 8, 16)))
    monkeypatch.setattr(vulkan_ops.kp, "PATCH_LEVEL", 2, raising=False)
    assert vulkan_ops._coopmat_usable(base)
    assert not vulkan_ops._coopmat_usable(dataclasses.replace(base, coopmat_shapes=((16, 16, 16),)))
    assert not vulkan_ops._coopmat_usable(dataclasses.replace(base, subgroup_size=64))
    monkeypatch.setattr(vulkan_ops.kp, "PATCH_LEVEL", 1)
    assert not vulkan_ops._coopmat_usable(base)


# The split decode attention with more key slices than the harness's 3: 16 (the GPU default, ATTENTION_SPLITS) and
# 20, more than attention_merge.comp loads ahead (PRE = 16), so its loop over the remaining slices runs too
SPLIT_ATTENTION = [c for c in CASES if c.op == "attention" and c.split]


@pytest.fixture(scope="module", params=[16, 20], ids=["16-slices", "20-slices"])
def many_slices(request):
    from engine.backends.numpy_ops import NumpyOps
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    return VulkanOps(choose("kompute"), attention_splits=request.param), NumpyOps()


@pytest.mark.parametrize("case", SPLIT_ATTENTION, ids=[c.name for c in SPLIT_ATTENTION])
def test_split_attention_with_many_slices(many_slices, case):
    vk, ref = many_slices
    r = harness.check(case, vk, ref)
    assert r.ok, f"{case.name} ({vk.attention_splits} slices): error {r.error:.3e} {r.detail}"


PROMPT_ATTENTION = [c for c in CASES if c.op == "attention" and c.label.startswith("prompt ")]


def _prompt_attention_kernel(mode: str, head_dim: int) -> str:
    """The kernel GPT4ALL_ATTENTION_PROMPT=mode should pick for a batch's attention with that head_dim."""
    from engine.backends.vulkan_ops import ATTENTION_PROMPT_CM_DIMS
    if mode == "rows" or head_dim % 4:
        return "attention"
    if mode == "coopmat" and head_dim in ATTENTION_PROMPT_CM_DIMS:
        return f"attention_prompt_cm_d{head_dim}"
    return "attention_prompt"


def test_prompt_attention_choice_picks_the_kernel(monkeypatch):
    """Query rows > 1 without key slices run the tiled attention_prompt.comp where head_dim allows it (and
    attention.comp for head_dim % 4 != 0); GPT4ALL_ATTENTION_PROMPT=rows keeps attention.comp; 'coopmat' (where
    the device has f16 cooperative matrices: the default there) runs attention_prompt_cm.comp for head_dim 64 and
    128 and the tiled kernel for the others.  Every mode matches NumPy (coopmat within the f16 tolerance)."""
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps, _coopmat_usable
    assert len(PROMPT_ATTENTION) >= 5
    assert {64, 128} <= {c.head_dim for c in PROMPT_ATTENTION}
    usable = _coopmat_usable(choose("kompute"))
    for mode in ("tiled", "rows") + (("coopmat",) if usable else ()):
        monkeypatch.setenv("GPT4ALL_ATTENTION_PROMPT", mode)
        b = harness.Backends("kompute")
        for case in PROMPT_ATTENTION:
            b.vk._algos.clear()
            r = b.check(case)
            assert r.ok, f"{case.name} ({mode}): error {r.error:.3e} > {case.tolerance(b.vk):.0e} {r.detail}"
            shaders = {key[0].removesuffix("_sg") for key in b.vk._algos}
            assert shaders == {_prompt_attention_kernel(mode, case.head_dim)}, (case.name, mode, shaders)
    monkeypatch.delenv("GPT4ALL_ATTENTION_PROMPT")
    assert VulkanOps(choose("kompute")).attention_prompt == ("coopmat" if usable else "tiled")
    for bad in ("flash",) + (() if usable else ("coopmat",)):
        monkeypatch.setenv("GPT4ALL_ATTENTION_PROMPT", bad)
        with pytest.raises(ValueError, match="GPT4ALL_ATTENTION_PROMPT"):
            harness.Backends("kompute")
