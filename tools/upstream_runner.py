"""Time upstream gpt4all 2.8.2 on one GGUF file: the other half of tools/bench.py.

Two jobs live here, used from two different interpreters:

* ``upstream_copy(path)`` runs inside *our* interpreter (tools/bench.py).  Upstream's llama.cpp fork
  rejects some pre-tokenizer names that are newer than it (SmolLM2's 'smollm'); this writes a copy of the
  file in which only that one string KV is replaced by an older name with the same regex ('starcoder').
  It edits the header bytes only and streams the tensor data across unchanged.

* ``python upstream_runner.py < spec.json`` runs inside *upstream's* interpreter (default
  /opt/oracle/bin/python; on the GPU machine python3 with PYTHONPATH=.whl/upstream), from a working
  directory outside our repo, with a PYTHONPATH that does not contain our repo: our SDK package is also
  called ``gpt4all`` and must not shadow the real one.  It reads a JSON spec on stdin, loads the model with
  ``gpt4all.GPT4All`` and, for each run, prompts it (greedy unless the spec says otherwise) while a prompt callback and a
  response callback timestamp every token.  One JSON object (the result) is printed as the last stdout line.

Timing method (the same definitions tools/bench.py uses for our engine):
  prompt tok/s      = prompt tokens / (time of the last prompt-token callback - time the call started).
                      Upstream calls the prompt callback for each token of a batch right after that batch is
                      evaluated, so the last one marks the end of prompt processing.
  generation tok/s  = generated tokens / (time of the last response callback - end of prompt processing).
                      Upstream samples a token, evaluates it, then calls the response callback, so n
                      callbacks after the prompt cover exactly n samples and n single-token evaluations.
The response callback is hooked below the SDK's UTF-8 re-assembly, so every token is seen (the SDK's own
decoder skips callbacks for tokens that end inside a multi-byte character).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path

# Greedy decoding (temp 0 is greedy in upstream's sampler; top_k 1 makes sure), no repeat penalty.
GREEDY = dict(temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, repeat_last_n=0)

# Pre-tokenizer names newer than upstream 2.8.2's llama.cpp -> an older name with the same split regex.
PRE_TOKENIZER_FALLBACK = {"smollm": "starcoder"}


# ---------------------------------------------------------------- our side: the benchmarks' upstream options
# Shared by tools/bench.py and tools/bench_embed.py, which both run upstream in another interpreter.
DEFAULT_UPSTREAM_PYTHON = os.environ.get("BENCH_UPSTREAM_PYTHON",
                                         os.environ.get("GPT4ALL_ORACLE_PYTHON", "/opt/oracle/bin/python"))


def add_upstream_options(parser) -> None:
    """--upstream-device, --upstream-python, --upstream-pythonpath on an argparse parser."""
    parser.add_argument("--upstream-device", default=None,
                        help="upstream's device (default: 'cpu' when ours runs on cpu, else 'kompute')")
    parser.add_argument("--upstream-python", default=DEFAULT_UPSTREAM_PYTHON,
                        help="interpreter that has upstream gpt4all 2.8.2 (default %(default)s)")
    parser.add_argument("--upstream-pythonpath", default="",
                        help="PYTHONPATH for that interpreter, e.g. a directory holding upstream's `gpt4all` "
                             "(our repo is never on it)")


def upstream_pythonpath(value: str, repo: Path) -> list[str]:
    """--upstream-pythonpath as absolute directories; our repo is refused: its SDK package is also called
    `gpt4all` and would shadow upstream's."""
    parts = [str(Path(p).resolve()) for p in value.split(os.pathsep) if p]
    if any(Path(p) == repo for p in parts):
        raise SystemExit("--upstream-pythonpath must not contain our repo (our package is also 'gpt4all')")
    return parts


# --------------------------------------------------------------------------- the copy helper (our side)

def rewrite_string_kv(src: str | Path, dst: str | Path, key: str, value: str) -> None:
    """Copy GGUF file ``src`` to ``dst`` with the string KV ``key`` set to ``value``; nothing else changes.

    A GGUF file is: header (magic, version, counts), KV pairs, tensor infos, padding to
    ``general.alignment``, then tensor data.  Tensor infos store offsets relative to the start of the data
    section, so a longer or shorter string only moves the header's end; we re-pad and copy the data as is.
    """
    import gguf  # our interpreter has it; upstream's runner side never calls this

    reader = gguf.GGUFReader(str(src))
    field = reader.fields.get(key)
    if field is None or field.types != [gguf.GGUFValueType.STRING]:
        raise ValueError(f"{src}: no string KV named {key!r}")
    # A string field's parts: key length (u64), key bytes, value type (u32), value length (u64), value bytes.
    field_start = field.offset
    field_end = field_start + sum(part.nbytes for part in field.parts)
    encoded = value.encode("utf-8")
    new_field = b"".join(part.tobytes() for part in field.parts[:3]) + struct.pack("<Q", len(encoded)) + encoded

    if reader.tensors:
        header_end = max(t.field.offset + sum(p.nbytes for p in t.field.parts) for t in reader.tensors)
    else:
        header_end = max(f.offset + sum(p.nbytes for p in f.parts) for f in reader.fields.values())
    data_start, alignment = reader.data_offset, reader.alignment
    del reader  # drop the memory map before reading the file again

    with open(src, "rb") as fin, open(dst, "wb") as fout:
        header = fin.read(header_end)
        new_header = header[:field_start] + new_field + header[field_end:]
        fout.write(new_header)
        fout.write(b"\0" * (-len(new_header) % alignment))
        fin.seek(data_start)
        shutil.copyfileobj(fin, fout, length=16 << 20)


def upstream_copy(path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The file upstream should load: ``path`` itself, or (if its pre-tokenizer is one upstream rejects) a
    cached copy ``<stem>.upstream.gguf`` with the fallback name.  The copy is rebuilt when older than ``path``."""
    import gguf

    path = Path(path)
    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("tokenizer.ggml.pre")
    pre = field.contents() if field is not None else None
    del reader
    if pre not in PRE_TOKENIZER_FALLBACK:
        return path
    out_dir = Path(cache_dir) if cache_dir else path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / f"{path.stem}.upstream.gguf"
    if not dst.exists() or dst.stat().st_mtime < path.stat().st_mtime:
        tmp = dst.with_suffix(".tmp")
        rewrite_string_kv(path, tmp, "tokenizer.ggml.pre", PRE_TOKENIZER_FALLBACK[pre])
        tmp.replace(dst)
    return dst


# --------------------------------------------------------------------------- the runner (upstream's side)

def time_one_run(llmodel, prompt: str, n_gen: int, n_batch: int, sampling: dict) -> dict:
    """Prompt upstream once from an empty context; return token counts and timestamps-derived rates."""
    prompt_times: list[float] = []      # one perf_counter() per prompt token, taken in the prompt callback
    gen_times: list[float] = []         # one per generated token, taken in the response callback
    gen_ids: list[int] = []

    def on_prompt_token(token_id: int) -> bool:
        prompt_times.append(time.perf_counter())
        return True

    def raw_response_decoder(_user_callback):
        # Replaces LLModel._callback_decoder: sees every token's raw bytes, before UTF-8 re-assembly.
        def on_token(token_id: int, piece: bytes) -> bool:
            gen_times.append(time.perf_counter())
            gen_ids.append(token_id)
            return True
        return on_token

    # prompt_model builds its ctypes callbacks from these two attributes; instance attributes win.
    llmodel._prompt_callback = on_prompt_token
    llmodel._callback_decoder = raw_response_decoder
    t0 = time.perf_counter()
    llmodel.prompt_model(prompt, "%1", lambda *_: True, n_predict=n_gen, n_batch=n_batch,
                         reset_context=True, special=False, **sampling)
    t_end = time.perf_counter()
    if not prompt_times:
        raise RuntimeError("upstream evaluated no prompt tokens (prompt too long for n_ctx?)")
    # The template's trailing "\n\n" is evaluated after generation and reported through the prompt
    # callback too; only callbacks before the first generated token belong to the prompt.
    t_first_gen = gen_times[0] if gen_times else t_end
    prompt_stamps = [t for t in prompt_times if t <= t_first_gen]
    t_prompt_done = prompt_stamps[-1]
    result = {
        "prompt_tokens": len(prompt_stamps),
        "prompt_s": t_prompt_done - t0,
        "prompt_tok_s": len(prompt_stamps) / (t_prompt_done - t0),
        "gen_tokens": len(gen_times),
        "gen_ids": gen_ids,
    }
    if gen_times:
        result["gen_s"] = gen_times[-1] - t_prompt_done
        result["gen_tok_s"] = len(gen_times) / result["gen_s"]
    return result


def main() -> int:
    spec = json.load(sys.stdin)
    import gpt4all  # upstream's package: the caller's PYTHONPATH must not reach our repo
    from gpt4all import GPT4All

    version = getattr(gpt4all, "__version__", None)
    if version is None:
        from importlib.metadata import PackageNotFoundError, version as dist_version
        try:
            version = dist_version("gpt4all")
        except PackageNotFoundError:
            version = "unknown"
    model_path = Path(spec["model"])
    t0 = time.perf_counter()
    model = GPT4All(model_path.name, model_path=str(model_path.parent), allow_download=False,
                    device=spec.get("device") or None, n_ctx=spec["n_ctx"], n_threads=spec.get("threads"),
                    verbose=False)
    load_s = time.perf_counter() - t0
    llmodel = model.model
    out = {"engine": "upstream", "gpt4all_file": gpt4all.__file__, "version": version,
           "backend": model.backend, "device": model.device, "load_s": load_s, "runs": {}}
    for run in spec["runs"]:
        out["runs"][run["name"]] = time_one_run(llmodel, run["prompt"], run["gen_tokens"], spec["n_batch"],
                                                spec.get("sampling", GREEDY))
        print(f"upstream {run['name']}: {json.dumps({k: v for k, v in out['runs'][run['name']].items() if k != 'gen_ids'})}",
              file=sys.stderr, flush=True)
    model.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
