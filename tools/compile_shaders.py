"""Compile every GLSL compute shader variant in shaders/ to SPIR-V in engine/spv/.

The .spv files are committed package data, so users need no shader compiler.  Each variant is
one source file plus defines (llama.cpp's Vulkan style: one generic kernel per op family, the
per-type dequantisation chosen by -DDATA_A_<TYPE>).  engine/spv/manifest.json records, for
each variant, its source, defines and a hash of everything it was built from, so that

    python tools/compile_shaders.py            # (re)build all variants with glslc
    python tools/compile_shaders.py --check    # exit 1 when any .spv is missing or out of date

lets a test (tests/test_vulkan_shaders_uptodate.py) catch a shader edited without recompiling.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHADERS = ROOT / "shaders"
SPV_DIR = ROOT / "engine" / "spv"
MANIFEST = SPV_DIR / "manifest.json"
# SPIR-V 1.3: accepted by every Vulkan 1.1 driver (the floor Kompute needs).
GLSLC_FLAGS = ["-O", "--target-env=vulkan1.1"]

# Weight types the typed kernels are built for (GGUF type name -> define suffix).
WEIGHT_TYPES = ["f32", "f16", "q4_0", "q4_1", "q5_0", "q8_0", "q4_k", "q6_k"]
# Split layouts (quants in 16-byte vectors, scales apart: GPT4ALL_MATVEC=v2; q4_0_tile: v3's permuted
# tiles): every typed kernel reads them through dequant8v, and the bandwidth mat-vec matmul_vec.comp is
# built for them only.
SPLIT_TYPES = ["q4_0_split", "q8_0_split", "q4_k_split", "q6_k_split", "q4_0_tile"]
# layouts whose decode mat-vec also has an integer-dot-product build (matmul_vec.comp -DINT_DOT, `_idot_sg`): the
# tile layouts, vulkan_ops.TILE_LAYOUTS' (VulkanOps._matmul picks these builds for them; this tool does not import
# the engine)
INT_DOT_TYPES = ["q4_0_tile"]


def variants() -> dict[str, tuple[str, list[str]]]:
    """name -> (source file in shaders/, defines).  The name is the .spv file's stem."""
    v: dict[str, tuple[str, list[str]]] = {}
    for t in WEIGHT_TYPES + SPLIT_TYPES:
        d = f"DATA_A_{t.upper()}"
        v[f"matmul_{t}"] = ("matmul.comp", [d])
        v[f"matmul_batch_{t}"] = ("matmul.comp", [d, "BATCH"])
        v[f"matmul_{t}_sg"] = ("matmul.comp", [d, "USE_SUBGROUP"])         # subgroup reductions
        v[f"matmul_batch_{t}_sg"] = ("matmul.comp", [d, "BATCH", "USE_SUBGROUP"])
        v[f"matmul_tiled_{t}"] = ("matmul_tiled.comp", [d])             # shared-memory tiled GEMM (batches)
        v[f"matmul_tiled_cm_{t}"] = ("matmul_tiled.comp", [d, "COOPMAT"])  # ... on tensor cores (f16 coopmat)
        # ... 128 x 128 tiles, 8 subgroups (GPT4ALL_GEMM=coopmat_wide): each weight dequantised once per 128 rows
        v[f"matmul_tiled_cmw_{t}"] = ("matmul_tiled.comp", [d, "COOPMAT", "BN=128", "WG_SIZE=256"])
        v[f"get_rows_{t}"] = ("get_rows.comp", [d])
        v[f"add_weight_{t}"] = ("add_weight.comp", [d])
        v[f"mul_weight_{t}"] = ("mul_weight.comp", [d])
        if t in SPLIT_TYPES:
            # ... Ops.matmul_glu of a batch over the stacked gate / up weight (stacks hold split layouts only)
            v[f"matmul_tiled_cmw_glu_{t}"] = ("matmul_tiled.comp", [d, "COOPMAT", "BN=128", "WG_SIZE=256", "GLU"])
            # the decode mat-vec: Ops.matmul; Ops.matmul_glu in one pass; Ops.matmul_stack in one pass; the same
            # with Ops.rope_qkv in its epilogue (q roped, k / v to the caches: decode's q/k/v + rope in one)
            for kind, defs in (("", []), ("glu_", ["GLU"]), ("stack_", ["STACK"]), ("stack_rope_", ["STACK", "ROPE"])):
                v[f"matmul_vec_{kind}{t}"] = ("matmul_vec.comp", [d, *defs])
                v[f"matmul_vec_{kind}{t}_sg"] = ("matmul_vec.comp", [d, *defs, "USE_SUBGROUP"])
                if t in INT_DOT_TYPES:         # ... x rounded to 8 bits, integer dot products (devices that have them)
                    v[f"matmul_vec_{kind}{t}_idot_sg"] = ("matmul_vec.comp", [d, *defs, "INT_DOT", "USE_SUBGROUP"])
    for plain in ["rms_norm", "layer_norm", "rope", "store_kv", "attention", "add", "scale", "gelu",
                  "softmax", "copy_rows", "mean_pool", "l2_normalize", "sample", "advance",
                  "attention_merge", "attention_decode", "attention_prompt", "matmul_split_sum"]:
        if (SHADERS / f"{plain}.comp").exists():
            v[plain] = (f"{plain}.comp", [])
    v["attention_sg"] = ("attention.comp", ["USE_SUBGROUP"])
    v["rms_norm_sg"] = ("rms_norm.comp", ["USE_SUBGROUP"])
    v["add_rms_norm"] = ("rms_norm.comp", ["ADD"])                    # x += d, then the norm: one dispatch
    v["add_rms_norm_sg"] = ("rms_norm.comp", ["ADD", "USE_SUBGROUP"])
    v["attention_decode_sg"] = ("attention_decode.comp", ["USE_SUBGROUP"])   # key-row sums by subgroup shuffles
    # Ops.sample v2 (the default; 'sample' is v1): the vocabulary in slices over many workgroups, then one
    # workgroup finishes from their arg-maxes / top-k candidates
    v["sample_partial"] = ("sample_partial.comp", [])
    v["sample_merge"] = ("sample.comp", ["SLICES"])
    v["tile_repack"] = ("tile_repack.comp", [])                     # upload: split -> tile layout (v3)
    v["upload_words"] = ("upload_words.comp", [])                   # upload: host -> device-local, a copy
    v["rope_qkv"] = ("rope.comp", ["QKV"])                          # Ops.rope_qkv: q, k and v in one dispatch
    # Ops.attention of a batch on tensor cores (f16 cooperative matrices), one build per head_dim it takes
    # (vulkan_ops.ATTENTION_PROMPT_CM_DIMS; this tool does not import the engine)
    for hd in (64, 128):
        v[f"attention_prompt_cm_d{hd}"] = ("attention_prompt_cm.comp", [f"HD={hd}"])
    v["glu_silu"] = ("glu.comp", ["GLU_SILU"])
    v["glu_gelu"] = ("glu.comp", ["GLU_GELU"])
    return {k: val for k, val in v.items() if (SHADERS / val[0]).exists()}


def source_hash(source: str, defines: list[str]) -> str:
    """Hash of the source, every include (conservatively: all shaders/**/*.glsl), defines, flags."""
    h = hashlib.sha256()
    h.update((SHADERS / source).read_bytes())
    for inc in sorted(SHADERS.rglob("*.glsl")):
        h.update(str(inc.relative_to(SHADERS)).encode())
        h.update(inc.read_bytes())
    h.update(" ".join(defines + GLSLC_FLAGS).encode())
    return h.hexdigest()


def compile_one(name: str, source: str, defines: list[str], out_dir: Path = SPV_DIR) -> None:
    glslc = shutil.which("glslc")
    if glslc is None:
        sys.exit("glslc not found: install Debian's `glslc` package (or the Vulkan SDK)")
    cmd = [glslc, *GLSLC_FLAGS, "-fshader-stage=compute", f"-I{SHADERS}",
           *[f"-D{d}" for d in defines], str(SHADERS / source), "-o", str(out_dir / f"{name}.spv")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(cmd)}\n{r.stderr}")


def stale() -> list[str]:
    """Variant names whose .spv is missing or whose sources changed since the manifest."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    out = []
    for name, (src, defs) in variants().items():
        entry = manifest.get(name)
        if (entry is None or entry.get("hash") != source_hash(src, defs)
                or not (SPV_DIR / f"{name}.spv").exists()):
            out.append(name)
    return out


def compile_all(todo: dict, out_dir: Path = SPV_DIR, extra_defines: tuple = ()) -> list[str]:
    """Compile the variants ``todo`` (name -> (source, defines)) into ``out_dir``, two at a time, each with
    ``extra_defines`` added; the compiler errors, if any."""
    errors = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futs = [pool.submit(compile_one, k, s, [*d, *extra_defines], out_dir) for k, (s, d) in todo.items()]
        for f in futs:
            try:
                f.result()
            except RuntimeError as e:
                errors.append(str(e))
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if any .spv is out of date")
    ap.add_argument("--only", help="compile only variants whose name contains this")
    ap.add_argument("--out", type=Path, help="an A/B set: compile every variant into this directory instead "
                    "(no manifest), for GPT4ALL_SPV_DIR=DIR; engine/spv is left as it is")
    ap.add_argument("--define", action="append", default=[], metavar="NAME[=VALUE]",
                    help="with --out: one more -D for every variant (repeatable), e.g. I2F_CONVERT")
    args = ap.parse_args()
    if args.define and not args.out:
        ap.error("--define needs --out (engine/spv holds the defaults)")
    if args.check:
        bad = stale()
        if bad:
            print(f"{len(bad)} SPIR-V file(s) out of date with shaders/: {', '.join(bad)}\n"
                  f"run: python tools/compile_shaders.py", file=sys.stderr)
            return 1
        print(f"all {len(variants())} SPIR-V files up to date")
        return 0
    out_dir = args.out or SPV_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = {k: v for k, v in variants().items() if not args.only or args.only in k}
    errors = compile_all(todo, out_dir, tuple(args.define))
    if errors:
        print("\n\n".join(errors), file=sys.stderr)
        return 1
    if args.out:                            # an A/B set: no manifest, engine/spv untouched
        print(f"compiled {len(todo)} variant(s) with {' '.join('-D' + d for d in args.define) or 'no extra defines'} "
              f"into {args.out}")
        return 0
    # the manifest only lists variants that exist now; stale .spv files of removed variants go
    known = variants()
    for spv in SPV_DIR.glob("*.spv"):
        if spv.stem not in known:
            spv.unlink()
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    manifest = {k: v for k, v in manifest.items() if k in known}
    for k, (s, d) in todo.items():          # only what was just compiled is marked up to date
        manifest[k] = {"source": s, "defines": d, "hash": source_hash(s, d)}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"compiled {len(todo)} variant(s) into {SPV_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
