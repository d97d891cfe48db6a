#!/usr/bin/env python3
"""Embedding throughput: this project's Embed4All beside upstream gpt4all 2.8.2's, same GGUF, same run.

    python tools/bench_embed.py                               # MiniLM F16 test model, both on the CPU
    python tools/bench_embed.py --device kompute --n-texts 512 # ours on the GPU, upstream on its Kompute
    python tools/bench_embed.py --model path/to/model.gguf --skip-upstream
    python tools/bench_embed.py --random-shape nomic-embed-text-v1.5   # 137M params, random F16 weights

On a machine without network (the GPU machine) give the GGUF explicitly, e.g. a carried copy of the
MiniLM F16 test model (46 MB), and upstream's package directory:

    python3 tools/bench_embed.py --model .devcarry/all-MiniLM-L6-v2.F16.gguf --device kompute --n-texts 512 \
        --upstream-python python3 --upstream-pythonpath .whl/upstream --json out/embed.json

Both sides embed the same list of texts (sentences of mixed length, ~10-60 tokens) in one
`embed(list, return_dict=True)` call, after one warm-up call on the first 8 texts; texts/s = n_texts /
seconds of the timed call, best of --repeat (a GPU backend records one program per number of packed
texts: the first timed call may pay some of those recordings, later calls reuse them).  Each side runs
in its own subprocess: ours with this repo on PYTHONPATH, upstream with only --upstream-pythonpath (or
the oracle venv's own packages) and from a directory outside this repo, because both packages are
called `gpt4all`.  Upstream's device: 'cpu' when ours is on the CPU, else 'kompute' (its backend name
is reported: upstream silently falls back to the CPU where Kompute cannot run the model).

Our engine packs texts into forward passes of about 512 rows (env GPT4ALL_EMBED_PASS_TOKENS, read by
engine/models/bert.py; it changes speed, never the vectors): on a GPU, try 256 / 1024 / 2048 too.

Printed: one JSON line per side (texts/s, tokens/s, n_prompt_tokens, backend, device, load time), then
the speed ratio and a sanity check that both sides did the same work: equal n_prompt_tokens and the
cosine between their vectors for the first texts (>= 0.999 expected on F16/F32 files).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from upstream_runner import add_upstream_options, upstream_pythonpath  # noqa: E402
N_CHECK = 4        # vectors of the first N_CHECK texts go back to the parent for the cross-check

_WORDS = ("vector embedding model token shader compute batch pooling sentence document query "
          "retrieval search graphics kernel memory layer attention transformer context window").split()

# The same timing loop runs on both sides; only the `gpt4all` it imports differs.
_TIMER = r"""
import json, os, sys, time
spec = json.loads(sys.argv[1])
texts, path, device = spec["texts"], spec["model"], spec["device"]
from gpt4all import Embed4All
t0 = time.perf_counter()
e = Embed4All(os.path.basename(path), model_path=os.path.dirname(path), allow_download=False,
              device=None if device == "cpu" else device, n_ctx=spec["n_ctx"])
load_s = time.perf_counter() - t0
e.embed(texts[:8])                                  # warm-up: first-call costs (pipelines, caches)
best, res = float("inf"), None
for _ in range(spec["repeat"]):
    t0 = time.perf_counter()
    res = e.embed(texts, return_dict=True)
    best = min(best, time.perf_counter() - t0)
g = e.gpt4all
print(json.dumps({"texts_per_s": len(texts) / best, "tokens_per_s": res["n_prompt_tokens"] / best,
                  "seconds": best, "n_prompt_tokens": res["n_prompt_tokens"], "load_s": load_s,
                  "backend": str(g.backend), "gpu": g.device, "first": res["embeddings"][:spec["n_check"]]}))
"""


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 50))) + "." for _ in range(n)]


def run_side(python: str, pythonpath: str | None, spec: dict) -> dict:
    """One side in a subprocess.  pythonpath None: ours (this repo prepended to PYTHONPATH, run from the
    repo); a string: upstream, with PYTHONPATH replaced by it ('' = the interpreter's own packages, in
    isolated mode) and run from a temporary directory, so this repo's `gpt4all` cannot be imported."""
    env = dict(os.environ)
    if pythonpath is None:
        cmd, cwd = [python, "-c", _TIMER], str(REPO)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    else:
        parts = upstream_pythonpath(pythonpath, REPO)
        cmd, cwd = [python] + ([] if parts else ["-I"]) + ["-c", _TIMER], tempfile.gettempdir()
        env["PYTHONPATH"] = os.pathsep.join(parts)
    r = subprocess.run(cmd + [json.dumps(spec)], capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="GGUF file (default: the MiniLM F16 test model, made by tools/models.py)")
    ap.add_argument("--random-shape", default=None, choices=("nomic-embed-text-v1.5",),
                    help="benchmark a random-weight F16 nomic-bert in this real shape instead (written by "
                         "tools/random_bert.py into --cache-dir, with the WordPiece vocab of --model)")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench-embed")
    ap.add_argument("--device", default="cpu", help="ours: cpu | kompute | gpu | a device name")
    add_upstream_options(ap)
    ap.add_argument("--n-texts", type=int, default=128)
    ap.add_argument("--n-ctx", type=int, default=2048,
                    help="both sides: tokens per forward pass (upstream: n_batch = n_ctx for embeddings)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-upstream", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write all results to this file")
    args = ap.parse_args(argv)
    if args.model is None:
        sys.path.insert(0, str(REPO / "tools"))
        import models
        args.model = models.ensure("minilm-f16")
    args.model = args.model.resolve()
    if args.random_shape:
        sys.path.insert(0, str(REPO / "tools"))
        import random_bert
        path = args.cache_dir / f"{args.random_shape}.random.f16.gguf"
        if not path.exists():
            args.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            random_bert.write_nomic_bert(tmp, args.model, name=args.random_shape,
                                         shape=random_bert.SHAPES[args.random_shape], matrix_dtype=np.float16)
            tmp.replace(path)
        args.model = path
    if args.upstream_device is None:
        args.upstream_device = "cpu" if args.device == "cpu" else "kompute"

    texts = make_texts(args.n_texts)
    spec = {"texts": texts, "model": str(args.model), "n_ctx": args.n_ctx, "repeat": args.repeat,
            "n_check": N_CHECK}
    head = {"model": args.model.name, "n_texts": len(texts), "n_ctx": args.n_ctx}
    def show(r: dict) -> dict:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "first"}),
              flush=True)
        return r

    results = [show({"side": "ours", **head, "requested_device": args.device,
                     **run_side(sys.executable, None, {**spec, "device": args.device})})]
    upstream_failed = False
    if not args.skip_upstream:
        try:       # ours is printed already: an upstream failure (no Kompute device, ...) must not hide it
            results.append(show({"side": "upstream gpt4all 2.8.2", **head, "requested_device": args.upstream_device,
                                 **run_side(args.upstream_python, args.upstream_pythonpath,
                                            {**spec, "device": args.upstream_device})}))
        except RuntimeError as e:
            print(f"upstream failed: {e}", file=sys.stderr)
            upstream_failed = True
    if len(results) == 2:
        ours, up = results
        cos = [float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(ours["first"], up["first"])]
        summary = {"pass_tokens": os.environ.get("GPT4ALL_EMBED_PASS_TOKENS", "default"),
                   "ours_over_upstream": ours["texts_per_s"] / up["texts_per_s"],
                   "same_n_prompt_tokens": ours["n_prompt_tokens"] == up["n_prompt_tokens"],
                   "min_cosine_first_texts": min(cos)}
        print(f"ours/upstream: {summary['ours_over_upstream']:.2f}x texts/s "
              f"(ours on {ours['backend']}, upstream on {up['backend']}); same work: "
              f"n_prompt_tokens {ours['n_prompt_tokens']} vs {up['n_prompt_tokens']}, "
              f"min cosine of the first {len(cos)} vectors {min(cos):.6f}")
        results.append({"side": "summary", **summary})
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if upstream_failed else 0


if __name__ == "__main__":
    sys.exit(main())
