"""tools/shader_stats.py: every pipeline of a decode step, built again on a bare Vulkan device (lavapipe here,
which offers no statistics; on the H100 the same code reads NVIDIA's register counts: docs/performance.md)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import shader_stats  # noqa: E402
from random_gguf import write_random_gguf  # noqa: E402


def test_lists_each_pipeline_of_the_decode_program_once(tmp_path):
    from engine.llm import LLM
    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    llm = LLM(str(path), device="kompute", n_ctx=64)
    pipelines = shader_stats.decode_pipelines(llm)
    prog, _ = llm.model.program(1, decode_steps=1)
    dispatched = {op for op, _, _ in prog.labels if op != "barrier"}
    assert len(pipelines) == len(set(pipelines))
    shaders = {s for s, _ in pipelines}
    assert dispatched and shaders == dispatched and any(s.startswith("matmul_vec") for s in shaders)
    # the mat-vecs carry their specialization constants (threads, rows per pass, lanes)
    assert all(len(spec) == 3 for s, spec in pipelines if s.startswith("matmul_vec"))


def test_builds_every_decode_pipeline_on_the_device(tmp_path, capsys):
    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    assert shader_stats.main(["--model", str(path), "--device", "kompute"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(("statistics from", "llvmpipe"))
    assert len(lines) > 5 and all(" spec=" in line for line in lines[1:])
