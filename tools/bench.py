"""Speed of our engine beside upstream gpt4all 2.8.2, on the same GGUF file, in the same run.

    python tools/bench.py --model FILE_OR_SHAPE --device cpu|kompute|gpu|... [--upstream]
                          [--prompt-tokens 256] [--gen-tokens 128] [--n-batch 128]
                          [--ctx-sweep 256,1024,4096] [--json OUT]

``--model`` is a GGUF path or a shape name (``llama-3.2-1b-q4_0``, ``llama-3-8b-q4_0``, ... as
tools/random_gguf.py knows them); a shape is written once, with random weights, into the cache directory.
``--device`` may list several devices (``cpu,kompute``); each is measured in turn.  ``--upstream`` also runs
upstream gpt4all in a subprocess of another interpreter (tools/upstream_runner.py), on its matching device.

What is measured, for each engine (the same definitions on both sides; see docs/performance.md):
  prompt tok/s       prompt tokens / wall time of evaluating them from an empty cache in n_batch batches.
  generation tok/s   generated tokens / wall time from the end of the prompt to the last token.  Each
                     generated token costs one sampling and one single-token forward pass.  Greedy, EOS ignored.
  host us/token      (ours only) CPU time of the generating thread (time.thread_time) / generated tokens:
                     Python, command recording and submission, but not time blocked waiting for the GPU.
  context sweep      generation tok/s after a prompt of each depth (and the prompt tok/s of that prompt).
Every row of the markdown table and every JSON record carries the exact command that produced it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
sys.path.insert(0, str(TOOLS))
sys.path.insert(1, str(REPO))       # our engine package, when run as `python tools/bench.py`
# our side of the upstream helper; DEFAULT_UPSTREAM_PYTHON is re-exported for tests/test_bench_tools.py
from upstream_runner import (DEFAULT_UPSTREAM_PYTHON, add_upstream_options, upstream_copy,  # noqa: E402,F401
                             upstream_pythonpath)
from engine.llm import common_prefix  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "gpt4all-vulkan" / "bench-models"))

# Sampling settings.  'greedy' makes both engines do the same deterministic work (and lets the tables
# compare their token ids); 'sdk' is the GPT4All SDK's generate() defaults, what users actually run, which
# exercises the top-k / top-p path of the sampler (seeded on our side; upstream 2.8.2 has no seed).
SAMPLING = {
    "greedy": dict(temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, repeat_last_n=0),
    "sdk": dict(temp=0.7, top_k=40, top_p=0.4, min_p=0.0, repeat_penalty=1.18, repeat_last_n=64),
}

# Plain English filler, repeated and cut to the wanted number of tokens.  Real words keep every tokenizer on
# its ordinary path, and the text survives a decode/encode round trip, so both engines see the same tokens.
FILLER = ("The history of the river valley is written in its stones. Farmers came first, then traders, "
          "and each left roads, walls and names that are still in use today. ")


# --------------------------------------------------------------------------- command line

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="GGUF file, or a shape name for tools/random_gguf.py")
    p.add_argument("--device", default="cpu",
                   help="our engine's device(s), comma-separated: cpu, kompute, gpu, a GPU name; 'none' = "
                        "upstream only")
    p.add_argument("--upstream", action="store_true", help="also time upstream gpt4all 2.8.2")
    add_upstream_options(p)
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--gen-tokens", type=int, default=128)
    p.add_argument("--n-batch", type=int, default=128)
    p.add_argument("--ctx-sweep", type=parse_int_list, default=[],
                   help="context depths, e.g. 256,1024,4096: generation speed after a prompt that long")
    p.add_argument("--sweep-gen-tokens", type=int, default=32, help="tokens generated at each sweep depth")
    p.add_argument("--warmup-s", type=float, default=None,
                   help="seconds of repeated warm-up generations right before our measured runs, so that a GPU's "
                        "clock has left its idle state (an H100 idles at 345 MHz and reaches 1980 only after ~0.5-1 s "
                        "of load, longer than a 1B model's whole 128-token generation); default 1.5 on a GPU, "
                        "0 on a CPU device")
    p.add_argument("--skip-main", action="store_true",
                   help="only the --ctx-sweep runs (a separate, sweep-only JSON keeps the size plot clean)")
    p.add_argument("--sampling", choices=sorted(SAMPLING), default="greedy",
                   help="greedy (default; EOS ignored) or the SDK's defaults (temp 0.7, top_k 40, top_p 0.4, "
                        "repeat_penalty 1.18)")
    p.add_argument("--anatomy", action="store_true",
                   help="also count, for our engine, backend calls and dispatches per generated token")
    p.add_argument("--n-ctx", type=int, default=0, help="context size (default: just enough, rounded up)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both engines")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where shape files are written")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--markdown", type=Path, default=None, help="also write the markdown tables here")
    args = p.parse_args(argv)
    args.devices = [] if args.device == "none" else [d.strip() for d in args.device.split(",") if d.strip()]
    if not args.devices and not args.upstream:
        p.error("nothing to measure: give --device or --upstream")
    if args.skip_main and not args.ctx_sweep:
        p.error("--skip-main needs --ctx-sweep")
    if args.upstream_device is None:
        args.upstream_device = "cpu" if args.devices in ([], ["cpu"]) else "kompute"
    longest = max([args.prompt_tokens + args.gen_tokens]
                  + [d + args.sweep_gen_tokens for d in args.ctx_sweep])
    if args.n_ctx == 0:
        args.n_ctx = round_up(longest + 8, 256)     # a little room: upstream keeps 4 tokens spare
    elif args.n_ctx < longest + 4:
        p.error(f"--n-ctx {args.n_ctx} is too small for {longest} tokens")
    return args


def parse_int_list(text: str) -> list[int]:
    """'256,1024, 4096' -> [256, 1024, 4096]; every value a positive integer."""
    values = [int(v) for v in text.replace(" ", "").split(",") if v]
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"positive integers expected, got {text!r}")
    return values


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


# --------------------------------------------------------------------------- the model file

def split_shape(spec: str) -> tuple[str, str]:
    """'llama-3.2-1b-q4_0' -> ('llama-3.2-1b', 'Q4_0'); no type suffix means Q4_0.
    Raises ValueError naming the known shapes when the shape is not one of tools/random_gguf.py's."""
    from random_gguf import FILE_TYPE, SHAPES
    types = {t.name.lower(): t.name for t in FILE_TYPE}
    shape, _, suffix = spec.lower().rpartition("-")
    if suffix not in types:
        shape, suffix = spec.lower(), "q4_0"
    if shape not in SHAPES:
        raise ValueError(f"{spec!r} is neither a file nor a shape; shapes: "
                         f"{', '.join(f'{s}-{t}' for s in sorted(SHAPES) for t in types)}")
    return shape, types[suffix]


def resolve_model(spec: str, cache_dir: Path) -> tuple[Path, str | None]:
    """A path as given, or a shape name -> the random-weight file for it (written once into cache_dir)."""
    path = Path(spec).expanduser()
    if path.suffix == ".gguf" or path.exists():
        if not path.exists():
            raise SystemExit(f"model file {path} does not exist")
        return path.resolve(), None
    shape, qtype = split_shape(spec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"random-{shape}-{qtype}.gguf"
    if not out.exists():     # random_gguf writes OUT.part and renames it: an existing file is complete
        cmd = [sys.executable, str(TOOLS / "random_gguf.py"), str(out), "--shape", shape, "--type", qtype]
        log(f"writing random-weight {shape} {qtype}: {shlex.join(cmd)}")
        subprocess.run(cmd, check=True)
    return out, f"{shape}-{qtype.lower()}"


def model_info(path: Path) -> dict:
    import gguf
    reader = gguf.GGUFReader(str(path))
    get = lambda key: reader.fields[key].contents() if key in reader.fields else None  # noqa: E731
    arch = get("general.architecture")
    info = {"path": str(path), "file": path.name, "size_bytes": path.stat().st_size, "arch": arch,
            "name": get("general.name"), "file_type": get("general.file_type"),
            "n_layer": get(f"{arch}.block_count"), "n_embd": get(f"{arch}.embedding_length")}
    # parameters: product of every tensor's shape (the size axis of the plots uses bytes and this)
    info["n_params"] = int(sum(int(t.n_elements) for t in reader.tensors))
    return info


# --------------------------------------------------------------------------- prompts

def make_prompt(tokenizer, n_tokens: int) -> tuple[str, list[int]]:
    """Text whose encoding (with the model's BOS, if it adds one) is ``n_tokens`` long, and that encoding.

    The text is given to upstream, the ids to our engine; upstream reports its own count, and the tables
    show both, so a disagreement between the tokenizers would be visible rather than hidden.
    """
    text = FILLER * (n_tokens // 8 + 2)
    ids = tokenizer.encode(text, add_special=True)
    n_special = len(tokenizer.encode("", add_special=True))       # BOS (and EOS) the encoder adds
    body = [i for i in ids if not tokenizer.is_control(i)][: n_tokens - n_special]
    text = tokenizer.decode(body, special=False)
    ids = tokenizer.encode(text, add_special=True)
    return text, ids


def fallback_prompt(n_tokens: int) -> str:
    """Upstream-only runs have no tokenizer of ours: roughly one token per word of plain English."""
    words = (FILLER * (n_tokens // 8 + 2)).split()
    return " ".join(words[: max(1, n_tokens - 1)])


# --------------------------------------------------------------------------- our engine

def time_ours(llm, prompt_ids: list[int], n_gen: int, n_batch: int, sampling: str = "greedy") -> dict:
    """One measured prompt + generation from an empty cache.  See the module docstring for definitions."""
    from engine.sampling import SamplingParams

    params = SamplingParams(**SAMPLING[sampling], seed=0)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt_ids, n_batch=n_batch)
    t_prompt = time.perf_counter()
    # generate() reuses the cached prompt but re-evaluates its last token, so n tokens cost n forward
    # passes and n samplings: the same work as upstream's n generated tokens.
    stamps: list[float] = []
    ids: list[int] = []
    cpu0 = time.thread_time()
    g0 = time.perf_counter()
    for tok in llm.generate(prompt_ids, params, max_tokens=n_gen):
        stamps.append(time.perf_counter())
        ids.append(int(tok))
    cpu1 = time.thread_time()
    out = {"prompt_tokens": len(prompt_ids), "prompt_s": t_prompt - t0,
           "prompt_tok_s": len(prompt_ids) / (t_prompt - t0), "gen_tokens": len(ids), "gen_ids": ids}
    if ids:
        out["gen_s"] = stamps[-1] - g0
        out["gen_tok_s"] = len(ids) / out["gen_s"]
        out["host_us_per_token"] = (cpu1 - cpu0) / len(ids) * 1e6
    return out


def anatomy(llm, prompt_ids: list[int], n_gen: int) -> dict:
    """Counts, not times: how our engine drives its backend for each generated token.

    Every call of ``ops.run`` / ``ops.start`` / ``ops.read`` / ``ops.write`` may be a submission to the device
    (``run`` a kp ``Sequence.eval``, submit and wait; ``start`` an ``eval_async``, whose wait comes later), so
    calls per token bound the round-trip cost.  Dispatches and barriers per token come from the recorded decode
    program (VulkanProgram counts both) divided by the decode steps it holds."""
    from collections import Counter

    from engine.sampling import SamplingParams

    ops, calls = llm.ops, Counter()
    for name in ("run", "start", "read", "write"):
        def counted(*a, _fn=getattr(ops, name), _name=name, **kw):
            calls[_name] += 1
            return _fn(*a, **kw)
        setattr(ops, name, counted)          # instance attributes shadow the methods for this count only
    # On Kompute, count the submissions themselves (kp.Sequence.eval is a submit-and-wait, eval_async a submit)
    # and time the waits (eval_await; eval is counted as its two halves): wall time minus the waits is the
    # host's own time per token, a second measure that does not depend on how the driver waits for a fence.
    # (With decode chunks overlapping, engine/llm.py, the waits also cover the device's own time.)
    kp = sys.modules.get("kp") if llm.backend == "kompute" else None
    kp_orig = {n: getattr(kp.Sequence, n) for n in ("eval", "eval_async", "eval_await")} if kp else {}
    waited = [0.0]
    if kp:
        def counted_async(seq, *a, **kw):
            calls["submissions"] += 1
            return kp_orig["eval_async"](seq, *a, **kw)

        def timed_await(seq, *a, **kw):
            t = time.perf_counter()
            out = kp_orig["eval_await"](seq, *a, **kw)
            waited[0] += time.perf_counter() - t
            return out

        def split_eval(seq, *a, **kw):
            counted_async(seq, *a, **kw)
            return timed_await(seq)
        kp.Sequence.eval, kp.Sequence.eval_async, kp.Sequence.eval_await = split_eval, counted_async, timed_await
    try:
        llm.reset()
        llm.eval(prompt_ids)
        calls.clear()
        waited[0] = 0.0
        t0 = time.perf_counter()
        n = sum(1 for _ in llm.generate(prompt_ids, SamplingParams(**SAMPLING["greedy"], seed=0), n_gen))
        wall = time.perf_counter() - t0
    finally:
        for name in ("run", "start", "read", "write"):
            delattr(ops, name)
        for name, fn in kp_orig.items():
            setattr(kp.Sequence, name, fn)
    out = {"gen_tokens": n, "decode_steps": int(getattr(llm, "decode_steps", 1)),
           **{f"{k}_per_token": v / max(n, 1) for k, v in sorted(calls.items())},
           "calls_per_token": sum(v for k, v in calls.items() if k != "submissions") / max(n, 1)}
    if kp and n:
        out["wait_us_per_token"] = waited[0] / n * 1e6
        out["host_us_per_token_excl_wait"] = (wall - waited[0]) / n * 1e6
    decode = [(key, prog) for key, (prog, _b) in llm.model._programs.items() if key[0] == 1 and key[1] > 0]
    if decode and hasattr(decode[0][1], "n_dispatches"):
        key, prog = max(decode, key=lambda kp_: kp_[0][1])       # key: (cap, steps, first slot, resume)
        steps = key[1]
        out["dispatches_per_token"] = prog.n_dispatches / steps
        out["barriers_per_token"] = prog.n_barriers / steps
    return out


def ignore_eog(llm) -> None:
    """Make every token a non-end token for this benchmark, so each run generates exactly n tokens.

    generate() stops before an end-of-generation token by asking LLM.is_eog; random-weight models hit
    one rarely, real ones (SmolLM2) often.  Shadowing ``is_eog`` on this LLM instance changes
    nothing for anyone else and keeps the generated-token count equal to upstream's."""
    llm.is_eog = lambda _id: False


def bench_ours(path: Path, device: str, args, prompts: dict, result: dict, save=lambda: None) -> None:
    """Load our engine on ``device`` and fill ``result`` (calling ``save`` after each measured run)."""
    import engine

    t0 = time.perf_counter()
    llm = engine.load(str(path), device=None if device == "cpu" else device, n_ctx=args.n_ctx,
                      n_threads=args.threads, n_batch=args.n_batch)
    load_s = time.perf_counter() - t0
    if args.threads:
        llm.set_threads(args.threads)
    ignore_eog(llm)
    result.update(backend=llm.backend, device=llm.device, load_s=load_s)
    log(f"ours[{device}]: loaded in {load_s:.1f} s (backend {llm.backend}, device {llm.device})")
    # Warm-up, not part of any number: the first runs record programs, compile pipelines, allocate and
    # fault in memory.  generate() records one decode program per chunk length k (llm.decode_steps tokens
    # per submission, and shorter tails), so warm up every k the measured runs will use; where chunks
    # overlap (a GPU) the later chunks are resume programs of two slot sets, so there a warm-up generation of
    # each measured length records exactly the programs its measured run will use.
    k = max(1, int(getattr(llm, "decode_steps", 1)))
    lengths = {args.gen_tokens} | ({args.sweep_gen_tokens} if args.ctx_sweep else set())
    overlap = getattr(llm.ops, "overlaps_programs", False)
    for n in sorted(lengths if overlap else {k} | {n % k for n in lengths} - {0}):
        time_ours(llm, prompts["warmup"][1], n, args.n_batch, args.sampling)
    # ... and keep a GPU busy until its clock is up: the measured runs follow at once (tools/gpu_run.sh's
    # clocks.csv showed a 1B generation run whole at 450-510 MHz after the idle of loading, 606 tok/s against
    # 788 for the same code at 1980 MHz in the same call)
    on_gpu = getattr(getattr(llm.ops, "info", None), "type", "cpu") != "cpu"
    warm_s = args.warmup_s if args.warmup_s is not None else (1.5 if on_gpu else 0.0)
    t_end = time.perf_counter() + warm_s
    while time.perf_counter() < t_end:
        time_ours(llm, prompts["warmup"][1], k, args.n_batch, args.sampling)
    result["warmup_s"] = warm_s
    result["decode_steps"] = k
    for name, (text, ids, n_gen) in runs_of(prompts, args):
        result["runs"][name] = run = time_ours(llm, ids, n_gen, args.n_batch, args.sampling)
        log(f"ours[{device}] {name}: {summary(run)}")
        save()
    if args.anatomy:
        result["anatomy"] = anatomy(llm, prompts["warmup"][1], max(8, 4 * result["decode_steps"]))
        log(f"ours[{device}] anatomy: {result['anatomy']}")
        save()
    llm.close()


def runs_of(prompts: dict, args):
    """(name, (text, ids, n_gen)) for the main run and each context depth."""
    if not args.skip_main:
        yield "main", (*prompts["main"], args.gen_tokens)
    for depth in args.ctx_sweep:
        yield f"ctx{depth}", (*prompts[f"ctx{depth}"], args.sweep_gen_tokens)


# --------------------------------------------------------------------------- upstream

def bench_upstream(path: Path, args, prompts: dict) -> dict:
    """Run tools/upstream_runner.py under upstream's interpreter, from a directory outside our repo."""
    upath = upstream_copy(path, args.cache_dir)
    spec = {"model": str(upath), "device": args.upstream_device, "n_ctx": args.n_ctx, "n_batch": args.n_batch,
            "threads": args.threads, "sampling": SAMPLING[args.sampling],
            "runs": [{"name": "warmup", "prompt": prompts["warmup"][0], "gen_tokens": 4}]
            + [{"name": name, "prompt": text, "gen_tokens": n_gen} for name, (text, _, n_gen) in runs_of(prompts, args)]}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if args.upstream_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(upstream_pythonpath(args.upstream_pythonpath, REPO))
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [args.upstream_python, str(TOOLS / "upstream_runner.py")]
    log(f"upstream[{args.upstream_device}]: {shlex.join(cmd)} on {upath.name}")
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(cmd, input=json.dumps(spec), capture_output=True, text=True, cwd=cwd, env=env)
    for line in proc.stderr.splitlines():
        if line.startswith("upstream ") or proc.returncode:
            log(line)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"upstream runner failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["runs"].pop("warmup", None)
    result["requested_device"] = args.upstream_device
    result["model_file"] = str(upath)
    return result


# --------------------------------------------------------------------------- report

def summary(run: dict) -> str:
    s = f"prompt {run['prompt_tokens']} tok at {run['prompt_tok_s']:.1f} tok/s"
    if run.get("gen_tokens"):
        s += f", gen {run['gen_tokens']} tok at {run['gen_tok_s']:.2f} tok/s"
    if "host_us_per_token" in run:
        s += f", host {run['host_us_per_token']:.0f} us/token"
    return s


def engine_label(res: dict) -> str:
    who = "ours" if res["engine"] == "ours" else f"upstream {res.get('version', '')}".strip()
    where = res["backend"] + (f" ({res['device']})" if res.get("device") else "")
    return f"{who} | {where}"


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    m = report["model"]
    cmd = f"`{report['command']}`"
    load = report.get("loadavg")
    lines = [f"Model `{m['file']}` ({m['arch']}, {m['size_bytes'] / 1e9:.2f} GB, {m['n_params'] / 1e6:.0f} M params),"
             f" {report['date']}, {report['host']}"
             + (f", load average {load[0]:.1f} at start" if load else "")
             + f", {report.get('settings', {}).get('sampling', 'greedy')} sampling.", ""]
    with_main = [res for res in report["results"] if "main" in res["runs"]]
    if with_main:
        lines += ["| engine | backend (device) | prompt tok | prompt tok/s | gen tok | gen tok/s | host µs/tok "
                  "| ids = upstream | command |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    upstream = next((res["runs"]["main"] for res in with_main if res["engine"] == "upstream"), None)
    for res in with_main:
        r = res["runs"]["main"]
        same = "-"
        if upstream is not None and res["engine"] == "ours":
            # leading greedy ids both engines share: evidence they did the same work (a near-tie
            # between two logits may legitimately split them later)
            same = f"{common_prefix(r.get('gen_ids', []), upstream.get('gen_ids', []))}/{r['gen_tokens']}"
        lines.append(f"| {engine_label(res)} | {r['prompt_tokens']} | {fmt(r['prompt_tok_s'], '.1f')} | "
                     f"{r['gen_tokens']} | {fmt(r.get('gen_tok_s'), '.2f')} | "
                     f"{fmt(r.get('host_us_per_token'), '.0f')} | {same} | {cmd} |")
    for res in report["results"]:
        a = res.get("anatomy")
        if a:
            lines.append(f"\nAnatomy of decoding, ours on {res['backend']}: {a['decode_steps']} decode step(s) per "
                         f"program run; per generated token {a['calls_per_token']:.2f} backend calls "
                         f"(run {a.get('run_per_token', 0):.2f}, start {a.get('start_per_token', 0):.2f}, "
                         f"read {a.get('read_per_token', 0):.2f}, "
                         f"write {a.get('write_per_token', 0):.2f})"
                         + (f", {a['submissions_per_token']:.2f} kp submissions" if "submissions_per_token" in a else "")
                         + (f", wall time outside fence waits {a['host_us_per_token_excl_wait']:.0f} µs"
                            if "host_us_per_token_excl_wait" in a else "")
                         + (f", {a['dispatches_per_token']:.0f} dispatches" if "dispatches_per_token" in a else "")
                         + f". Command: {cmd}")
    sweep = sorted({name for res in report["results"] for name in res["runs"] if name.startswith("ctx")},
                   key=lambda name: int(name[3:]))
    if sweep:
        lines += ["", "Context sweep: generation speed with the given number of tokens already in the cache.", "",
                  "| engine | backend (device) | depth | prompt tok/s | gen tok | gen tok/s | command |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for res in report["results"]:
            for name in sweep:
                if name not in res["runs"]:
                    continue
                r = res["runs"][name]
                lines.append(f"| {engine_label(res)} | {r['prompt_tokens']} | {fmt(r['prompt_tok_s'], '.1f')} | "
                             f"{r['gen_tokens']} | {fmt(r.get('gen_tok_s'), '.2f')} | {cmd} |")
    return "\n".join(lines) + "\n"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Engine knobs read from the environment (GPT4ALL_DECODE_STEPS, ...) are part of the exact command.
    knobs = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith("GPT4ALL_")]
    command = " ".join(knobs + [shlex.join(["python", "tools/bench.py", *(sys.argv[1:] if argv is None else argv)])])
    path, shape = resolve_model(args.model, args.cache_dir)
    info = model_info(path)
    info["shape"] = shape

    # Prompts: exact token ids for our engine, the same text for upstream.
    # The warm-up prompt spans one full batch and a partial one, so both program shapes are built before timing.
    lengths = {"warmup": min(args.n_batch, args.prompt_tokens) + 2, "main": args.prompt_tokens,
               **{f"ctx{d}": d for d in args.ctx_sweep}}
    if args.devices:
        tokenizer = load_tokenizer(path)
        prompts = {name: make_prompt(tokenizer, n) for name, n in lengths.items()}
    else:
        prompts = {name: (fallback_prompt(n), []) for name, n in lengths.items()}

    results: list[dict] = []
    report = {"command": command, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "host": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
              "loadavg": list(os.getloadavg()),      # other work on the machine skews every number
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "model": info, "results": results}

    def save() -> None:
        """Write what has been measured so far: a run cut off by a time limit still leaves its numbers."""
        done = [r for r in results if r["runs"]]
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(dict(report, results=results), indent=1))
        if args.markdown and done:
            args.markdown.write_text(markdown(dict(report, results=done)))

    for device in args.devices:
        res = {"engine": "ours", "requested_device": device, "runs": {}}
        results.append(res)
        bench_ours(path, device, args, prompts, res, save)
    failed = False
    if args.upstream:
        try:
            results.append(bench_upstream(path, args, prompts))
        except RuntimeError as err:     # keep our numbers; the log above has upstream's own output
            log(f"upstream: {err}")
            report["upstream_error"] = str(err)
            failed = True
        save()
    print(markdown(dict(report, results=[r for r in results if r["runs"]])))
    if args.json:
        log(f"wrote {args.json}")
    return 1 if failed else 0


def load_tokenizer(path: Path):
    """Our tokenizer for the file, built from its metadata without loading the weights."""
    import gguf
    import engine.tokenizer
    reader = gguf.GGUFReader(str(path))
    metadata = {key: field.contents() for key, field in reader.fields.items()}
    return engine.tokenizer.from_gguf(metadata)


if __name__ == "__main__":
    sys.exit(main())
