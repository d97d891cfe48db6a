"""Decode's matrix-vector products read straight from the quantised weights, compiled by Numba.

Why this module exists.  NumPy's only fast product is BLAS on float32, so the NumPy backend
multiplies dequantised float32 copies of the weights: 4 bytes a weight.  Decoding one token is a
chain of matrix-*vector* products, bound by how fast the weights stream from memory, and
SmolLM2-135M's Q4_0 file holds 76 MB of weights where the float32 copies are 538 MB: seven times
the bytes, so the NumPy decode ran at ~0.45x of llama.cpp on 2 CPU cores.  The kernels below
read a repacked copy of the GGUF blocks (0.75 bytes a weight for the 4-bit types, 1.125 for Q8_0) and do
the dequantisation in registers, so a decode step streams 1/5 of the bytes.  NumPy has no such
product (its float16 / int8 matmuls are scalar loops, ~100x slower than BLAS), hence Numba: the
kernels stay plain Python loops a reader can follow, and LLVM vectorises them.

Prompt batches keep BLAS on the float32 copies (a GEMM is compute-bound, BLAS is the right tool),
and every result here is checked against that float32 product (tests/test_quant_matvec.py).
``NumpyOps`` uses these kernels for single-row products when Numba is installed;
GPT4ALL_NUMBA=0 turns them off (the pure NumPy reference path).

Layout (``QuantMatrix``, built once per matrix from the GGUF bytes)
-------------------------------------------------------------------
The rows are cut into groups of ``ROWS = 64``; for group g, row r of the group (matrix row
64 g + r) and block b of a row (input values 32 b .. 32 b + 31):

    qs[g, k, r]   uint8 / int8   the row's quant byte k: for Q4_0 / Q4_1 byte 16 b + j holds value
                                 32 b + j in its low nibble and 32 b + 16 + j in its high nibble
                                 (the GGUF order), for Q8_0 byte 32 b + j is value 32 b + j
    d[g, b, r]    float32        block b's scale
    m[g, b, r]    float32        block b's offset (Q4_1's min; Q4_0: -8 d, folding the "- 8" in)

so value = d * q + m.  Each group's bytes are transposed (rows innermost): the innermost loop
then multiplies 64 consecutive bytes -- one byte of 64 rows -- by one input value, which LLVM
turns into SIMD over rows with no horizontal sums; a block's sum is scaled by d and m once per
block.  64 rows: 4 AVX-512 (or 8 AVX2) vectors, the vectoriser's unrolled width, so no
scalar remainder loop runs (32-row groups measured 3x slower for that reason).
"""
from __future__ import annotations

import os
import threading
from typing import Optional, Sequence

import numpy as np
from gguf import GGMLQuantizationType as T

ROWS = 64                         # rows per group (see the module docstring)
SUPPORTED = {T.Q4_0: 18, T.Q4_1: 20, T.Q8_0: 34}     # type -> bytes per 32-value block

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


class QuantMatrix:
    """One matrix (or several stacked: q/k/v, gate/up) in the kernels' layout; ``matvec`` multiplies it."""

    def __init__(self, raws: Sequence[np.ndarray], ggml_type: int):
        """raws: each part's GGUF bytes as uint8 [rows, blocks * block_bytes], all of ``ggml_type``;
        their rows are stacked in order."""
        if ggml_type not in SUPPORTED:
            raise ValueError(f"no quantised mat-vec for type {T(ggml_type).name}")
        block_bytes = SUPPORTED[ggml_type]
        raw = np.concatenate([np.asarray(r, np.uint8).reshape(r.shape[0], -1) for r in raws])
        self.rows = raw.shape[0]
        n_blocks = raw.shape[1] // block_bytes
        self.width = 32 * n_blocks
        self.ggml_type = ggml_type
        groups = -(-self.rows // ROWS)
        padded = np.zeros((groups * ROWS, n_blocks, block_bytes), np.uint8)   # zero rows: value 0
        padded[:self.rows] = raw.reshape(self.rows, n_blocks, block_bytes)

        def f16(offset: int) -> np.ndarray:               # a field of every block as f32 [rows, blocks]
            return np.ascontiguousarray(padded[:, :, offset:offset + 2]).view(np.float16)[..., 0].astype(np.float32)

        def by_group(a: np.ndarray) -> np.ndarray:        # [rows, k] -> [groups, k, ROWS], rows innermost
            return np.ascontiguousarray(a.reshape(groups, ROWS, -1).transpose(0, 2, 1))

        d = f16(0)
        if ggml_type == T.Q8_0:
            q = padded[:, :, 2:34].reshape(groups * ROWS, -1).view(np.int8)
            m = np.zeros((0, 0, 0), np.float32)             # Q8_0 has no offset
        else:
            first = 4 if ggml_type == T.Q4_1 else 2
            q = padded[:, :, first:first + 16].reshape(groups * ROWS, -1)
            m = f16(2) if ggml_type == T.Q4_1 else np.float32(-8.0) * d
            m = by_group(m)
        self.qs = by_group(q)                              # [groups, bytes a row, ROWS]
        self.d = by_group(d)                               # [groups, blocks, ROWS]
        self.m = m                                         # [groups, blocks, ROWS] (Q8_0: empty)
        self.out = np.empty(groups * ROWS, np.float32)     # the padded result

    @property
    def nbytes(self) -> int:
        return self.qs.nbytes + self.d.nbytes + self.m.nbytes

    def matvec(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """out[r] = sum_i W[r, i] x[i] for every row r: x float32 [width], out float32 [rows]."""
        x = np.ascontiguousarray(x, np.float32).reshape(self.width)
        y = self.out
        with _launch:
            if self.ggml_type == T.Q8_0:
                _matvec_q8(self.qs, self.d, x, y)
            else:
                _matvec_q4(self.qs, self.d, self.m, x, y)
        if out is None:
            return y[:self.rows].copy()
        out[...] = y[:self.rows].reshape(out.shape)
        return out


if numba is not None:
    # fastmath lets LLVM reorder the sums (SIMD); each output is still one row's dot product, summed
    # in float32 in another order than BLAS: the results differ from the float32 product in the last bits.
    @njit(parallel=True, fastmath=True, cache=True)
    def _matvec_q4(qs, d, m, x, y):           # pragma: no cover - compiled; tested through QuantMatrix
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
    def _matvec_q8(qs, d, x, y):              # pragma: no cover - compiled; tested through QuantMatrix
        n_groups, n_values, rows = qs.shape
        for g in prange(n_groups):
            acc = np.zeros(rows, np.float32)
            s = np.empty(rows, np.float32)
            for b in range(n_values // 32):
                s[:] = 0.0
                for j in range(32 * b, 32 * b + 32):
                    xv = x[j]
                    q = qs[g, j]
                    for r in range(rows):
                        s[r] += np.float32(q[r]) * xv
                for r in range(rows):
                    acc[r] += d[g, b, r] * s[r]
            y[g * rows:(g + 1) * rows] = acc
