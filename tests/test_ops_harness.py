"""The op harness (tools/op_harness.py) as tests: every case compares the Vulkan backend with the NumPy
reference within the case's stated tolerance (NMSE, or equality for sampling and integer outputs).
Run on lavapipe in CI and on any GPU; standalone: python -m pytest tests/test_ops_harness.py"""
import importlib.util
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
    assert r.ok, f"{case.name} on {backends.vk.device_name}: error {r.error:.3e} > {case.tol:.0e} {r.detail}"


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
# 1024-weight tiles in the tile layout; v4 = v3's layout, its tile rows read by one team per tile that keeps x in
# registers over several passes (on lavapipe each workgroup loops over many).
MATVEC_OPS = ("matmul", "matmul_glu", "matmul_stack", "get_rows", "add_weight", "mul_weight")
MATVEC_CASES = [c for c in CASES if c.op in MATVEC_OPS]


@pytest.fixture(scope="module", params=[("v1", None), ("v1", False), ("v2", None), ("v2", False), ("v3", None),
                                        ("v3", False), ("v4", None), ("v4", False)],
                ids=["v1-subgroup", "v1-portable", "v2-subgroup", "v2-portable", "v3-subgroup", "v3-portable",
                     "v4-subgroup", "v4-portable"])
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
    # v3, v4: a Q4_0 row of whole 1024-weight tiles takes the tile layout, other widths the split one
    assert matvec_backends.check(harness.matmul_case(harness.T.Q4_0, 1, 2048, 37)).ok
    tile_specs = [key[-1] for key in vk._algos if key[0] == f"matmul_vec_q4_0_tile{vk._sg}"]
    assert bool(tile_specs) == (vk.matvec in ("v3", "v4"))
    # v4: the 2-tile row gets a 64-thread workgroup keeping x in registers (specialization constants WG, NR,
    # LANES, KEEP_X; the module's earlier cases recorded other widths' workgroups); v3 does not keep x
    assert all(spec[3] == (vk.matvec == "v4") for spec in tile_specs), tile_specs
    assert any(spec[0] == 64 for spec in tile_specs) or vk.matvec != "v4", tile_specs


def test_tile_layout_made_on_the_device_matches_numpy():
    """v3 uploads Q4_0 in the split layout and permutes it into the tile layout on the GPU (tile_repack.comp):
    the words must be exactly vulkan_ops.repack_tile's, for several tiles per row and rows per chunk."""
    import kp
    from engine.backends import vulkan_ops
    vk = harness.Backends("kompute", matvec="v3").vk
    rng = np.random.default_rng(3)
    for rows, width in ((3, 1024), (5, 3072)):
        raw = harness.random_weight(rng, harness.T.Q4_0, rows, width)
        lay = vk._split_layout(harness.T.Q4_0, width)
        assert lay.shader == "q4_0_tile"
        buf = vk._upload_split(lay, raw, harness.T.Q4_0, rows, width)
        host = vk.mgr.tensor_t(np.zeros(buf.size(), np.uint32), kp.TensorTypes.host)
        vk.mgr.sequence().eval(kp.OpTensorCopy([buf, host]))
        want = vulkan_ops.repack_tile(raw, harness.T.Q4_0, rows, width)
        np.testing.assert_array_equal(np.asarray(host.data()).view(np.uint32)[: want.size], want)


def test_matvec_kernel_name_is_checked():
    for bad in ("v5", "v1:4x64", "v2:0x64", "v2:4x2048", "v2:4", "v3:4x48", "v3:4x128/2", "v4:4x128/0", "v4:4x96/"):
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
MATVEC_ONE_ROW = [c for c in CASES if c.op in ("matmul", "matmul_glu", "matmul_stack") and " x[1/1," in f" {c.label}"]


@pytest.fixture(scope="module", params=[("v2:32x8", None, True), ("v2:3x48", False, True), ("v2:1x256", None, True),
                                        ("v2:4x64", None, False), ("v3:3x32", False, True), ("v3:16x128", None, True),
                                        ("v4:3x32/3", False, True), ("v4:8x64/1", None, True)],
                ids=["32x8", "3x48-portable", "1x256", "4x64-no-lanes", "v3-3x32-portable", "v3-16x128",
                     "v4-3x32-3-portable", "v4-8x64-1"])
def tuned_backends(request):
    matvec, subgroups, lanes = request.param
    b = harness.Backends("kompute", subgroups=subgroups, matvec=matvec)
    b.vk.matvec_lanes = b.vk_split.matvec_lanes = b.vk.matvec_lanes and lanes
    return b


@pytest.mark.parametrize("case", MATVEC_ONE_ROW, ids=[c.name for c in MATVEC_ONE_ROW])
def test_matvec_v2_tuning_keeps_results(tuned_backends, case):
    r = tuned_backends.check(case)
    assert r.ok, f"{case.name} (matvec {tuned_backends.vk.matvec_kernel}): error {r.error:.3e} {r.detail}"


# sample.comp's workgroup size is a specialization constant: 128 on CPU devices (what CI runs above),
# up to 1024 on GPUs; both ends (and one between) must pick the same tokens
SAMPLE_CASES = [c for c in CASES if c.op in ("sample", "advance")]


@pytest.fixture(scope="module", params=[32, 256, 1024])
def sample_wg_backends(request):
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    b = harness.Backends("kompute")
    b.vk = VulkanOps(choose("kompute"), sample_wg=request.param)
    return b


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[c.name for c in SAMPLE_CASES])
def test_sample_workgroup_sizes_pick_the_same_tokens(sample_wg_backends, case):
    r = sample_wg_backends.check(case)
    assert r.ok, f"{case.name} (sample workgroup {sample_wg_backends.vk.sample_wg}): {r.detail}"


def test_sample_workgroup_size_is_checked():
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    for bad in (8, 96, 4096):
        with pytest.raises(ValueError, match="sample workgroup"):
            VulkanOps(choose("kompute"), sample_wg=bad)


# The batched (prompt) matmul kernels (GPT4ALL_GEMM): 'rows' (matmul.comp -DBATCH, the default on a CPU device,
# so what the cases above run on lavapipe) and 'tiled' (shaders/matmul_tiled.comp, the default on a GPU), forced
# here on both weight layouts: v2's split Q4_0 / Q8_0 / Q4_K / Q6_K and v1's padded ones.
BATCH_MATMUL = [c for c in CASES if c.op in ("matmul", "matmul_glu") and " x[1/1," not in f" {c.label}"]


@pytest.fixture(scope="module", params=["v2", "v1"])
def tiled_backends(request):
    b = harness.Backends("kompute", matvec=request.param)
    b.vk.gemm = b.vk_split.gemm = "tiled"
    return b


@pytest.mark.parametrize("case", BATCH_MATMUL, ids=[c.name for c in BATCH_MATMUL])
def test_tiled_gemm_matches_numpy(tiled_backends, case):
    r = tiled_backends.check(case)
    assert r.ok, f"{case.name} (tiled GEMM, matvec {tiled_backends.vk.matvec}): error {r.error:.3e} {r.detail}"


def test_gemm_choice_picks_the_kernel(monkeypatch):
    """A batch matmul dispatches matmul_tiled_<type> under 'tiled', matmul_batch_<type> under 'rows'; the
    default follows the device type; a bad name is refused."""
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    case = harness.matmul_case(harness.T.Q4_0, 70, 96, 130, cap=80)
    for gemm in ("tiled", "rows"):
        b = harness.Backends("kompute")
        b.vk.gemm = gemm
        assert b.check(case).ok
        kernels = {key[0].split("_")[1] for key in b.vk._algos if key[0].startswith("matmul_")}
        assert kernels == {"tiled" if gemm == "tiled" else "batch"}, (gemm, kernels)
    monkeypatch.delenv("GPT4ALL_GEMM", raising=False)
    info = choose("kompute")
    assert VulkanOps(info).gemm == ("rows" if info.type == "cpu" else "tiled")
    with pytest.raises(ValueError, match="GPT4ALL_GEMM"):
        VulkanOps(info, gemm="square")


# GPT4ALL_ATTENTION_MERGE=last: the split decode attention merges its slices in the last workgroup to finish
# (attention_decode_merge) instead of a second dispatch; the cases run the same program at several
# positions and layers, so a counter left non-zero would show
ATTENTION_CASES = [c for c in CASES if c.op == "attention"]


@pytest.fixture(scope="module")
def merge_last_backends():
    mp = pytest.MonkeyPatch()
    mp.setenv("GPT4ALL_ATTENTION_MERGE", "last")
    try:
        yield harness.Backends("kompute")
    finally:
        mp.undo()


@pytest.mark.parametrize("case", ATTENTION_CASES, ids=[c.name for c in ATTENTION_CASES])
def test_attention_merged_by_its_last_slice(merge_last_backends, case):
    assert merge_last_backends.vk_split.attention_merge == "last"
    r = merge_last_backends.check(case)
    assert r.ok, f"{case.name} (merge in the last slice): error {r.error:.3e} {r.detail}"
