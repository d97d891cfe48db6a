#!/usr/bin/env python3
"""Random-weight nomic-bert GGUF files in llama.cpp's layout, in any shape (tiny for tests, real for benchmarks).

No nomic-embed-text weights can be fetched offline, so tests and benchmarks write their own file: the tensor
set, names, shapes and hyperparameter keys that llama.cpp's loader expects (gguf-py's
MODEL_TENSORS[NOMIC_BERT] / TENSOR_NAMES name them), random weights, and a real WordPiece vocab borrowed
from another BERT GGUF (all-MiniLM-L6-v2 uses bert-base-uncased's 30522 tokens, as nomic-embed-text does).
What makes nomic-bert different from BERT is all there: fused attn_qkv, NeoX-style RoPE on q and k (no
position table), SwiGLU feed-forward (silu(ffn_gate x) * ffn_up x), no biases on the projections.

    python tools/random_bert.py OUT.gguf --vocab-from all-MiniLM-L6-v2.F16.gguf --shape nomic-embed-text-v1.5
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

ARCH = gguf.MODEL_ARCH.NOMIC_BERT


@dataclass(frozen=True)
class Shape:
    n_embd: int
    n_head: int
    n_ff: int
    n_layer: int
    n_ctx: int


SHAPES = {
    "tiny": Shape(64, 4, 128, 2, 128),                       # 4 heads of 16 dims: tests
    "nomic-embed-text-v1.5": Shape(768, 12, 3072, 12, 2048),  # nomic-ai/nomic-embed-text-v1.5's config
}


def tensor_name(key: gguf.MODEL_TENSOR, bid: int | None = None, suffix: str = "weight") -> str:
    """A GGUF tensor name from gguf-py's table, checked to be one llama.cpp lists for nomic-bert."""
    assert key in gguf.MODEL_TENSORS[ARCH], key
    return gguf.TENSOR_NAMES[key].format(bid=bid) + "." + suffix


def write_nomic_bert(path: Path, vocab_model: Path, *, name: str, shape: Shape = SHAPES["tiny"],
                     rope_base: float = 1000.0, matrix_dtype=np.float32, seed: int = 0) -> Path:
    """A random nomic-bert GGUF with llama.cpp's layout (numpy shapes are GGUF's, reversed).  Weights are
    scaled so that attention is far from uniform (|q.k|/sqrt(d) ~ 1): a wrong RoPE shows."""
    rng = np.random.default_rng(seed)
    E, F = shape.n_embd, shape.n_ff
    vocab = {k: f.contents() for k, f in gguf.GGUFReader(vocab_model).fields.items()
             if k.startswith("tokenizer.ggml.")}
    n_vocab = len(vocab["tokenizer.ggml.tokens"])

    def rand(*dims, std=1.0, mean=0.0):
        return (mean + std * rng.standard_normal(dims)).astype(np.float32)

    def mat(*dims, std=1.0):           # the big matrices: F32 or F16 (1-D tensors stay F32, as converters do)
        return rand(*dims, std=std).astype(matrix_dtype)

    s = 0.15 * (64 / E) ** 0.5          # keeps q.k and the residual stream at the tiny model's scale
    M = gguf.MODEL_TENSOR
    tensors: dict[str, np.ndarray] = {
        tensor_name(M.TOKEN_EMBD): mat(n_vocab, E),                            # [n_vocab, E]
        tensor_name(M.TOKEN_TYPES): rand(2, E, std=0.5),                       # [n_types, E]
        tensor_name(M.TOKEN_EMBD_NORM): rand(E, std=0.1, mean=1.0),            # [E]
        tensor_name(M.TOKEN_EMBD_NORM, suffix="bias"): rand(E, std=0.1),       # [E]
    }
    for i in range(shape.n_layer):
        tensors.update({
            tensor_name(M.ATTN_QKV, i): mat(3 * E, E, std=s),                # [3E, E]: q, k, v rows
            tensor_name(M.ATTN_OUT, i): mat(E, E, std=s),                    # [E, E]
            tensor_name(M.ATTN_OUT_NORM, i): rand(E, std=0.1, mean=1.0),
            tensor_name(M.ATTN_OUT_NORM, i, "bias"): rand(E, std=0.1),
            tensor_name(M.FFN_UP, i): mat(F, E, std=s),                      # [F, E]
            tensor_name(M.FFN_GATE, i): mat(F, E, std=s),                    # [F, E]
            tensor_name(M.FFN_DOWN, i): mat(E, F, std=0.1 * (128 / F) ** 0.5),   # [E, F]
            tensor_name(M.LAYER_OUT_NORM, i): rand(E, std=0.1, mean=1.0),
            tensor_name(M.LAYER_OUT_NORM, i, "bias"): rand(E, std=0.1),
        })

    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[ARCH])
    w.add_name(name)
    w.add_context_length(shape.n_ctx)
    w.add_embedding_length(E)
    w.add_feed_forward_length(F)
    w.add_block_count(shape.n_layer)
    w.add_head_count(shape.n_head)
    w.add_layer_norm_eps(1e-12)
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType.MEAN)
    w.add_rope_freq_base(rope_base)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if matrix_dtype == np.float16 else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("bert")
    w.add_token_list(vocab["tokenizer.ggml.tokens"])
    w.add_token_types(vocab["tokenizer.ggml.token_type"])
    w.add_token_type_count(2)
    for key, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("unknown", w.add_unk_token_id),
                     ("seperator", w.add_sep_token_id), ("padding", w.add_pad_token_id),
                     ("mask", w.add_mask_token_id)):
        add(vocab[f"tokenizer.ggml.{key}_token_id"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(True)
    for n, t in tensors.items():
        w.add_tensor(n, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--vocab-from", type=Path, required=True, help="a BERT GGUF whose WordPiece vocab to copy")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="nomic-embed-text-v1.5")
    ap.add_argument("--name", default=None, help="general.name (default: the shape's name)")
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f16", help="type of the 2-D matrices")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    write_nomic_bert(args.out, args.vocab_from, name=args.name or args.shape, shape=SHAPES[args.shape],
                     matrix_dtype=np.float16 if args.dtype == "f16" else np.float32, seed=args.seed)
    print(args.out, round(args.out.stat().st_size / 1e6, 1), "MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
