"""Tokenizer speed: build time and encode time of a ~2,000-token prompt, per test model.

    .venv/bin/python tools/bench_tokenizer.py [--models DIR]

Reports, per tokenizer: reading the GGUF metadata, constructing the Tokenizer, the first encode
(which builds the lookup tables) and a repeat encode of a new ~2,000-token prompt (warm tables,
cold per-word cache, since the prompt's text is changed), plus decode.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.tokenizer import Tokenizer  # noqa: E402
from engine.tokenizer.gguf_meta import read_metadata  # noqa: E402

FILES = {"smollm2 (BPE)": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3 (SPM)": "gemma-3-270m-q4_k_m.gguf",
         "minilm (WordPiece)": "all-MiniLM-L6-v2.F16.gguf"}


def prompt(seed: int, n_chars: int = 3600) -> str:
    """Mixed prose, code, numbers and unicode from the test corpus, shuffled (about 2,000 tokens)."""
    corpus = json.loads((ROOT / "tests/data/tokenizer/corpus.json").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    parts, n = [], 0
    while n < n_chars:
        s = rng.choice(corpus) + " " + str(rng.randint(0, 10**6))
        parts.append(s)
        n += len(s) + 1
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get(
        "GPT4ALL_TEST_MODELS", Path.home() / ".cache/gpt4all-vulkan/test-models"))
    args = ap.parse_args()
    for name, fname in FILES.items():
        path = Path(args.models) / fname
        t0 = time.perf_counter()
        meta = read_metadata(path)
        t1 = time.perf_counter()
        tok = Tokenizer(meta)
        t2 = time.perf_counter()
        ids = tok.encode(prompt(0), parse_special=True)
        t3 = time.perf_counter()
        ids2 = tok.encode(prompt(1), parse_special=True)
        t4 = time.perf_counter()
        tok.decode(ids2)
        t5 = time.perf_counter()
        print(f"{name:20s} n_vocab={tok.n_vocab:6d}  read metadata {1e3*(t1-t0):6.0f} ms  "
              f"construct {1e3*(t2-t1):5.0f} ms  first encode {len(ids)} tok {1e3*(t3-t2):5.0f} ms  "
              f"encode {len(ids2)} tok {1e3*(t4-t3):5.0f} ms  decode {1e3*(t5-t4):4.0f} ms")


if __name__ == "__main__":
    main()
