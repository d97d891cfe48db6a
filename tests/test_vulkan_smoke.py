"""Smoke test of the Vulkan toolchain: kp finds a device, a SPIR-V compiled from shaders/ runs on it,
and its output equals NumPy's.  Uses kp directly (not VulkanOps) so a failure here points at the
driver / kp / shader build, not at the backend's Python code."""
from pathlib import Path

import numpy as np

import kp

SPV = Path(__file__).resolve().parent.parent / "engine" / "spv"


def test_kp_finds_a_device():
    mgr = kp.Manager()
    props = mgr.get_device_properties()
    assert props["device_name"]
    assert props["max_work_group_invocations"] >= 128      # the Vulkan minimum our shaders rely on


def test_matmul_f32_shader_matches_numpy():
    rng = np.random.default_rng(0)
    n_out, k, n_tok = 37, 64, 3                # odd output count; K a multiple of the 8-value chunk
    w = rng.standard_normal((n_out, k), dtype=np.float32)
    x = rng.standard_normal((n_tok, k), dtype=np.float32)
    mgr = kp.Manager()
    step = mgr.tensor_t(np.array([n_tok, 0, n_tok, 0, 0, 0, 0, 0], np.int32))
    t_w = mgr.tensor_t(w.reshape(-1).view(np.uint32))     # F32 weights are read as uint32 words
    t_x = mgr.tensor_t(x.reshape(-1))
    t_out = mgr.tensor_t(np.zeros(n_tok * n_out, np.float32))
    t_bias = mgr.tensor_t(np.zeros(1, np.float32))
    # push constants: K, nb, w_row0, n_out, out_col0, x_stride, out_stride, has_bias, bias_row0, rows_cap
    push = np.array([k, k // 8, 0, n_out, 0, k, n_out, 0, 0, n_tok], np.uint32).view(np.float32)
    algo = mgr.algorithm([step, t_w, t_x, t_out, t_bias], (SPV / "matmul_batch_f32.spv").read_bytes(),
                         [n_out, 1, 1], [], push)
    (mgr.sequence()
        .record(kp.OpTensorSyncDevice([step, t_w, t_x, t_out, t_bias]))
        .record(kp.OpAlgoDispatch(algo))
        .record(kp.OpTensorSyncLocal([t_out]))
        .eval())
    got = t_out.data().reshape(n_tok, n_out)
    want = x @ w.T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
