"""tools/bench_kernels.py on lavapipe at a tiny shape (seconds): every op family is checked against
the NumPy reference and timed, and its check fails when the reference is fed wrong inputs."""
import importlib.util
import json
import math
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_kernels", Path(__file__).resolve().parent.parent / "tools" / "bench_kernels.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_kernels"] = bench          # dataclasses look their module up while it loads
_spec.loader.exec_module(bench)

# one case of each family (a large mat-vec is checked on a row subset: lm_head has 2048 > 512 rows)
OPS = "q4_0:lm_head,q6_k:ffn_down,depth=100,rms_norm,rope,sample,dispatch"


def _run(tmp_path, *extra):
    out = tmp_path / "kernels.json"
    rc = bench.main(["--shape", "tiny", "--reps", "4", "--runs", "2", "--ops", OPS, "--json", str(out), *extra])
    return rc, json.loads(out.read_text())


def test_bench_kernels_checks_and_times_every_family(tmp_path):
    rc, doc = _run(tmp_path)
    results = {r["name"].split(":")[0]: r for r in doc["results"]}
    assert set(results) == {"matmul_q4_0", "matmul_q6_k", "attention", "rms_norm", "add_rms_norm", "rope", "sample",
                            "dispatch"}     # 'rms_norm' in OPS matches add_rms_norm too
    assert rc == 0 and all(r["ok"] for r in doc["results"]), [r for r in doc["results"] if not r["ok"]]
    for r in doc["results"]:
        assert r["dispatches_per_op"] >= 1
        # a time, or (tiny ops on a loaded CPU device) NaN with the reason said
        assert r["us_per_op"] > 0 or (math.isnan(r["us_per_op"]) and "noise" in r["detail"])
    # the big ones cost far more than timing noise: a time and a bandwidth must come out
    lm = next(r for r in doc["results"] if r["name"].startswith("matmul_q4_0:lm_head"))
    assert lm["us_per_op"] > 0 and lm["gb_s"] > 0
    assert lm["bytes_moved"] == 2048 * 256 // 32 * 18 + 4 * (2048 + 256)


def test_bench_kernels_check_can_fail(tmp_path):
    rc, doc = _run(tmp_path, "--wrong-reference")
    assert rc == 1
    assert doc["results"] and not any(r["ok"] for r in doc["results"])


def test_bench_kernels_ab_both_matvec_kernels(tmp_path):
    out = tmp_path / "ab.json"
    rc = bench.main(["--shape", "tiny", "--reps", "3", "--runs", "1",
                     "--ops", "q4_0:attn_q,q8_0:attn_q,f16:attn_q,rms_norm",
                     "--matvec", "v1,v2,v2:2x128", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert rc == 0
    # the Q4_0 / Q8_0 (/ Q6_K) mat-vecs run once per kernel, the others (not affected by it) once
    assert sorted((r["name"].split(":")[0], r["matvec"]) for r in doc["results"]) == [
        ("add_rms_norm", "v1"), ("matmul_f16", "v1"),
        ("matmul_q4_0", "v1"), ("matmul_q4_0", "v2:2x128"), ("matmul_q4_0", "v2:4x64"),
        ("matmul_q8_0", "v1"), ("matmul_q8_0", "v2:2x128"), ("matmul_q8_0", "v2:4x64"),
        ("rms_norm", "v1")]
