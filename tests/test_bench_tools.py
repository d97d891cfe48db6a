"""tools/bench.py's command line and report, and the upstream-copy helper (no timing is asserted here)."""
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import bench  # noqa: E402
from upstream_runner import rewrite_string_kv, upstream_copy  # noqa: E402


def write_tiny_gguf(path: Path, pre: str) -> None:
    """A small GGUF with a few KVs and tensors of awkward sizes (so alignment padding matters)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_block_count(1)
    w.add_string("tokenizer.ggml.pre", pre)
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "<s>"])
    w.add_uint32("general.quantization_version", 2)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((3, 5)).astype(np.float32))
    w.add_tensor("odd", rng.standard_normal(7).astype(np.float16))
    w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((4, 32)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def assert_same_except(a: Path, b: Path, key: str) -> None:
    ra, rb = gguf.GGUFReader(str(a)), gguf.GGUFReader(str(b))
    assert list(ra.fields) == list(rb.fields)
    for name in ra.fields:
        if name != key and not name.startswith("GGUF."):
            assert ra.fields[name].contents() == rb.fields[name].contents(), name
    assert [t.name for t in ra.tensors] == [t.name for t in rb.tensors]
    for ta, tb in zip(ra.tensors, rb.tensors):
        assert ta.tensor_type == tb.tensor_type and list(ta.shape) == list(tb.shape)
        assert np.array_equal(np.asarray(ta.data), np.asarray(tb.data)), ta.name
    assert rb.data_offset % rb.alignment == 0


@pytest.mark.parametrize("new", ["starcoder", "x", "a-much-longer-pre-tokenizer-name-than-before"])
def test_rewrite_string_kv_changes_only_that_key(tmp_path, new):
    src, dst = tmp_path / "in.gguf", tmp_path / "out.gguf"
    write_tiny_gguf(src, "smollm")
    rewrite_string_kv(src, dst, "tokenizer.ggml.pre", new)
    assert gguf.GGUFReader(str(dst)).fields["tokenizer.ggml.pre"].contents() == new
    assert_same_except(src, dst, "tokenizer.ggml.pre")


def test_rewrite_string_kv_rejects_missing_or_non_string_key(tmp_path):
    src = tmp_path / "in.gguf"
    write_tiny_gguf(src, "smollm")
    with pytest.raises(ValueError):
        rewrite_string_kv(src, tmp_path / "o.gguf", "no.such.key", "x")
    with pytest.raises(ValueError):
        rewrite_string_kv(src, tmp_path / "o.gguf", "general.quantization_version", "x")


def test_upstream_copy_only_for_rejected_pre_tokenizers(tmp_path):
    smol, llama = tmp_path / "smol.gguf", tmp_path / "llama.gguf"
    write_tiny_gguf(smol, "smollm")
    write_tiny_gguf(llama, "llama-bpe")
    assert upstream_copy(llama, tmp_path / "cache") == llama
    copy = upstream_copy(smol, tmp_path / "cache")
    assert copy != smol and copy.parent == tmp_path / "cache"
    assert gguf.GGUFReader(str(copy)).fields["tokenizer.ggml.pre"].contents() == "starcoder"
    assert_same_except(smol, copy, "tokenizer.ggml.pre")


def test_parse_args_devices_sweep_and_context():
    a = bench.parse_args(["--model", "x.gguf", "--device", "cpu,kompute", "--upstream",
                          "--prompt-tokens", "32", "--gen-tokens", "8", "--ctx-sweep", "256, 1024"])
    assert a.devices == ["cpu", "kompute"] and a.upstream
    assert a.upstream_device == "kompute"           # a GPU device among ours -> upstream on its GPU too
    assert a.ctx_sweep == [256, 1024]
    assert a.n_ctx >= 1024 + a.sweep_gen_tokens + 4 and a.n_ctx % 256 == 0
    cpu = bench.parse_args(["--model", "x.gguf", "--device", "cpu", "--upstream"])
    assert cpu.upstream_device == "cpu" and cpu.prompt_tokens == 256 and cpu.gen_tokens == 128
    assert cpu.n_batch == 128 and cpu.ctx_sweep == []
    up = bench.parse_args(["--model", "x.gguf", "--device", "none", "--upstream"])
    assert up.devices == [] and up.upstream_device == "cpu"


@pytest.mark.parametrize("argv", [
    ["--model", "x.gguf", "--device", "none"],                         # nothing to measure
    ["--model", "x.gguf", "--ctx-sweep", "0,256"],                     # depth must be positive
    ["--model", "x.gguf", "--prompt-tokens", "512", "--n-ctx", "256"],  # context too small
])
def test_parse_args_rejects(argv):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


def test_markdown_rows_carry_the_command():
    run = {"prompt_tokens": 32, "prompt_tok_s": 12.5, "gen_tokens": 8, "gen_tok_s": 3.25, "host_us_per_token": 90.0}
    report = {"command": "python tools/bench.py --model m.gguf", "date": "d", "host": "h",
              "model": {"file": "m.gguf", "arch": "llama", "size_bytes": 10**8, "n_params": 135 * 10**6},
              "results": [{"engine": "ours", "backend": "kompute", "device": "llvmpipe",
                           "runs": {"main": dict(run, gen_ids=[5, 6, 7, 8, 9, 1, 2, 3]),
                                    "ctx256": dict(run, prompt_tokens=256)}},
                          {"engine": "upstream", "version": "2.8.2", "backend": "cpu", "device": None,
                           "runs": {"main": dict(run, host_us_per_token=None, gen_ids=[5, 6, 7, 4]),
                                    "ctx256": run}}]}
    text = bench.markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| ours") or line.startswith("| upstream")]
    assert len(rows) == 4 and all("`python tools/bench.py --model m.gguf`" in r for r in rows)
    assert "| ours | kompute (llvmpipe) | 32 | 12.5 | 8 | 3.25 | 90 | 3/8 |" in text
    assert "| upstream 2.8.2 | cpu | 32 | 12.5 | 8 | 3.25 | - | - |" in text


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The 2-layer random-weight 'tiny' shape (a few MB), written through bench.py's shape path."""
    path, _ = bench.resolve_model("tiny-q4_0", tmp_path_factory.mktemp("bench-models"))
    return path


def test_make_prompt_gives_exact_token_counts(tiny_model):
    tokenizer = bench.load_tokenizer(tiny_model)
    for n in (8, 40, 130):
        text, ids = bench.make_prompt(tokenizer, n)
        assert len(ids) == n and tokenizer.encode(text, add_special=True) == ids


def test_upstream_runner_sees_every_prompt_and_generated_token(tiny_model, tmp_path):
    """Upstream, in its own interpreter, counts the same prompt tokens as our tokenizer and all n tokens."""
    assert Path(bench.DEFAULT_UPSTREAM_PYTHON).exists(), \
        f"upstream gpt4all 2.8.2's interpreter {bench.DEFAULT_UPSTREAM_PYTHON} is missing (set BENCH_UPSTREAM_PYTHON)"
    args = bench.parse_args(["--model", str(tiny_model), "--device", "none", "--upstream", "--threads", "1",
                             "--prompt-tokens", "24", "--gen-tokens", "5", "--ctx-sweep", "40",
                             "--sweep-gen-tokens", "3", "--cache-dir", str(tmp_path)])
    tokenizer = bench.load_tokenizer(tiny_model)
    prompts = {name: bench.make_prompt(tokenizer, n) for name, n in
               {"warmup": 10, "main": 24, "ctx40": 40}.items()}
    res = bench.bench_upstream(tiny_model, args, prompts)
    assert res["engine"] == "upstream" and res["version"] == "2.8.2" and res["backend"] == "cpu"
    assert not Path(res["gpt4all_file"]).resolve().is_relative_to(bench.REPO / "gpt4all")   # not our SDK
    assert set(res["runs"]) == {"main", "ctx40"}                                      # warm-up dropped
    main, ctx = res["runs"]["main"], res["runs"]["ctx40"]
    assert main["prompt_tokens"] == 24 and ctx["prompt_tokens"] == 40
    assert main["gen_tokens"] == len(main["gen_ids"]) == 5 and ctx["gen_tokens"] == 3
    assert all(0 <= i < 49216 for i in main["gen_ids"])


def test_shape_names_resolve_to_random_gguf_files(tmp_path):
    assert bench.split_shape("llama-3.2-1b-q4_0") == ("llama-3.2-1b", "Q4_0")
    assert bench.split_shape("llama-3-8b-Q8_0") == ("llama-3-8b", "Q8_0")
    assert bench.split_shape("llama-3-8b") == ("llama-3-8b", "Q4_0")
    with pytest.raises(ValueError, match="llama-3-8b-q4_0"):
        bench.split_shape("llama-9-q4_0")
    path, shape = bench.resolve_model("tiny-q4_0", tmp_path)
    assert shape == "tiny-q4_0" and path.parent == tmp_path
    info = bench.model_info(path)
    assert info["arch"] == "llama" and info["file_type"] == int(gguf.LlamaFileType.MOSTLY_Q4_0)
    assert info["n_params"] > 0 and info["size_bytes"] == path.stat().st_size
    mtime = path.stat().st_mtime_ns
    assert bench.resolve_model("tiny-q4_0", tmp_path)[0] == path and path.stat().st_mtime_ns == mtime  # cached


def test_sweep_only_runs_and_report():
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", "x.gguf", "--skip-main"])
    a = bench.parse_args(["--model", "x.gguf", "--skip-main", "--ctx-sweep", "1024,256"])
    prompts = {"main": ("m", [1]), "ctx1024": ("a", [1]), "ctx256": ("b", [2])}
    assert [name for name, _ in bench.runs_of(prompts, a)] == ["ctx1024", "ctx256"]
    run = {"prompt_tokens": 256, "prompt_tok_s": 100.0, "gen_tokens": 32, "gen_tok_s": 9.5}
    report = {"command": "c", "date": "d", "host": "h",
              "model": {"file": "m.gguf", "arch": "llama", "size_bytes": 10**9, "n_params": 10**9},
              "results": [{"engine": "ours", "backend": "cpu", "device": None,
                           "runs": {"ctx1024": dict(run, prompt_tokens=1024), "ctx256": run}}]}
    text = bench.markdown(report)
    assert "| prompt tok |" not in text                     # no main table without main runs
    rows = [line for line in text.splitlines() if line.startswith("| ours")]
    assert [r.split("|")[3].strip() for r in rows] == ["256", "1024"]    # sweep rows sorted by depth


def test_bench_cpu_rounds_report_every_ratio_and_the_median(monkeypatch, capsys):
    """--rounds N: N single comparisons (each with the same settings and its own JSON, no floor), then each
    round's decode ratio and their median.  tools/bench.py is replaced by a stand-in that writes the report a
    real run would, with speeds the test chooses."""
    import json

    import bench_cpu
    speeds = iter([(80.0, 160.0), (60.0, 150.0), (90.0, 150.0)])      # ours, upstream per round
    seen = []

    def fake_main(argv):
        seen.append(argv)
        ours, up = next(speeds)
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps({"results": [
            {"engine": "ours", "runs": {"main": {"gen_tok_s": ours}}},
            {"engine": "upstream 2.8.2", "runs": {"main": {"gen_tok_s": up}}}]}))
        return 0

    monkeypatch.setattr(bench, "main", fake_main)
    assert bench_cpu.main(["--rounds", "3", "--model", "m.gguf", "--gen-tokens", "16"]) == 0
    out = capsys.readouterr().out
    assert len(seen) == 3 and len({a[a.index("--json") + 1] for a in seen}) == 3
    for argv in seen:
        assert argv[argv.index("--model") + 1] == "m.gguf" and argv[argv.index("--gen-tokens") + 1] == "16"
        assert "--rounds" not in argv and "--floor" not in argv and "--upstream" in argv
    assert "decode ratio ours / upstream: 0.500, 0.400, 0.600; median 0.500x" in out


def test_bench_cpu_rounds_refuses_a_single_report_path(capsys):
    """--rounds writes a report per round: a --json or --markdown path it would not honour is an error, as is
    --rounds 0."""
    import pytest

    import bench_cpu
    for extra in (["--json", "r.json"], ["--markdown", "r.md"]):
        with pytest.raises(SystemExit) as e:
            bench_cpu.main(["--rounds", "3", *extra])
        assert e.value.code == 2
    with pytest.raises(SystemExit):
        bench_cpu.main(["--rounds", "0"])
    assert "--rounds writes one JSON report per round" in capsys.readouterr().err
