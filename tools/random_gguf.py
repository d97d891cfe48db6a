"""Random-weight GGUF files in real model shapes, for speed work.

    python tools/random_gguf.py OUT.gguf --shape llama-3-8b --type Q4_0

Speed depends on shapes and quant types, not on what the weights say, and real 1B/8B files cannot
be fetched here (no model hub) nor carried to the GPU machine (64 MiB limit).  So benchmarks write
files that have exactly the tensors, shapes and types of Llama-3.2-1B / Llama-3-8B, random weights,
and a real tokenizer, which our engine, upstream gpt4all and llama.cpp all load and run.

Fast by construction: a quantised tensor is written as random bytes with a sane fp16 scale patched
into each block (never by quantising floats), one tensor at a time, so the 4.5 GB Llama-3-8B Q4_0
file takes seconds of CPU and memory bounded by the largest tensor.

Weights are scaled so each matmul roughly keeps its input's scale (std ~ 1/sqrt(fan_in)), and norm
weights are near 1, so activations stay finite through every layer.  1-D tensors are F32.

The tokenizer is SmolLM2's byte-level BPE (tools/data/smollm2-vocab.gguf: its tokenizer.* keys
only, Apache-2.0), padded with '[PADn]' tokens up to the shape's n_vocab (the names llama.cpp's
converter gives padding).  The pre-tokenizer is written as 'starcoder': the same regex as
SmolLM2's 'smollm', under a name that upstream gpt4all 2.8.2's older llama.cpp also accepts.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

VOCAB_GGUF = Path(__file__).resolve().parent / "data" / "smollm2-vocab.gguf"


@dataclass(frozen=True)
class LlamaShape:
    """Hyperparameters of a llama-architecture model (the GGUF llama.* keys)."""
    name: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    tied_embeddings: bool          # no output.weight: the output projection reuses token_embd
    context_length: int
    rope_theta: float = 500000.0
    rms_eps: float = 1e-5
    # Llama 3.1/3.2 rope scaling ("llama3" type): (factor, low_freq_factor, high_freq_factor, original ctx)
    rope_scaling: Optional[tuple[float, float, float, int]] = None

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


SHAPES = {
    "llama-3.2-1b": LlamaShape("Llama-3.2-1B", n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, n_ff=8192,
                               n_vocab=128256, tied_embeddings=True, context_length=131072,
                               rope_scaling=(32.0, 1.0, 4.0, 8192)),
    "llama-3-8b": LlamaShape("Llama-3-8B", n_embd=4096, n_layer=32, n_head=32, n_head_kv=8, n_ff=14336,
                             n_vocab=128256, tied_embeddings=False, context_length=8192),
    # A few-MB file with every feature of the 1B shape (tied embeddings, rope factors), for tests.
    "tiny": LlamaShape("tiny-llama", n_embd=128, n_layer=2, n_head=4, n_head_kv=2, n_ff=256,
                       n_vocab=49216, tied_embeddings=True, context_length=2048,
                       rope_scaling=(32.0, 1.0, 4.0, 8192)),
    # rows of whole 1024-weight tiles (the Q4_0 tile layout of GPT4ALL_MATVEC=v3), head_dim 128 as in 8B
    "tiny-tiles": LlamaShape("tiny-tiles-llama", n_embd=1024, n_layer=2, n_head=8, n_head_kv=2, n_ff=2048,
                             n_vocab=49216, tied_embeddings=True, context_length=2048,
                             rope_scaling=(32.0, 1.0, 4.0, 8192)),
}

FILE_TYPE = {QT.F32: gguf.LlamaFileType.ALL_F32, QT.F16: gguf.LlamaFileType.MOSTLY_F16,
             QT.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0, QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0}


def rope_freq_factors(shape: LlamaShape) -> np.ndarray:
    """[head_dim/2] f32: per-frequency divisors of Llama 3 rope scaling (llama.cpp's rope_freqs tensor).

    Wavelengths shorter than original_ctx/high_freq_factor are kept (factor 1), longer than
    original_ctx/low_freq_factor are stretched by `factor`, and the band between is interpolated.
    """
    factor, low, high, orig_ctx = shape.rope_scaling
    d = shape.head_dim
    freqs = 1.0 / shape.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    wavelen = 2 * math.pi / freqs
    smooth = (orig_ctx / wavelen - low) / (high - low)
    out = 1.0 / ((1 - smooth) / factor + smooth)           # the interpolated band
    out = np.where(wavelen < orig_ctx / high, 1.0, out)     # high frequencies: unchanged
    out = np.where(wavelen > orig_ctx / low, factor, out)   # low frequencies: fully scaled
    return out.astype(np.float32)


def tensor_plan(shape: LlamaShape) -> list[tuple[str, tuple[int, ...]]]:
    """(name, GGUF shape (ne0, ne1)) of every tensor, in llama.cpp's order.  ne0 is the input width."""
    e, hd = shape.n_embd, shape.head_dim
    plan = [("token_embd.weight", (e, shape.n_vocab))]
    if shape.rope_scaling:
        plan.append(("rope_freqs.weight", (hd // 2,)))
    for i in range(shape.n_layer):
        b = f"blk.{i}"
        plan += [(f"{b}.attn_norm.weight", (e,)),
                 (f"{b}.attn_q.weight", (e, shape.n_head * hd)),
                 (f"{b}.attn_k.weight", (e, shape.n_head_kv * hd)),
                 (f"{b}.attn_v.weight", (e, shape.n_head_kv * hd)),
                 (f"{b}.attn_output.weight", (shape.n_head * hd, e)),
                 (f"{b}.ffn_norm.weight", (e,)),
                 (f"{b}.ffn_gate.weight", (e, shape.n_ff)),
                 (f"{b}.ffn_up.weight", (e, shape.n_ff)),
                 (f"{b}.ffn_down.weight", (shape.n_ff, e))]
    plan.append(("output_norm.weight", (e,)))
    if not shape.tied_embeddings:
        plan.append(("output.weight", (e, shape.n_vocab)))
    return plan


def random_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly random bytes as a writable uint8 array (full-range uint64 draws: the fastest path)."""
    words = rng.integers(0, 2**64 - 1, size=(n + 7) // 8, dtype=np.uint64, endpoint=True)
    return words.view(np.uint8)[:n]


def random_weight(rng: np.random.Generator, ne0: int, ne1: int, qtype: QT) -> np.ndarray:
    """Random [ne1 rows, ne0] weight in `qtype`, as stored: uint8 blocks for Q4_0/Q8_0, f16 for F16.

    Target std of a weight: 1/sqrt(ne0).  Each block's fp16 scale d is that std divided by the std of
    the block's integer codes, times a per-block factor in [0.5, 1.5) taken from one of its random bytes.
    """
    std = 1.0 / math.sqrt(ne0)
    if qtype == QT.F16:
        # int8 codes (std ~73.9) scaled to the target std, stored as f16
        codes = random_bytes(rng, ne0 * ne1).view(np.int8).reshape(ne1, ne0)
        return (codes * np.float32(std / 73.9)).astype(np.float16)
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    assert ne0 % block == 0, f"row of {ne0} is not a whole number of {qtype.name} blocks"
    n_blocks = ne1 * ne0 // block
    blocks = random_bytes(rng, n_blocks * type_size).reshape(n_blocks, type_size)
    # Q4_0: 16 bytes of 4-bit codes q in 0..15, value d*(q-8), code std 4.64.
    # Q8_0: 32 int8 codes, value d*q, code std ~73.9.
    code_std = 4.64 if qtype == QT.Q4_0 else 73.9
    variety = (0.5 + np.arange(16, dtype=np.float32) / 16).astype(np.float32)
    d = (variety[blocks[:, 2] & 15] * np.float32(std / code_std)).astype(np.float16)
    blocks[:, 0:2] = d.view(np.uint8).reshape(n_blocks, 2)   # the block header: fp16 d, little-endian
    return blocks.reshape(ne1, ne0 // block * type_size)


@functools.lru_cache(maxsize=2)
def read_tokenizer(vocab_gguf: Path) -> dict[str, tuple[list[gguf.GGUFValueType], object]]:
    """tokenizer.* key -> (GGUF value types, value) of a vocab GGUF (parsed once: it takes seconds)."""
    reader = gguf.GGUFReader(vocab_gguf)
    return {k: (f.types, f.contents()) for k, f in reader.fields.items() if k.startswith("tokenizer.")}


def add_tokenizer(writer: gguf.GGUFWriter, n_vocab: int, vocab_gguf: Path = VOCAB_GGUF) -> None:
    """Copy a real tokenizer's keys, padding tokens/token types up to n_vocab with '[PADn]' tokens.

    The pads are NORMAL tokens, not UNUSED ones: random weights do sample them, and a sampled token must
    decode to some text (upstream gpt4all aborts on an empty piece; llama.cpp prints UNUSED ones as '').
    No BPE merge ever produces them, so tokenisation is SmolLM2's exactly.
    """
    fields = read_tokenizer(Path(vocab_gguf))
    tokens = fields["tokenizer.ggml.tokens"][1]
    types = fields["tokenizer.ggml.token_type"][1]
    if n_vocab < len(tokens):
        raise ValueError(f"n_vocab {n_vocab} is smaller than the tokenizer's {len(tokens)} tokens")
    n_pad = n_vocab - len(tokens)
    writer.add_tokenizer_model(fields["tokenizer.ggml.model"][1])
    writer.add_tokenizer_pre("starcoder")   # = SmolLM2's 'smollm' regex; see the module docstring
    writer.add_token_list(tokens + [f"[PAD{i}]" for i in range(len(tokens), n_vocab)])
    writer.add_token_types(list(types) + [int(gguf.TokenType.NORMAL)] * n_pad)
    for key, (types_, value) in fields.items():
        if key not in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
            vtype = types_[0]
            writer.add_key_value(key, value, vtype, types_[-1] if vtype == gguf.GGUFValueType.ARRAY else None)


def write_random_gguf(path, shape: str | LlamaShape = "llama-3.2-1b", qtype: str | QT = "Q4_0",
                      seed: int = 0, n_layer: Optional[int] = None, vocab_gguf: Path = VOCAB_GGUF,
                      progress: bool = True) -> Path:
    """Write a random-weight llama GGUF of `shape` (a SHAPES key or a LlamaShape) with 2-D weights in `qtype`.

    n_layer overrides the shape's layer count (e.g. a 2-layer 8B-wide file for a quick check).
    The file is written under a temporary name and renamed, so an existing file is a complete one.
    """
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    if n_layer is not None:
        shape = replace(shape, n_layer=n_layer)
    qtype = QT[qtype.upper()] if isinstance(qtype, str) else qtype
    if qtype not in FILE_TYPE:
        raise ValueError(f"unsupported type {qtype.name}; choose from {[t.name for t in FILE_TYPE]}")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    rng = np.random.Generator(np.random.SFC64(seed))

    writer = gguf.GGUFWriter(tmp, "llama")
    writer.add_type("model")
    writer.add_name(f"random-{shape.name}-{qtype.name}")
    writer.add_description(f"Random weights in {shape.name}'s shapes, for benchmarks (tools/random_gguf.py)")
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_vocab_size(shape.n_vocab)
    writer.add_file_type(FILE_TYPE[qtype])
    if qtype not in (QT.F32, QT.F16):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer(writer, shape.n_vocab, vocab_gguf)

    # Declare every tensor first (the header lists them all), then stream the data one tensor at a time.
    plan = tensor_plan(shape)
    for name, ne in plan:
        if len(ne) == 1:
            writer.add_tensor_info(name, ne, np.dtype(np.float32), ne[0] * 4)
        elif qtype == QT.F16:
            writer.add_tensor_info(name, (ne[1], ne[0]), np.dtype(np.float16), ne[0] * ne[1] * 2)
        else:
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            row_bytes = ne[0] // block * type_size
            writer.add_tensor_info(name, (ne[1], row_bytes), np.dtype(np.uint8), ne[1] * row_bytes, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(plan), unit="tensor", desc=path.name, leave=False)
    for name, ne in plan:
        if name == "rope_freqs.weight":
            data = rope_freq_factors(shape)
        elif len(ne) == 1:   # norm weights near 1, so every layer's scale is kept
            data = (1.0 + 0.1 * (rng.random(ne[0], dtype=np.float32) - 0.5)).astype(np.float32)
        else:
            data = random_weight(rng, ne[0], ne[1], qtype)
        writer.write_tensor_data(data)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    writer.close()
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write a random-weight GGUF file in a real model's shapes.")
    p.add_argument("out", type=Path)
    p.add_argument("--shape", default="llama-3.2-1b", choices=sorted(SHAPES))
    p.add_argument("--type", default="Q4_0", choices=[t.name for t in FILE_TYPE])
    p.add_argument("--layers", type=int, default=None, help="override the shape's layer count")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    out = write_random_gguf(a.out, a.shape, a.type, seed=a.seed, n_layer=a.layers)
    print(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
