"""Decode's matrix-vector products read straight from the quantised weights, compiled by Numba.

Why this module exists.  NumPy's only fast product is BLAS on float32, so the NumPy backend
multiplies dequantised float32 copies of the weights: 4 bytes a weight.  Decoding one token is a
chain of matrix-*vector* products, bound by how fast the weights stream from memory, and
SmolLM2-135M's Q4_0 file holds 76 MB of weights where the float32 copies are 538 MB: seven times
the bytes, so the NumPy decode ran at ~0.42x of llama.cpp on 2 CPU cores (tools/bench_cpu.py
--numpy-only).  The kernels below read a repacked copy of the GGUF blocks (0.75 bytes a weight for
the 4-bit types, 1.125-1.5 for the others) and do the dequantisation in registers, so a decode step
streams 1/5 of the bytes.  NumPy has no such product (its float16 and int8 matmuls are loops outside
BLAS: for a 1 x 576 by 576 x 1536 product, 2.6 ms and 0.31 ms against float32 BLAS's 22 us on this
project's 2-core VM), hence Numba: the kernels stay plain Python loops a reader can follow, and LLVM
vectorises them.

Prompt batches keep BLAS on the float32 copies (a GEMM is compute-bound, BLAS is the right tool),
and every kernel is checked against the float64 product of gguf-py's dequantisation, the engine with
them against the engine without (tests/test_quant_matvec.py).
``NumpyOps`` uses these kernels for single-row products when Numba is installed;
GPT4ALL_NUMBA=0 turns them off (the pure NumPy reference path).

Layout (``QuantMatrix``, built once per matrix from the GGUF bytes)
-------------------------------------------------------------------
quants.block_parts gives every block type as integers q with a float32 scale (and offset) per run of
32 values (16 for Q2_K, Q3_K and Q6_K): value = scale * q + offset.  The rows are cut into groups of
``ROWS = 64``; for group g, row r of the group (matrix row 64 g + r) and block b of a row:

    qs[g, k, r]   uint8 / int8   the row's byte k.  Nibble layout (Q4_0, Q4_1, Q4_K): q + bias in 0..15,
                                 byte 16 b + j holding value 32 b + j in its low nibble and 32 b + 16 + j
                                 in its high one (Q4_0's own order).  Int8 layout (every other type):
                                 byte k is value k
    d[g, b, r]    float32        block b's scale
    m[g, b, r]    float32        block b's offset (Q4_1's min, Q4_K's -dmin * min; Q4_0: -8 d, the bias
                                 folded in); empty where no part of the matrix has one

so value = d * q + m.  Each group's bytes are transposed (rows innermost): the innermost loop
then multiplies 64 consecutive bytes -- one byte of 64 rows -- by one input value, which LLVM
turns into SIMD over rows with no horizontal sums; a block's sum is scaled by d and m once per
block.  64 rows: 4 AVX-512 (or 8 AVX2) vectors, the vectoriser's unrolled width, so no
scalar remainder loop runs (32-row groups measured 3x slower for that reason).  A stack of parts of
different types (gemma's q/k/v: Q5_0 and Q8_0) takes the int8 layout, scales repeated to the finest block.
"""
from __future__ import annotations

import os
import threading
from typing import Optional, Sequence

import numpy as np
from gguf import GGMLQuantizationType as T

from .. import quants

ROWS = 64                         # rows per group (see the module docstring)
# 4-bit types (the nibble layout) -> what to add to their q to get 0..15; every other block type
# takes the int8 layout (its q fit in a signed byte: Q8_0, Q5_*, Q6_K, Q2_K, Q3_K)
NIBBLE_TYPES = {T.Q4_0: 8, T.Q4_1: 0, T.Q4_K: 0}
SUPPORTED = quants.BLOCK_TYPES    # every block type (float weights stay on BLAS)

try:                                                  # optional: without Numba, NumPy's BLAS path runs
    import numba
    from numba import njit, prange
except ImportError:                                   # pragma: no cover - exercised where numba is absent
    numba = None

# Numba's default thread pool ("workqueue") aborts the process when two Python threads launch parallel
# kernels at once (two models decoding in two threads): calls take turns instead.
_launch = threading.Lock()


def available() -> bool:
    """True when the kernels can run: Numba is installed and GPT4ALL_NUMBA is not '0'."""
    return numba is not None and os.environ.get("GPT4ALL_NUMBA", "1") != "0"


def set_threads(n: int) -> None:
    """Threads the kernels split their row groups over (the caller's n_threads, as for BLAS)."""
    if numba is not None:
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def _by_group(a: np.ndarray, groups: int) -> np.ndarray:
    """[rows, k] (rows padded to groups * ROWS) -> [groups, k, ROWS]: each group's rows innermost."""
    return np.ascontiguousarray(a.reshape(groups, ROWS, -1).transpose(0, 2, 1))


class QuantMatrix:
    """One matrix (or several stacked: q/k/v, gate/up) in the kernels' layout; ``matvec`` multiplies it."""

    def __init__(self, raws: Sequence[np.ndarray], ggml_types: Sequence[int]):
        """raws: each part's GGUF bytes as uint8 [rows, blocks * block_bytes], of the matching type in
        ``ggml_types`` (any block types, mixed in a stack; block_parts names a type that is not one);
        their rows are stacked in order."""
        parts = [quants.block_parts(np.asarray(r, np.uint8).reshape(r.shape[0], -1), t)
                 for r, t in zip(raws, ggml_types)]
        self.nibbles = all(t in NIBBLE_TYPES for t in ggml_types)
        has_offset = self.nibbles or any(off is not None for _, _, off in parts)    # nibbles: the bias is one
        block = min(q.shape[2] for q, _, _ in parts)           # values a scale covers: 32, or 16 for Q6_K, ...
        self.rows = sum(q.shape[0] for q, _, _ in parts)
        self.width = parts[0][0].shape[1] * parts[0][0].shape[2]
        groups = -(-self.rows // ROWS)
        n_blocks = self.width // block
        q_all = np.zeros((groups * ROWS, self.width), np.uint8 if self.nibbles else np.int8)
        scale = np.zeros((groups * ROWS, n_blocks), np.float32)        # padding rows: value 0
        offset = np.zeros((groups * ROWS, n_blocks), np.float32) if has_offset else None
        row = 0
        for (q, sc, off), t in zip(parts, ggml_types):
            n, repeat = q.shape[0], q.shape[2] // block                # a 32-value scale covers 2 16-blocks
            if self.nibbles:                                           # value = scale q' + (offset - bias scale)
                bias = NIBBLE_TYPES[t]
                q_all[row:row + n] = (q.reshape(n, -1) + bias).astype(np.uint8)
                off = (np.zeros_like(sc) if off is None else off) - np.float32(bias) * sc
            else:
                q_all[row:row + n] = q.reshape(n, -1).astype(np.int8)
            scale[row:row + n] = np.repeat(sc, repeat, axis=1)
            if off is not None:
                offset[row:row + n] = np.repeat(off, repeat, axis=1)
            row += n
        if self.nibbles:        # byte 16 b + j of a row: value 32 b + j in the low nibble, 32 b + 16 + j high
            v = q_all.reshape(-1, n_blocks, 2, 16)
            q_all = (v[:, :, 0] | (v[:, :, 1] << 4)).reshape(groups * ROWS, -1)
        self.qs = _by_group(q_all, groups)                             # [groups, bytes a row, ROWS]
        self.d = _by_group(scale, groups)                              # [groups, blocks, ROWS]
        self.m = _by_group(offset, groups) if has_offset else np.zeros((0, 0, 0), np.float32)
        self.out = np.empty(groups * ROWS, np.float32)                 # the padded result

    @property
    def nbytes(self) -> int:
        return self.qs.nbytes + self.d.nbytes + self.m.nbytes

    def matvec(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """out[r] = sum_i W[r, i] x[i] for every row r: x float32 [width], out float32 [rows]."""
        x = np.ascontiguousarray(x, np.float32).reshape(self.width)
        y = self.out
        with _launch:
            (_matvec_nibbles if self.nibbles else _matvec_int8)(self.qs, self.d, self.m, x, y)
        if out is None:
            return y[:self.rows].copy()
        out[...] = y[:self.rows].reshape(out.shape)
        return out


if numba is not None:
    # fastmath lets LLVM reorder the sums (SIMD); each output is still one row's dot product, summed
    # in float32 in another order than BLAS: the results differ from the float32 product in the last bits.
    @njit(parallel=True, fastmath=True, cache=True)
    def _matvec_nibbles(qs, d, m, x, y):      # pragma: no cover - compiled; tested through QuantMatrix
        n_groups, n_bytes, rows = qs.shape
        n_blocks = n_bytes // 16
        # x per block: its low halves (values matching low nibbles), high halves, and sums (for m)
        x_lo = np.empty(n_bytes, np.float32)
        x_hi = np.empty(n_bytes, np.float32)
        x_sum = np.empty(n_blocks, np.float32)
        for b in range(n_blocks):
            total = np.float32(0.0)
            for j in range(16):
                x_lo[16 * b + j] = x[32 * b + j]
                x_hi[16 * b + j] = x[32 * b + 16 + j]
                total += x[32 * b + j] + x[32 * b + 16 + j]
            x_sum[b] = total
        for g in prange(n_groups):
            acc = np.zeros(rows, np.float32)      # the group's 64 outputs
            s = np.empty(rows, np.float32)        # one block's sum of nibble * x, per row
            for b in range(n_blocks):
                s[:] = 0.0
                for j in range(16):
                    lo, hi = x_lo[16 * b + j], x_hi[16 * b + j]
                    q = qs[g, 16 * b + j]         # byte 16 b + j of the group's 64 rows
                    for r in range(rows):
                        s[r] += np.float32(q[r] & 15) * lo + np.float32(q[r] >> 4) * hi
                for r in range(rows):             # value = d q + m: sum = d * sum(q x) + m * sum(x)
                    acc[r] += d[g, b, r] * s[r] + m[g, b, r] * x_sum[b]
            y[g * rows:(g + 1) * rows] = acc

    @njit(parallel=True, fastmath=True, cache=True)
    def _matvec_int8(qs, d, m, x, y):         # pragma: no cover - compiled; tested through QuantMatrix
        n_groups, n_values, rows = qs.shape
        n_blocks = d.shape[1]
        block = n_values // n_blocks              # values a scale covers: 32 or 16
        with_offset = m.shape[0] > 0
        x_sum = np.zeros(n_blocks, np.float32)    # for the offsets: sum of x over each block
        for b in range(n_blocks):
            for j in range(block * b, block * b + block):
                x_sum[b] += x[j]
        for g in prange(n_groups):
            acc = np.zeros(rows, np.float32)
            s = np.empty(rows, np.float32)
            for b in range(n_blocks):
                s[:] = 0.0
                for j in range(block * b, block * b + block):
                    xv = x[j]
                    q = qs[g, j]
                    for r in range(rows):
                        s[r] += np.float32(q[r]) * xv
                if with_offset:
                    for r in range(rows):
                        acc[r] += d[g, b, r] * s[r] + m[g, b, r] * x_sum[b]
                else:
                    for r in range(rows):
                        acc[r] += d[g, b, r] * s[r]
            y[g * rows:(g + 1) * rows] = acc
