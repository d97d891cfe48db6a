"""Dequantisation of GGUF tensor data to float32, vectorised over blocks.

A quantised GGUF tensor is a sequence of fixed-size *blocks*.  Each block encodes a run of
consecutive values of one row (32 values for the "legacy" types Q4_0 .. Q8_0, 256 for the
"k-quants" Q2_K .. Q6_K) as a few float16 scales plus small integers.  A row of ``ne0`` values
is ``ne0 / block_size`` blocks, and rows follow each other, so a tensor is a 2-D byte array
``[n_rows, n_blocks_per_row * block_bytes]``, exactly what gguf.GGUFReader hands out.

Every function below takes the blocks as a uint8 array ``[n_blocks, block_bytes]`` and
returns their parts, integers and float32 scales and offsets (value = scale * q + offset per
sub-block; ``_BLOCK_PARTS``), which ``dequantize`` multiplies out: NumPy handles all blocks at
once (one array expression per field), never a Python loop per block.  The layouts follow ggml's
``block_q*`` structs (ggml-common.h); each is drawn in the function's comment.

Public entry points:
    dequantize(raw, ggml_type)                       -> float32 [n_rows, ne0] (or 1-D for 1-D raw)
    dequantize_rows(raw, ggml_type, row0, n_rows)    -> float32 [n_rows, ne0] of only those rows
    block_parts(raw, ggml_type)                      -> (q, scale, offset): the integers and their scales
    BLOCK_TYPES                                      -> the types block_parts takes (all but the float ones)
    SUPPORTED_TYPES                                  -> the GGMLQuantizationType values handled here
"""
from __future__ import annotations

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T


def _f16(blocks: np.ndarray, offset: int) -> np.ndarray:
    """The float16 stored at byte ``offset`` of every block, as float32 [n_blocks, 1]."""
    return np.ascontiguousarray(blocks[:, offset:offset + 2]).view(np.float16).astype(np.float32)


# ---------------------------------------------------------------------------- legacy types (32 values)

def _legacy(q: np.ndarray, d: np.ndarray, m: np.ndarray | None = None) -> tuple:
    """A legacy block's parts (see _BLOCK_PARTS): its 32 values are one sub-block."""
    return q[:, None, :], d[:, :, None], None if m is None else m[:, :, None]


def _q4_0(b: np.ndarray) -> tuple:
    # block_q4_0, 18 bytes:   | d: f16 | qs: 16 bytes |
    # qs[j] holds value j in its low nibble and value j + 16 in its high nibble;
    # value = (nibble - 8) * d.
    d = _f16(b, 0)
    qs = b[:, 2:18]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8   # [n, 32]
    return _legacy(q, d)


def _q4_1(b: np.ndarray) -> tuple:
    # block_q4_1, 20 bytes:   | d: f16 | m: f16 | qs: 16 bytes |   value = nibble * d + m
    d, m = _f16(b, 0), _f16(b, 2)
    qs = b[:, 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1)
    return _legacy(q, d, m)


def _fifth_bits(qh_bytes: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1 keep the 5th bit of value j in bit j of a little-endian uint32: -> [n, 32] of 0/16."""
    qh = np.ascontiguousarray(qh_bytes).view("<u4")                      # [n, 1]
    return (((qh >> np.arange(32, dtype=np.uint32)) & 1) << 4).astype(np.uint8)


def _q5_0(b: np.ndarray) -> tuple:
    # block_q5_0, 22 bytes:   | d: f16 | qh: 4 bytes (32 fifth bits) | qs: 16 bytes (low nibbles) |
    # value = ((nibble | fifth_bit << 4) - 16) * d, nibble order as in Q4_0.
    d = _f16(b, 0)
    qs = b[:, 6:22]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1) | _fifth_bits(b[:, 2:6])
    return _legacy(q.astype(np.int8) - 16, d)


def _q5_1(b: np.ndarray) -> tuple:
    # block_q5_1, 24 bytes:   | d: f16 | m: f16 | qh: 4 bytes | qs: 16 bytes |   value = q * d + m
    d, m = _f16(b, 0), _f16(b, 2)
    qs = b[:, 8:24]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1) | _fifth_bits(b[:, 4:8])
    return _legacy(q, d, m)


def _q8_0(b: np.ndarray) -> tuple:
    # block_q8_0, 34 bytes:   | d: f16 | qs: 32 x int8 |   value = q * d
    d = _f16(b, 0)
    return _legacy(b[:, 2:34].view(np.int8), d)


# ---------------------------------------------------------------------------- k-quants (256 values)
# A k-quant "super-block" of 256 values is split into sub-blocks (16 x 16 or 8 x 32 values), each
# with its own small integer scale (and min), which are themselves scaled by the f16 d (and dmin).

def _q2_k(b: np.ndarray) -> tuple:
    # block_q2_K, 84 bytes:   | scales: 16 bytes | qs: 64 bytes | d: f16 | dmin: f16 |
    # scales[s]: low nibble = scale, high nibble = min of sub-block s (16 values each).
    # qs: two halves of 32 bytes; in half h, byte l holds four 2-bit values at shifts 0,2,4,6;
    # the value at shift 2j is element  h*128 + j*32 + l,  which lies in sub-block h*8 + j*2 + l//16.
    n = b.shape[0]
    sc = b[:, 0:16]
    d, dmin = _f16(b, 80), _f16(b, 82)
    qs = b[:, 16:80].reshape(n, 2, 1, 32)
    q = (qs >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3          # [n, h=2, j=4, l=32]
    q = q.reshape(n, 16, 16)                                                      # [n, sub-block, 16]
    scale = d[:, :, None] * (sc & 0x0F)[:, :, None]
    minimum = dmin[:, :, None] * (sc >> 4)[:, :, None]
    return q, scale, -minimum


def _q3_k(b: np.ndarray) -> tuple:
    # block_q3_K, 110 bytes:  | hmask: 32 bytes | qs: 64 bytes | scales: 12 bytes | d: f16 |
    # Values are 3 bits: the low 2 from qs (same layout as Q2_K), the 3rd from hmask: element
    # h*128 + j*32 + l has its high bit in bit (h*4 + j) of hmask[l]; a *clear* bit means -4.
    # The 16 sub-block scales are 6-bit (stored + 32): the low 4 bits of scale s are nibble s%8 of
    # scales[0:8] (low nibbles first), the high 2 bits are bits 2*(s//4) of scales[8 + s%4].
    n = b.shape[0]
    hmask = b[:, 0:32].reshape(n, 1, 32)
    qs = b[:, 32:96].reshape(n, 2, 1, 32)
    packed = b[:, 96:108]
    d = _f16(b, 108)
    low = np.concatenate([packed[:, 0:8] & 0x0F, packed[:, 0:8] >> 4], axis=1)          # [n, 16]
    s = np.arange(16)
    high = (packed[:, 8 + s % 4] >> (2 * (s // 4)).astype(np.uint8)) & 3                 # [n, 16]
    scales = (low | (high << 4)).astype(np.int8) - 32                                   # [n, 16]
    q = (qs >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3                # [n, 2, 4, 32]
    hbit = (hmask >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & 1                  # [n, 8, 32]
    q = q.reshape(n, 8, 32).astype(np.int8) - 4 * (1 - hbit.astype(np.int8))
    q = q.reshape(n, 16, 16)
    return q, d[:, :, None] * scales[:, :, None], None


def _k4_scales_mins(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K pack 8 six-bit scales and 8 six-bit mins in 12 bytes -> two [n, 8] arrays.

    sub-blocks 0..3: scale = bytes[j] & 63,               min = bytes[j+4] & 63
    sub-blocks 4..7: scale = bytes[j+4] & 15 | (bytes[j-4] >> 6) << 4
                     min   = bytes[j+4] >> 4 | (bytes[j]   >> 6) << 4
    """
    p = packed
    scales = np.concatenate([p[:, 0:4] & 63, (p[:, 8:12] & 0x0F) | ((p[:, 0:4] >> 6) << 4)], axis=1)
    mins = np.concatenate([p[:, 4:8] & 63, (p[:, 8:12] >> 4) | ((p[:, 4:8] >> 6) << 4)], axis=1)
    return scales, mins


def _q4_k(b: np.ndarray) -> tuple:
    # block_q4_K, 144 bytes:  | d: f16 | dmin: f16 | scales: 12 bytes | qs: 128 bytes |
    # 8 sub-blocks of 32.  qs is 4 chunks of 32 bytes; chunk c holds sub-block 2c in its low
    # nibbles and sub-block 2c+1 in its high nibbles.  value = d*scale*q - dmin*min.
    n = b.shape[0]
    d, dmin = _f16(b, 0), _f16(b, 2)
    scales, mins = _k4_scales_mins(b[:, 4:16])
    qs = b[:, 16:144].reshape(n, 4, 1, 32)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, 8, 32)
    return q, d[:, :, None] * scales[:, :, None], -(dmin[:, :, None] * mins[:, :, None])


def _q5_k(b: np.ndarray) -> tuple:
    # block_q5_K, 176 bytes:  | d: f16 | dmin: f16 | scales: 12 bytes | qh: 32 bytes | qs: 128 bytes |
    # As Q4_K, plus a 5th bit: element l of sub-block s has it in bit s of qh[l].
    n = b.shape[0]
    d, dmin = _f16(b, 0), _f16(b, 2)
    scales, mins = _k4_scales_mins(b[:, 4:16])
    qh = b[:, 16:48].reshape(n, 1, 32)
    qs = b[:, 48:176].reshape(n, 4, 1, 32)
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, 8, 32)
    q = q | (((qh >> np.arange(8, dtype=np.uint8).reshape(1, 8, 1)) & 1) << 4)
    return q, d[:, :, None] * scales[:, :, None], -(dmin[:, :, None] * mins[:, :, None])


def _q6_k(b: np.ndarray) -> tuple:
    # block_q6_K, 210 bytes:  | ql: 128 bytes | qh: 64 bytes | scales: 16 x int8 | d: f16 |
    # Two halves of 128 values; half h uses ql[64h : 64h+64], qh[32h : 32h+32], scales[8h : 8h+8].
    # Within a half, element k*32 + l (k = 0..3, l = 0..31) has
    #   low 4 bits:  k=0: ql[l] & 15,  k=1: ql[l+32] & 15,  k=2: ql[l] >> 4,  k=3: ql[l+32] >> 4
    #   high 2 bits: (qh[l] >> 2k) & 3
    #   scale:       scales[8h + 2k + l//16];        value = d * scale * (q - 32)
    n = b.shape[0]
    ql = b[:, 0:128].reshape(n, 2, 1, 2, 32)                                  # [n, h, nibble, k%2, l]
    qh = b[:, 128:192].reshape(n, 2, 1, 32)
    scales = b[:, 192:208].view(np.int8).astype(np.float32).reshape(n, 2, 4, 2, 1)
    d = _f16(b, 208)
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2).reshape(n, 2, 4, 32)   # k = nibble*2 + k%2
    high = (qh >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)) & 3   # [n, h, k, l]
    q = (low | (high << 4)).astype(np.int8) - 32
    q = q.reshape(n, 16, 16)                                                   # sub-block 8h + 2k + l//16
    return q, (d.reshape(n, 1, 1, 1, 1) * scales).reshape(n, 16, 1), None


# Each function above returns a block's *parts*: (q, scale, offset) with q the integers [n, sub-blocks,
# values each], scale and offset float32 [n, sub-blocks, 1] (offset None where the type has none), so that
# value = scale * q + offset.  Dequantisation composes them; quant_matvec.py's CPU kernels repack them.
_BLOCK_PARTS = {
    T.Q4_0: _q4_0, T.Q4_1: _q4_1, T.Q5_0: _q5_0, T.Q5_1: _q5_1, T.Q8_0: _q8_0,
    T.Q2_K: _q2_k, T.Q3_K: _q3_k, T.Q4_K: _q4_k, T.Q5_K: _q5_k, T.Q6_K: _q6_k,
}

BLOCK_TYPES = frozenset(_BLOCK_PARTS)                     # the types block_parts takes
SUPPORTED_TYPES = frozenset([T.F32, T.F16, T.BF16, *BLOCK_TYPES])


def type_name(ggml_type: int) -> str:
    try:
        return T(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


def check_supported(ggml_type: int, what: str = "tensor") -> None:
    """Raise ValueError naming ``what`` when its type cannot be dequantised here."""
    if ggml_type not in SUPPORTED_TYPES:
        supported = ", ".join(sorted(T(t).name for t in SUPPORTED_TYPES))
        raise ValueError(f"{what}: unsupported quantisation type {type_name(ggml_type)} "
                         f"(supported: {supported})")


def row_width(raw: np.ndarray, ggml_type: int) -> int:
    """Number of values per row (ne0) of GGUFReader data ``raw``."""
    if ggml_type in (T.F32, T.F16):
        return raw.shape[-1]
    block_size, block_bytes = GGML_QUANT_SIZES[T(ggml_type)]
    return raw.shape[-1] // block_bytes * block_size


def dequantize(raw: np.ndarray, ggml_type: int, out: np.ndarray | None = None) -> np.ndarray:
    """Dequantise GGUFReader tensor data to float32 of shape ``raw.shape[:-1] + (ne0,)``.

    ``raw`` is what gguf.GGUFReader returns as ``tensor.data``: float32/float16 elements for
    F32/F16, bytes (uint8, last axis = bytes per row) for every other type.
    """
    check_supported(ggml_type)
    ggml_type = T(ggml_type)
    lead = raw.shape[:-1]
    if ggml_type == T.F32:
        result = np.asarray(raw, dtype=np.float32)
    elif ggml_type == T.F16:
        result = np.asarray(raw).astype(np.float32)
    elif ggml_type == T.BF16:
        # bfloat16 is the top half of a float32: shift the 16 bits up.
        bits = np.ascontiguousarray(raw).view("<u2").astype(np.uint32) << 16
        result = bits.view(np.float32)
    else:
        block_size, block_bytes = GGML_QUANT_SIZES[ggml_type]
        blocks = np.ascontiguousarray(raw).reshape(-1, block_bytes)        # [n_blocks, block_bytes]
        q, scale, offset = _BLOCK_PARTS[ggml_type](blocks)
        result = scale * q if offset is None else scale * q + offset
        result = result.astype(np.float32, copy=False).reshape(*lead, raw.shape[-1] // block_bytes * block_size)
    if out is not None:
        out[...] = result
        return out
    return result


def block_parts(raw: np.ndarray, ggml_type: int) -> tuple:
    """A quantised 2-D tensor's integers and scales: (q [rows, sub-blocks, values each] integers, scale float32
    [rows, sub-blocks], offset float32 [rows, sub-blocks] or None), with value = scale * q (+ offset) per
    sub-block (32 values for the legacy types and Q4_K / Q5_K, 16 for Q2_K, Q3_K and Q6_K), in row order."""
    if ggml_type not in BLOCK_TYPES:
        raise ValueError(f"block_parts: {type_name(ggml_type)} is not a block-quantised type")
    rows = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(-1, GGML_QUANT_SIZES[T(ggml_type)][1])
    q, scale, offset = _BLOCK_PARTS[T(ggml_type)](blocks)
    q = q.reshape(rows, -1, q.shape[-1])
    n_sub = q.shape[1]
    return (q, scale.astype(np.float32, copy=False).reshape(rows, n_sub),
            None if offset is None else offset.astype(np.float32, copy=False).reshape(rows, n_sub))


def dequantize_rows(raw: np.ndarray, ggml_type: int, row0: int, n_rows: int) -> np.ndarray:
    """Dequantise only rows ``row0 .. row0 + n_rows`` of a 2-D tensor -> float32 [n_rows, ne0].

    Rows are whole blocks, so slicing the raw bytes first touches only the needed part of the
    (memory-mapped) file: this is what an embedding lookup (get_rows) uses.
    """
    if raw.ndim != 2:
        raw = raw.reshape(-1, raw.shape[-1])
    return dequantize(raw[row0:row0 + n_rows], ggml_type)


def take_rows(raw: np.ndarray, ggml_type: int, ids: np.ndarray) -> np.ndarray:
    """Dequantise the rows listed in ``ids`` (any order, repeats allowed) -> float32 [len(ids), ne0]."""
    if raw.ndim != 2:
        raw = raw.reshape(-1, raw.shape[-1])
    return dequantize(raw[np.asarray(ids, dtype=np.int64)], ggml_type)
