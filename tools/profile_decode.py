"""Where a decode step's GPU time goes: every dispatch of the recorded decode program, timed on the GPU.

    python tools/profile_decode.py MODEL.gguf                       # the best Vulkan device
    python tools/profile_decode.py MODEL.gguf --device cpu          # the NumPy engine: each step's wall time
    python tools/profile_decode.py llama-3-8b-q4_0 --cache-dir /tmp/bench-models --depth 512 --json p.json
    GPT4ALL_MATVEC=v2:4x128 python tools/profile_decode.py m.gguf   # the same table for another kernel
    python tools/profile_decode.py llama-3-8b-q4_0 --prompt-batch 128  # a prompt batch's program instead

MODEL is a GGUF file or a shape name of tools/random_gguf.py (written once into --cache-dir, as
tools/bench.py does).  The tool loads the model on a Vulkan device with GPU timestamps on
(``ops.profile = True`` before any program is recorded: kp latches one after every recorded op), fills the cache with --depth
prompt tokens, generates --tokens tokens greedily, then runs the last decode chunk --repeats times more
and takes each op's median time over those runs.
Each op's time runs from the end of the op before it to its own end, so a dispatch's figure includes its
launch and the wait at the barrier before it, and the rows add up to the chunk's GPU time.

With --device cpu the NumPy engine's recorded steps are timed instead (NumpyOps.profile: wall time around each
step, a fused q/k/v or gate/up product being one step), and the GB/s column is the float32 weight bytes those
products stream, the figure to hold against the machine's memory bandwidth.

Printed: one row per (shader, weight) with layers folded together ('blk.*'): dispatches and microseconds
per token, share of the GPU time, and for matmuls the weight bytes read per microsecond (GB/s), the
figure to hold against the device's memory bandwidth.  Barriers get their own row (the time between
the end of one dispatch and the end of the barrier after it).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def fold(what: str) -> str:
    """A weight's name with its layer index replaced, so the rows of all layers add up."""
    return re.sub(r"blk\.\d+\.", "blk.*.", what)


def summarise(timings: list[dict], steps: int) -> list[dict]:
    """Rows per (op, folded weight): count and microseconds per decode step, bytes read per step."""
    rows: dict = defaultdict(lambda: {"count": 0, "us": 0.0, "bytes": 0})
    for t in timings:
        r = rows[(t["op"], fold(t["what"]))]
        r["count"] += 1
        r["us"] += t["us"]
        r["bytes"] += t["bytes"]
    total = sum(r["us"] for r in rows.values()) or 1.0
    out = []
    for (op, what), r in sorted(rows.items(), key=lambda kv: -kv[1]["us"]):
        out.append({"op": op, "what": what, "per_token": r["count"] / steps, "us_per_token": r["us"] / steps,
                    "share": r["us"] / total,
                    "gb_s": r["bytes"] / r["us"] / 1e3 if r["bytes"] and r["us"] > 0 else None})
    return out


def warm_up(run, seconds: float) -> None:
    """Call ``run`` until ``seconds`` have passed, so the GPU's clocks are up before anything is timed."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        run()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="GGUF file, or a shape name for tools/random_gguf.py (e.g. llama-3.2-1b-q4_0)")
    ap.add_argument("--device", default="kompute",
                    help="Vulkan device string (default: kompute, the best), or cpu for the NumPy engine")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "gpt4all-vulkan" / "bench"),
                    help="where shape names are written (default: %(default)s)")
    ap.add_argument("--depth", type=int, default=256, help="prompt tokens in the cache first (default 256)")
    ap.add_argument("--tokens", type=int, default=32, help="tokens generated (default 32; the last chunk is timed)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="times the timed chunk is run again; each op's median counts (default 5)")
    ap.add_argument("--prompt-batch", type=int, default=0, metavar="N",
                    help="time the prompt program instead: a batch of N rows (n_batch N) evaluated after --depth "
                         "tokens; figures per prompt token")
    ap.add_argument("--warmup-s", type=float, default=1.5,
                    help="seconds of running the timed program before timing it (default 1.5): an idle GPU runs at a "
                         "fraction of its clock for the first ~0.5-1 s of load (H100: 345 MHz idle, 1980 loaded)")
    ap.add_argument("--json", help="write the rows and totals here")
    args = ap.parse_args(argv)

    import numpy as np

    import engine
    from bench import SAMPLING, resolve_model
    from engine.sampling import SamplingParams

    path, _ = resolve_model(args.model, Path(args.cache_dir))
    nb = args.prompt_batch
    llm = engine.load(str(path), device=args.device, n_batch=nb or 128,
                      # the prompt, the generated tokens and one decode chunk (<= 16 steps; every timed run
                      # replays it at the same positions), with room to spare
                      n_ctx=args.depth + args.tokens + 64 + nb)
    ops = llm.ops
    ops.profile = True          # programs are recorded on first use, below: theirs latch timestamps (VulkanOps.record);
    #                             NumpyOps times each step of every run
    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(100, min(llm.model.hp.n_vocab, 30000), args.depth + nb)]
    if nb:
        # the prompt program: a batch of nb rows after depth tokens, evaluated again in place on each run
        if args.depth:
            llm.eval(prompt[:args.depth])
        n, steps = 0, nb
        prog, _ = llm.model.program(nb)

        def run_once():
            llm.model.eval_batch(prompt[args.depth:], args.depth, nb)
    else:
        n = sum(1 for _ in llm.generate(prompt, SamplingParams(**SAMPLING["greedy"]), args.tokens))
        # the last decode program that ran: the largest chunk size (engine/llm.py runs chunks of powers of two).
        # A run goes on decoding where the last stopped (the device advances the step buffer, which the program
        # copies back), so each run first puts back the step buffer as the generation left it: every run decodes
        # the same positions, and attention sees the cache depth asked for (warm-up runs decoding on had put the
        # 1B shape's attention ~1500 rows deeper than --depth)
        # (a program from the host's state: a resume one takes no step buffer from the host, see engine/ops.py)
        (cap, steps, _first, _resume), (prog, _) = max(((k, v) for k, v in llm.model._programs.items()
                                                        if k[1] and not k[3]), key=lambda kv: kv[0][1])
        step_after_generation = ops.step.copy()

        def run_once():
            ops.step[:] = step_after_generation
            ops.run(prog)
    warm_up(run_once, args.warmup_s)
    # each op's median time over the runs: single runs of a few-microsecond op are noisy
    runs = []
    for _ in range(args.repeats + 1):
        run_once()
        runs.append(ops.timings(prog))
    timings = [dict(t, us=float(np.median([r[i]["us"] for r in runs]))) for i, t in enumerate(runs[0])]
    rows = summarise(timings, steps)
    gpu_us = sum(t["us"] for t in timings) / steps
    weight_bytes = sum(t["bytes"] for t in timings) / steps
    what = (f"prompt batch of {nb} rows after {args.depth} timed" if nb else
            f"{n} tokens generated after {args.depth}, chunk of {steps} steps timed")
    clock = "GPU" if ops.device_name else "CPU"                  # NumpyOps has no device name
    print(f"{path.name} on {ops.device_name or 'the CPU (NumPy engine)'}: {what}; "
          f"{clock} {gpu_us:.1f} us per token ({1e6 / gpu_us:.1f} tok/s), weights read {weight_bytes / 1e9:.3f} GB per token "
          f"({weight_bytes / gpu_us / 1e3:.0f} GB/s over the whole step)")
    print(f"{'op':28} {'weight':38} {'n/tok':>6} {'us/tok':>9} {'share':>6} {'GB/s':>7}")
    for r in rows:
        gbs = f"{r['gb_s']:7.0f}" if r["gb_s"] else ""
        print(f"{r['op'][:28]:28} {r['what'][:38]:38} {r['per_token']:6.1f} {r['us_per_token']:9.1f} "
              f"{100 * r['share']:5.1f}% {gbs}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": path.name, "device": ops.device_name, "depth": args.depth, "steps": steps, "prompt_batch": nb,
            "gpu_us_per_token": gpu_us, "weight_bytes_per_token": weight_bytes, "rows": rows,
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}, indent=1))
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
