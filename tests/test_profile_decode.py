"""tools/profile_decode.py and VulkanOps.timings(): GPU timestamps around every recorded op (lavapipe here).

The profile must account for every op of the decode program (each dispatch, barrier and copy once, with
a non-negative time) and fold layers together under their weights' names."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import profile_decode  # noqa: E402
from random_gguf import write_random_gguf  # noqa: E402


def _assert_rows_add_up(prof: dict) -> None:
    """The folded rows account for the whole step's time."""
    assert abs(sum(r["us_per_token"] for r in prof["rows"]) - prof["gpu_us_per_token"]) < 1e-6 * prof["gpu_us_per_token"] + 1e-3


def _run_scale_program(ops):
    """A one-op program (scale of a 1 x 8 tensor), recorded and run once; returns it."""
    t = ops.tensor(1, 8)
    with ops.record() as prog:
        ops.scale(t, t, 2.0)
    ops.set_step(1, 0)
    ops.run(prog)
    return prog


def test_profile_covers_every_dispatch_of_a_decode_step(tmp_path, monkeypatch):
    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    out = tmp_path / "profile.json"
    monkeypatch.delenv("GPT4ALL_PROFILE", raising=False)      # the tool turns profiling on itself
    assert profile_decode.main([str(path), "--depth", "8", "--tokens", "3", "--repeats", "1", "--json", str(out)]) == 0
    prof = json.loads(out.read_text())
    rows = {(r["op"], r["what"]): r for r in prof["rows"]}
    # the tiny shape has 2 layers: each folded weight row counts 2 dispatches per token
    q = next(r for (op, what), r in rows.items() if what.startswith("blk.*.attn_q.weight"))
    assert q["per_token"] == 2 and q["us_per_token"] > 0 and q["gb_s"] > 0
    ops = {op for op, _ in rows}
    assert ("barrier", "") in rows and ({"sample_partial", "sample_merge"} <= ops or "sample" in ops)   # v2 / v1
    assert all(r["us_per_token"] >= 0 for r in prof["rows"])
    _assert_rows_add_up(prof)


def test_every_timed_decode_run_starts_at_the_same_depth(tmp_path, monkeypatch):
    """The decode program advances the step buffer on the device; the tool puts it back before each run, so
    warm-up and timed runs all decode at --depth + --tokens (they once decoded on, ~1500 rows deeper)."""
    from engine.backends.vulkan_ops import VulkanOps
    from engine.ops import STEP_POS

    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    starts = []                                     # (program, position in the step buffer) at each run
    real_run = VulkanOps.run

    def spy(self, program):
        starts.append((id(program), int(self.step[STEP_POS])))
        real_run(self, program)
    monkeypatch.setattr(VulkanOps, "run", spy)
    assert profile_decode.main([str(path), "--depth", "8", "--tokens", "4", "--repeats", "2", "--warmup-s", "0.2",
                                "--json", str(tmp_path / "p.json")]) == 0
    profiled = starts[-1][0]
    timed = [pos for prog, pos in starts if prog == profiled]
    assert len(timed) >= 4 and set(timed[-4:]) == {timed[-1]} and timed[-1] <= 8 + 4


def test_timings_need_a_profiling_backend():
    import numpy as np
    import pytest
    from engine.backends.vulkan_ops import VulkanOps

    ops = VulkanOps(profile=False)
    prog = _run_scale_program(ops)
    with pytest.raises(RuntimeError, match="without GPU timestamps"):
        ops.timings(prog)
    prof = VulkanOps(profile=True)
    t = prof.tensor(1, 8)
    prof.write(t, np.ones((1, 8), np.float32))
    with prof.record() as prog:
        prof.scale(t, t, 2.0)
        prof.scale(t, t, 3.0)
    prof.set_step(1, 0)
    prof.run(prog)
    ops_seen = [e["op"] for e in prof.timings(prog)]
    assert ops_seen == ["copy", "barrier", "scale", "barrier", "scale", "copy"]
    np.testing.assert_allclose(prof.read(t), 6.0)


def test_numpy_engine_profile_times_every_step(tmp_path):
    """--device cpu: NumpyOps.profile times each recorded step (a fused q/k/v or gate/up product is one), the rows add
    up to the step's time, matmul rows carry the float32 bytes they stream, and timings() refuses an unprofiled run."""
    import pytest
    from engine.backends.numpy_ops import NumpyOps

    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    out = tmp_path / "profile.json"
    assert profile_decode.main([str(path), "--device", "cpu", "--depth", "8", "--tokens", "3", "--repeats", "1",
                                "--warmup-s", "0", "--json", str(out)]) == 0
    prof = json.loads(out.read_text())
    rows = {(r["op"], r["what"]): r for r in prof["rows"]}
    qkv = next(r for (op, what), r in rows.items() if op == "matmul" and what.startswith("blk.*.attn_q.weight+"))
    assert qkv["per_token"] == 2 and qkv["gb_s"] > 0                       # 2 layers, q/k/v fused into one product
    assert {"attention", "rope", "sample"} <= {op for op, _ in rows}
    _assert_rows_add_up(prof)
    ops = NumpyOps()
    prog = _run_scale_program(ops)
    with pytest.raises(RuntimeError, match="no profiled run"):
        ops.timings(prog)
    ops.profile = True
    ops.run(prog)
    assert [e["op"] for e in ops.timings(prog)] == ["scale"]
