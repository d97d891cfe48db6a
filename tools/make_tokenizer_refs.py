"""Write llama.cpp's token ids for the tokenizer corpus: the oracle tests/test_tokenizer.py checks against.

Run with the oracle interpreter, which has llama-cpp-python (built from its sdist):

    /opt/oracle/bin/python tools/make_tokenizer_refs.py

For every test model's tokenizer (SmolLM2: byte-level BPE 'smollm'; gemma3: SentencePiece;
all-MiniLM-L6-v2: WordPiece) and every string of tests/data/tokenizer/corpus.json, it records
llama.cpp's ids for add_special in {False, True} x parse_special in {False, True}, and the text
llama.cpp's token_to_piece gives back (special on and off). It also records the special token
ids, which tokens llama.cpp counts as end-of-generation and as control, and a SHA-256 over
every token's bytes so the whole vocabulary's token -> bytes table is checked, not only the
tokens the corpus happens to use. Output: tests/data/tokenizer/<model key>.json.

Pre-tokenizers no test model uses are checked the same way: for each name in PRE_NAMES it writes
a tensor-less copy of SmolLM2's metadata with ``tokenizer.ggml.pre`` replaced (a vocab-only GGUF
llama.cpp loads), and records llama.cpp's ids for the corpus with that pre-tokenizer over
SmolLM2's vocabulary and merges. Output: tests/data/tokenizer/pretokenizers.json.

Second oracle: upstream gpt4all 2.8.2 (``gpt4all`` argument). Its llama.cpp fork rejects 'smollm', so
it loads a copy whose pre-tokenizer is 'starcoder' (same regex; tools/upstream_runner.upstream_copy),
and the prompt callback records each prompt token id. Output: tests/data/tokenizer/gpt4all-smollm2.json.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sys
from pathlib import Path

import gguf
import llama_cpp

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "tokenizer"
MODELS_DIR = Path(os.environ.get("GPT4ALL_TEST_MODELS", Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))
MODELS = {  # key (as in tests/conftest.py) -> file name
    "smollm2-q4_1": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-q4_k_m": "gemma-3-270m-q4_k_m.gguf",
    "minilm-f16": "all-MiniLM-L6-v2.F16.gguf",
}


# Pre-tokenizer names checked over SmolLM2's BPE vocabulary ('smollm' itself is the model's own).
PRE_NAMES = ["default", "llama-bpe", "llama3", "qwen2", "starcoder", "deepseek-llm", "deepseek-coder",
             "falcon", "mpt", "gpt-2", "refact", "command-r", "olmo", "tekken", "stablelm2", "dbrx",
             "smaug-bpe", "poro-chat", "viking", "jais", "bloom", "chatglm-bpe", "deepseek-v3",
             "codeshell", "exaone", "minerva-7b", "chameleon"]


def write_vocab_only(src: Path, dst: Path, pre: str) -> None:
    """Copy every metadata key of src into a GGUF without tensors, with tokenizer.ggml.pre = pre."""
    reader = gguf.GGUFReader(str(src))
    writer = gguf.GGUFWriter(str(dst), arch=None)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "tokenizer.ggml.pre":
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    writer.add_key_value("tokenizer.ggml.pre", pre, gguf.GGUFValueType.STRING)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def pretokenizer_refs(src: Path, corpus: list[str], tmp: Path) -> dict:
    out = {"base_model": src.name, "oracle": f"llama-cpp-python {llama_cpp.__version__}", "pre": {}}
    for pre in PRE_NAMES:
        dst = tmp / f"vocab-{pre}.gguf"
        write_vocab_only(src, dst, pre)
        llm = llama_cpp.Llama(model_path=str(dst), vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        out["pre"][pre] = [tokenize(vocab, text, False, False) for text in corpus]
        del llm
        dst.unlink()
    return out


def gpt4all_refs(src: Path, corpus: list[str]) -> dict:
    import importlib.metadata
    import importlib.util
    from gpt4all import GPT4All   # the upstream wheel (this repo's gpt4all/ must not shadow it: no ROOT on sys.path)
    from gpt4all._pyllmodel import LLModel
    assert "site-packages" in sys.modules["gpt4all"].__file__, sys.modules["gpt4all"].__file__
    g4a_version = importlib.metadata.version("gpt4all")
    spec = importlib.util.spec_from_file_location("upstream_runner", ROOT / "tools" / "upstream_runner.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    upstream_copy = runner.upstream_copy

    seen: list[int] = []
    LLModel._prompt_callback = staticmethod(lambda tid: (seen.append(tid), True)[1])
    model = GPT4All(str(upstream_copy(src)), allow_download=False, device="cpu", n_threads=1, verbose=False)
    cases = []
    for text in corpus:
        if not text:
            continue        # upstream refuses to evaluate an empty prompt
        for special in (False, True):
            seen.clear()
            # template "%1": the text alone; upstream then appends its own "\n\n" separator tokens
            model.model.prompt_model(text, "%1", lambda i, r: False, n_predict=1, reset_context=True,
                                     special=special)
            cases.append({"text": text, "special": special, "ids": list(seen)})
    return {"oracle": f"gpt4all {g4a_version}", "base_model": src.name, "cases": cases}


def piece(vocab, tok: int, special: bool) -> bytes:
    """llama_token_to_piece with a buffer as large as the piece needs (no lstrip)."""
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, tok, buf, size, 0, special)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def tokenize(vocab, text: str, add_special: bool, parse_special: bool) -> list[int]:
    data = text.encode("utf-8")
    n_max = len(data) + 8
    arr = (llama_cpp.llama_token * n_max)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), arr, n_max, add_special, parse_special)
    if n < 0:
        raise RuntimeError(f"token buffer too small for {text!r}")
    return list(arr[:n])


def refs_for(key: str, path: Path, corpus: list[str]) -> dict:
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    cases = []
    for text in corpus:
        case = {"text": text, "ids": {}}
        for add_special in (False, True):
            for parse_special in (False, True):
                case["ids"][f"add={int(add_special)},parse={int(parse_special)}"] = \
                    tokenize(vocab, text, add_special, parse_special)
        ids = case["ids"]["add=1,parse=1"]
        case["decode_special"] = b"".join(piece(vocab, t, True) for t in ids).hex()
        case["decode_plain"] = b"".join(piece(vocab, t, False) for t in ids).hex()
        cases.append(case)

    digest = hashlib.sha256()
    for t in range(n_vocab):
        p = piece(vocab, t, True)
        digest.update(len(p).to_bytes(4, "little") + p)

    def tok_or_none(v):
        return None if v < 0 else int(v)

    return {
        "model": key,
        "file": path.name,
        "oracle": f"llama-cpp-python {llama_cpp.__version__}",
        "n_vocab": n_vocab,
        "bos": tok_or_none(llama_cpp.llama_vocab_bos(vocab)),
        "eos": tok_or_none(llama_cpp.llama_vocab_eos(vocab)),
        "eot": tok_or_none(llama_cpp.llama_vocab_eot(vocab)),
        "eog_ids": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)],
        "control_ids": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_control(vocab, t)],
        "pieces_sha256": digest.hexdigest(),
        "cases": cases,
    }


def main(argv: list[str]) -> int:
    corpus = json.loads((DATA / "corpus.json").read_text(encoding="utf-8"))
    keys = argv or [*MODELS, "pretokenizers"]
    for key in keys:
        if key == "gpt4all":
            refs = gpt4all_refs(MODELS_DIR / MODELS["smollm2-q4_1"], corpus)
            out = DATA / "gpt4all-smollm2.json"
            out.write_text(json.dumps(refs, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
            print(f"{out.relative_to(ROOT)}: {len(refs['cases'])} prompts, oracle {refs['oracle']}")
            continue
        if key == "pretokenizers":
            import tempfile
            with tempfile.TemporaryDirectory() as tmp:
                refs = pretokenizer_refs(MODELS_DIR / MODELS["smollm2-q4_1"], corpus, Path(tmp))
            out = DATA / "pretokenizers.json"
            out.write_text(json.dumps(refs, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
            print(f"{out.relative_to(ROOT)}: {len(refs['pre'])} pre-tokenizers x {len(corpus)} strings")
            continue
        path = MODELS_DIR / MODELS[key]
        if not path.exists():
            print(f"missing {path}: run `python tools/models.py` first", file=sys.stderr)
            return 1
        refs = refs_for(key, path, corpus)
        out = DATA / f"{key}.json"
        out.write_text(json.dumps(refs, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        print(f"{out.relative_to(ROOT)}: {len(refs['cases'])} strings, oracle {refs['oracle']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
