"""CPU: the NumPy engine beside upstream gpt4all 2.8.2, same file, same run, 2 threads each.

    .venv/bin/python tools/bench_cpu.py [--threads 2] [--prompt-tokens 128] [--gen-tokens 64] [--floor] [--rounds N]
                                        [--numpy-only]

A fixed configuration of tools/bench.py (which holds the timing method, the upstream runner and
the 'smollm' -> 'starcoder' pre-tokenizer copy that upstream needs): SmolLM2-135M-Instruct Q4_0,
our engine on device 'cpu' (NumPy) and upstream on its CPU backend, greedy, EOS ignored.
The markdown table goes to stdout and, with --markdown FILE, to a file for docs/performance.md.

Our CPU backend decodes with engine/backends/quant_matvec.py's Numba kernels, which multiply straight
from the Q4_0 blocks (the default where Numba is installed).  --numpy-only runs it with GPT4ALL_NUMBA=0
instead: every product on BLAS over float32 copies of the weights, the pure NumPy reference path.

--floor adds the ceiling that memory bandwidth puts on that NumPy-only path.  NumPy has no quantised
matmul, so it keeps every matrix as float32 (4 bytes a weight, against Q4_0's 0.56) and a decode step
must stream all of them from memory once.  The floor times exactly that and nothing else: one float32
matrix-vector product over every weight matrix of the file (every blk.* matrix, plus the LM head:
output.weight, or token_embd.weight when tied; q/k/v and gate/up stacked into one product each, as the
engine runs them), on the same BLAS threads, best of several passes.  No NumPy-only decode can be faster
than one such pass, so 1 / (pass time) is the highest tok/s it could reach on this machine, printed beside
half of upstream's speed measured in the same run.

--rounds N runs the comparison N times back to back (ours, then upstream, each round) and ends with every
round's decode ratio and their median.  A shared VM's memory bandwidth varies by ~30% within minutes, and
the NumPy-only path (7x upstream's bytes a token) follows it closely: one round is one sample of it, the
median of several is the figure to quote.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
MODELS_DIR = Path(os.environ.get("GPT4ALL_TEST_MODELS", Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))


def f32_floor(model: str, threads: int, passes: int = 7) -> dict:
    """One pass of float32 matrix-vector products over the model's matrices, timed (see the docstring)."""
    import time

    import gguf
    import numpy as np
    from threadpoolctl import threadpool_limits

    reader = gguf.GGUFReader(model)
    names = {t.name for t in reader.tensors}
    head = "output.weight" if "output.weight" in names else "token_embd.weight"
    groups: dict = {}                           # product name -> float32 [out, in] matrices it stacks
    for t in reader.tensors:
        if (t.name.startswith("blk.") and len(t.shape) == 2) or t.name == head:
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
            w = w.reshape(int(t.shape[1]), int(t.shape[0]))
            # the engine multiplies q/k/v (and gate/up), which read one input, as one stacked matrix
            block, _, kind = t.name.rpartition(".weight")[0].rpartition(".")
            kind = {"attn_q": "attn_qkv", "attn_k": "attn_qkv", "attn_v": "attn_qkv",
                    "ffn_gate": "ffn_gate_up", "ffn_up": "ffn_gate_up"}.get(kind, kind)
            groups.setdefault((block, kind), []).append(w)
    # all products back to back in one allocation (NumPy puts it on huge pages): the best layout for
    # streaming, so the pass is a floor for the engine however it places its own copies
    stacks = [np.concatenate(ws) if len(ws) > 1 else ws[0] for ws in groups.values()]
    del groups
    arena = np.empty(sum(w.size for w in stacks), np.float32)
    mats, off = [], 0
    for w in stacks:
        mats.append(arena[off:off + w.size].reshape(w.shape))
        mats[-1][...] = w
        off += w.size
    del stacks
    rng = np.random.default_rng(0)
    xs = {w.shape[1]: rng.standard_normal((1, w.shape[1])).astype(np.float32) for w in mats}  # [1, in]
    outs = [np.empty((1, w.shape[0]), np.float32) for w in mats]                             # [1, out]
    best = float("inf")
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(passes):
            t0 = time.perf_counter()
            for w, o in zip(mats, outs):
                np.matmul(xs[w.shape[1]], w.T, out=o)
            best = min(best, time.perf_counter() - t0)
    n_bytes = arena.nbytes
    return {"products": len(mats), "f32_bytes": n_bytes, "pass_s": best,
            "gb_per_s": n_bytes / best / 1e9, "max_tok_s": 1.0 / best}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(MODELS_DIR / "SmolLM2-135M-Instruct.Q4_0.gguf"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=64)
    p.add_argument("--n-batch", type=int, default=128)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    p.add_argument("--floor", action="store_true",
                   help="also time one pass of f32 matrix-vector products over all weights: the NumPy ceiling")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the comparison this many times; print each round's decode ratio and the median")
    p.add_argument("--numpy-only", action="store_true",
                   help="our engine without its Numba decode kernels (GPT4ALL_NUMBA=0): NumPy's BLAS on float32 only")
    a = p.parse_args(argv)
    if a.rounds < 1:
        p.error(f"--rounds {a.rounds}: at least 1")
    if a.numpy_only:            # read by NumpyOps when the engine loads (in this process: tools/bench.py)
        os.environ["GPT4ALL_NUMBA"] = "0"
    print(f"ours: NumPy engine, decode products on "
          f"{'BLAS over float32 copies (--numpy-only)' if a.numpy_only else 'quant_matvec.py Numba kernels'}")
    if a.rounds > 1:
        if a.json or a.markdown:
            p.error("--rounds writes one JSON report per round (their paths are printed): no --json / --markdown")
        return rounds(a)
    import bench  # tools/bench.py
    args = bench_args(a)
    json_path = a.json
    if a.floor and not json_path:       # the floor line compares with upstream's number from this run
        import tempfile
        json_path = os.path.join(tempfile.mkdtemp(), "bench_cpu.json")
    if json_path:
        args += ["--json", json_path]
    if a.markdown:
        args += ["--markdown", a.markdown]
    rc = bench.main(args)
    if a.floor:
        f = f32_floor(a.model, a.threads)
        gen = decode_speeds(json_path)
        print(f"\nf32 floor: {f['products']} products over the weights, {f['f32_bytes'] / 1e6:.0f} MB as float32; one "
              f"matrix-vector pass over them takes {f['pass_s'] * 1e3:.2f} ms ({f['gb_per_s']:.1f} GB/s) on "
              f"{a.threads} BLAS threads -> a NumPy-only decode can reach at most {f['max_tok_s']:.1f} tok/s here.")
        if gen:
            line = ", ".join(f"{k} {v:.1f} tok/s" for k, v in gen.items())
            up = upstream_speed(gen)
            half = f"; half of upstream = {up / 2:.1f} tok/s" if up else ""
            print(f"same run: {line}{half}")
    return rc


def bench_args(a: argparse.Namespace) -> list[str]:
    """tools/bench.py's arguments for one comparison with these settings (no --json / --markdown)."""
    return ["--model", a.model, "--device", "cpu", "--upstream", "--threads", str(a.threads),
            "--prompt-tokens", str(a.prompt_tokens), "--gen-tokens", str(a.gen_tokens), "--n-batch", str(a.n_batch)]


def decode_speeds(json_path: str) -> dict:
    """engine -> generation tok/s of the main run, from a tools/bench.py JSON report."""
    import json
    runs = json.loads(Path(json_path).read_text())["results"]
    return {r["engine"]: r["runs"]["main"]["gen_tok_s"] for r in runs
            if r.get("runs", {}).get("main", {}).get("gen_tok_s")}


def upstream_speed(gen: dict) -> float | None:
    """Upstream's tok/s in decode_speeds' dict: the engine that is not ours (None if it did not run)."""
    return next((v for k, v in gen.items() if k != "ours"), None)


def rounds(a: argparse.Namespace) -> int:
    """--rounds: the single comparison a.rounds times, then the decode ratios and their median."""
    import statistics
    import tempfile

    import bench  # tools/bench.py
    tmp = tempfile.mkdtemp()
    ratios = []
    for i in range(a.rounds):
        path = os.path.join(tmp, f"round{i + 1}.json")       # a round: its own JSON, no floor
        rc = bench.main([*bench_args(a), "--json", path])
        if rc:
            return rc
        gen = decode_speeds(path)
        ours, up = gen.get("ours"), upstream_speed(gen)
        if ours and up:
            ratios.append(ours / up)
            print(f"round {i + 1}: ours {ours:.2f} tok/s, upstream {up:.2f} tok/s, decode ratio {ours / up:.3f}x ({path})")
    if ratios:
        print(f"\n{a.rounds} rounds, decode ratio ours / upstream: " + ", ".join(f"{r:.3f}" for r in ratios)
              + f"; median {statistics.median(ratios):.3f}x (goal: 0.5x)")
    if a.floor:
        f = f32_floor(a.model, a.threads)
        print(f"f32 floor after the rounds: one pass {f['pass_s'] * 1e3:.2f} ms ({f['gb_per_s']:.1f} GB/s) -> at most "
              f"{f['max_tok_s']:.1f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
