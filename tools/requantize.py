"""Re-quantise a GGUF file to another tensor type, keeping every metadata key.

    python tools/requantize.py IN.gguf OUT.gguf Q8_0

Each 2-D weight is dequantised with gguf.quants (the reference dequantisers that ship with
llama.cpp's gguf-py) and quantised again to the target type, so the output is exactly what
gguf-py would write for those float values.  1-D tensors (norm weights and biases) stay F32,
as llama.cpp's converter keeps them.  `general.file_type` is updated to match.

This is how the test suite gets Q4_0 / Q8_0 / F16 variants of SmolLM2 (whose published file
is Q4_1) and of all-MiniLM: one real model, every quant type our kernels must handle.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

# general.file_type for a file whose 2-D weights are all of one type (llama.h's llama_ftype).
FILE_TYPE = {
    QT.F32: gguf.LlamaFileType.ALL_F32,
    QT.F16: gguf.LlamaFileType.MOSTLY_F16,
    QT.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0,
    QT.Q4_1: gguf.LlamaFileType.MOSTLY_Q4_1,
    QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
}

# Keys the writer makes itself (GGUF.* are the reader's view of the header, not real keys).
_WRITER_OWNED = {gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE}


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, skip: set[str] = frozenset()) -> None:
    """Copy every key/value of `reader` into `writer`, with its exact GGUF value type."""
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in _WRITER_OWNED or key in skip:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type)


def convert_tensor(values: np.ndarray, target: QT) -> tuple[np.ndarray, QT]:
    """float32 [rows, ne0] -> (data, type) in `target`; data is uint8 [rows, bytes_per_row] when quantised."""
    if target == QT.F32:
        return values.astype(np.float32), QT.F32
    if target == QT.F16:
        return values.astype(np.float16), QT.F16
    block, _ = gguf.GGML_QUANT_SIZES[target]
    if values.shape[-1] % block:
        # A row that is not a whole number of blocks cannot be quantised; llama.cpp falls back too.
        return values.astype(np.float16), QT.F16
    return gguf.quants.quantize(values, target), target


def requantize(src: str | os.PathLike, dst: str | os.PathLike, target: QT | str,
               keep_f32: tuple[str, ...] = (), progress: bool = True) -> Path:
    """Write `src` re-quantised to `target` as `dst` (atomically: a partial file is never left behind).

    keep_f32: substrings of tensor names that stay F32 even when 2-D (e.g. BERT's tiny token_types).
    """
    target = QT[target] if isinstance(target, str) else target
    dst = Path(dst)
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    tmp = dst.with_name(dst.name + ".part")
    writer = gguf.GGUFWriter(tmp, arch)
    copy_metadata(reader, writer)
    writer.add_file_type(FILE_TYPE[target])

    tensors = reader.tensors
    if progress:
        from tqdm import tqdm
        tensors = tqdm(tensors, desc=f"{dst.name}", unit="tensor", leave=False)
    for t in tensors:
        # t.data holds the tensor as stored: [rows, ne0] floats or [rows, bytes_per_row] uint8 blocks.
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        values = values.reshape(tuple(reversed([int(n) for n in t.shape])))  # GGUF ne0 is the last numpy axis
        if values.ndim == 1 or any(k in t.name for k in keep_f32):
            data, qtype = values, QT.F32
        else:
            data, qtype = convert_tensor(values, target)
        writer.add_tensor(t.name, data, raw_dtype=qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, dst)
    return dst


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("type", choices=[t.name for t in FILE_TYPE])
    a = p.parse_args(argv)
    requantize(a.src, a.dst, a.type)
    return 0


if __name__ == "__main__":
    sys.exit(main())
