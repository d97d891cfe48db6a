"""CPU: the NumPy engine beside upstream gpt4all 2.8.2, same file, same run, 2 threads each.

    .venv/bin/python tools/bench_cpu.py [--threads 2] [--prompt-tokens 128] [--gen-tokens 64]

A fixed configuration of tools/bench.py (which holds the timing method, the upstream runner and
the 'smollm' -> 'starcoder' pre-tokenizer copy that upstream needs): SmolLM2-135M-Instruct Q4_0,
our engine on device 'cpu' (NumPy) and upstream on its CPU backend, greedy, EOS ignored.
The markdown table goes to stdout and, with --markdown FILE, to a file for docs/performance.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
MODELS_DIR = Path(os.environ.get("GPT4ALL_TEST_MODELS", Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(MODELS_DIR / "SmolLM2-135M-Instruct.Q4_0.gguf"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--gen-tokens", type=int, default=64)
    p.add_argument("--n-batch", type=int, default=128)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    a = p.parse_args(argv)
    import bench  # tools/bench.py
    args = ["--model", a.model, "--device", "cpu", "--upstream", "--threads", str(a.threads),
            "--prompt-tokens", str(a.prompt_tokens), "--gen-tokens", str(a.gen_tokens),
            "--n-batch", str(a.n_batch)]
    if a.json:
        args += ["--json", a.json]
    if a.markdown:
        args += ["--markdown", a.markdown]
    return bench.main(args)


if __name__ == "__main__":
    sys.exit(main())
