"""Make llama.cpp reference outputs for tests/test_llamacpp_parity.py.

Runs llama.cpp through llama-cpp-python (the oracle venv, not ours) on 10 varied prompts for each
model and saves, per prompt:
    ids        the prompt's token ids as llama.cpp tokenises it (so the test needs no tokenizer)
    top_ids    the 256 highest last-position logits' ids, falling          int32 [256]
    top_logits their logits                                                 float32 [256]
    greedy     48 greedy (arg-max, no penalty) continuation ids             int32 [48]
    gap        llama.cpp's own top-1 minus top-2 logit at each greedy step  float32 [48]
               (small gaps are near-ties, where a tiny numeric difference may flip the choice)

    /opt/oracle/bin/python tools/make_reference.py            # all models found
    /opt/oracle/bin/python tools/make_reference.py smollm2-f16
    /opt/oracle/bin/python tools/make_reference.py gemma3-q4_k_m-long    # only the long prompt

For gemma3 also <key>-long.npz: one prompt longer than its sliding window (top-256 last logits).
Output: tests/data/reference/<key>.npz (compressed, ~100 KB each) and <key>.json (versions, prompts).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "reference"
MODELS_DIR = Path(os.environ.get("GPT4ALL_TEST_MODELS", Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))
MODELS = {
    "smollm2-f16": "SmolLM2-135M-Instruct.F16.gguf",
    "smollm2-q8_0": "SmolLM2-135M-Instruct.Q8_0.gguf",
    "gemma3-q4_k_m": "gemma-3-270m-q4_k_m.gguf",
}
CHAT = {
    "smollm2": "<|im_start|>user\nWhat is the tallest mountain in Europe?<|im_end|>\n<|im_start|>assistant\n",
    "gemma3": "<start_of_turn>user\nWhat is the tallest mountain in Europe?<end_of_turn>\n<start_of_turn>model\n",
}
PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Q: What is 17 multiplied by 23?\nA:",
    "Here is a list of three primary colors:\n1.",
    "Translate to French: 'The weather is nice today.'\nFrench:",
    "In 1969, Neil Armstrong",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "   Whitespace   and\ttabs\n\n and emoji 🙂 and ünïcödé: ",
    None,   # the chat-formatted prompt for the model's family
]
TOP = 256
N_GREEDY = 48


def run(key: str) -> None:
    import llama_cpp
    path = MODELS_DIR / MODELS[key]
    llm = llama_cpp.Llama(str(path), n_ctx=512, n_batch=512, logits_all=True, verbose=False,
                          n_threads=2, seed=0)
    family = key.split("-")[0]
    data, prompts = {}, []
    for i, text in enumerate(PROMPTS):
        special = text is None
        text = CHAT[family] if text is None else text
        prompts.append(text)
        add_bos = bool(llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")
        ids = llm.tokenize(text.encode(), add_bos=add_bos, special=special)
        llm.reset()
        llm.eval(ids)
        last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top = np.argsort(-last, kind="stable")[:TOP]
        greedy, gap = [], []
        logits = last
        for _ in range(N_GREEDY):
            order = np.argsort(-logits, kind="stable")[:2]
            greedy.append(int(order[0]))
            gap.append(float(logits[order[0]] - logits[order[1]]))
            llm.eval([int(order[0])])
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        data[f"p{i}_ids"] = np.array(ids, dtype=np.int32)
        data[f"p{i}_top_ids"] = top.astype(np.int32)
        data[f"p{i}_top_logits"] = last[top]
        data[f"p{i}_greedy"] = np.array(greedy, dtype=np.int32)
        data[f"p{i}_gap"] = np.array(gap, dtype=np.float32)
        print(f"{key} prompt {i}: {len(ids)} ids, top {top[:5].tolist()}, min gap {min(gap):.3f}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / f"{key}.npz", **data)
    (OUT / f"{key}.json").write_text(json.dumps({
        "model_file": MODELS[key], "oracle": f"llama-cpp-python {llama_cpp.__version__}",
        "n_greedy": N_GREEDY, "top": TOP, "prompts": prompts}, indent=1, ensure_ascii=False) + "\n")


# A prompt longer than gemma3's 512-position sliding window, so its local layers must mask old positions.
LONG_PROMPT = " ".join(f"Item {i} is {'red' if i % 3 else 'blue'}." for i in range(120)) + " The colour of item 42 is"


def run_long(key: str) -> None:
    """<key>-long.npz: llama.cpp's top-256 last logits after LONG_PROMPT (859 tokens for gemma3)."""
    import llama_cpp
    llm = llama_cpp.Llama(str(MODELS_DIR / MODELS[key]), n_ctx=1024, n_batch=512, logits_all=True,
                          verbose=False, n_threads=2, seed=0)
    ids = llm.tokenize(LONG_PROMPT.encode(), add_bos=True, special=False)
    llm.eval(ids)
    last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    top = np.argsort(-last, kind="stable")[:TOP]
    np.savez_compressed(OUT / f"{key}-long.npz", ids=np.array(ids, dtype=np.int32),
                        top_ids=top.astype(np.int32), top_logits=last[top])
    print(f"{key} long prompt: {len(ids)} ids, top {top[:5].tolist()}", flush=True)


def main(argv: list[str]) -> int:
    keys = argv or [k for k in MODELS if (MODELS_DIR / MODELS[k]).exists()]
    for key in keys:
        if key.endswith("-long"):
            run_long(key[:-len("-long")])
            continue
        run(key)
        if key.startswith("gemma3"):
            run_long(key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
