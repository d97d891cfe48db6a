#!/usr/bin/env python3
"""Embedding throughput: this project's Embed4All beside upstream gpt4all 2.8.2's, same GGUF, same run.

    python tools/bench_embed.py                               # MiniLM F16 test model, CPU
    python tools/bench_embed.py --device kompute --n-texts 512
    python tools/bench_embed.py --model path/to/model.gguf --skip-upstream

Both sides embed the same list of texts (sentences of mixed length, ~10-60 tokens) in one
`embed(list)` call, after one warm-up call; texts/s = n_texts / seconds of the timed call (best of
--repeat).  Upstream runs in a subprocess of the oracle venv's Python ($GPT4ALL_ORACLE_PYTHON,
default /opt/oracle/bin/python) on the CPU (its wheel's Kompute needs a real GPU).  Prints one JSON
line per side.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORACLE_PYTHON = os.environ.get("GPT4ALL_ORACLE_PYTHON", "/opt/oracle/bin/python")

_WORDS = ("vector embedding model token shader compute batch pooling sentence document query "
          "retrieval search graphics kernel memory layer attention transformer context window").split()

# The same timing loop runs on both sides; only the import differs.
_TIMER = r"""
import json, os, sys, time
texts, path, device, repeat = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
from gpt4all import Embed4All
t0 = time.perf_counter()
e = Embed4All(os.path.basename(path), model_path=os.path.dirname(path), allow_download=False,
              device=None if device == 'cpu' else device)
load_s = time.perf_counter() - t0
e.embed(texts[:8])                                  # warm-up: first-call costs (shader/pipeline, caches)
best = float('inf')
for _ in range(repeat):
    t0 = time.perf_counter()
    e.embed(texts)
    best = min(best, time.perf_counter() - t0)
backend = getattr(getattr(e.gpt4all, 'model', None), 'backend', device)
print(json.dumps({'texts_per_s': len(texts) / best, 'seconds': best, 'load_s': load_s, 'backend': str(backend)}))
"""


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 50))) + "." for _ in range(n)]


def run_side(python: str, isolated: bool, texts, model: Path, device: str, repeat: int) -> dict:
    cmd = [python] + (["-I"] if isolated else []) + ["-c", _TIMER, json.dumps(texts), str(model), device, str(repeat)]
    env = dict(os.environ)
    if not isolated:
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    if r.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="GGUF (default: the MiniLM F16 test model)")
    ap.add_argument("--device", default="cpu", help="ours: cpu | kompute | gpu | a device name (upstream: always cpu)")
    ap.add_argument("--n-texts", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-upstream", action="store_true")
    args = ap.parse_args(argv)
    if args.model is None:
        sys.path.insert(0, str(REPO / "tools"))
        import models
        args.model = models.ensure("minilm-f16")
    texts = make_texts(args.n_texts)
    ours = run_side(sys.executable, False, texts, args.model, args.device, args.repeat)
    print(json.dumps({"side": "ours", "model": args.model.name, "n_texts": len(texts), **ours}))
    if not args.skip_upstream:
        up = run_side(ORACLE_PYTHON, True, texts, args.model, "cpu", args.repeat)
        print(json.dumps({"side": "upstream gpt4all 2.8.2", "model": args.model.name, "n_texts": len(texts), **up}))
        print(f"ours/upstream: {ours['texts_per_s'] / up['texts_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
