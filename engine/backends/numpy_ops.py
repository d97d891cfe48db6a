"""The NumPy backend: the reference every GPU kernel is checked against, and the CPU fallback.

Each op is written as plainly as NumPy allows, vectorised over rows and heads.  A Program is a
list of Python closures; ``record`` collects them and ``run`` calls them in order.  Because a
program is replayed for many steps, no closure captures a position or a token count: each reads
``n_tokens`` / ``pos`` from ``self.step`` (the step buffer) when it runs, and ``sample`` reads its
parameters from ``self.sampling`` (the sampling buffer) -- exactly as the GPU backends do.
A row-wise op processes min(n_tokens, rows of its output) rows, so a one-row buffer (the last
row's hidden state, the logits) is one row even inside a prompt program (VulkanOps does the same).

Weights and the dequantisation cache
------------------------------------
``weight`` keeps the memory-mapped GGUF bytes (no copy at load).  The first time a matrix is
used by a ``matmul`` of several rows (a prompt batch) it is dequantised once to float32 and kept:
NumPy has no quantised matmul, and re-dequantising a Q4 matrix every batch costs ~10x the BLAS
product.  The price is memory: 4 bytes per weight (~0.5 GB for a 135M model), paid only for
matrices that are actually multiplied.  A *one-row* product (decoding) is memory-bound, and
streaming those float32 copies is 5x the bytes of the file's 4-bit blocks: for every block type
(Q4_0 .. Q8_0, the k-quants) it runs on quant_matvec.py's Numba kernels instead, on a repacked copy of the
blocks (``NumpyWeight.quant``; ``NumpyOps.quant_matvec``, off with GPT4ALL_NUMBA=0 or without
Numba, keeps every product on BLAS: the pure NumPy reference path).  Embedding tables read by
``get_rows`` are never expanded whole: only the looked-up rows are dequantised from the mapped
bytes (gemma3-270m's table is 168M values), unless the table is also the LM head (tied
embeddings), in which case the matmul cache already holds it.  The cache has a budget (default
half the machine's memory; ``NumpyOps(cache_budget=...)``): matrices first used after it is spent
are dequantised 1024 rows at a time on every use instead -- slow, but an 8B model still runs.
Small 1-D weights (norms, biases, rope factors) are dequantised at upload.  The float32 copies
are packed into large blocks (_F32Arena: huge pages, faster to stream), and matrices that a program
multiplies with the same input one after another (q/k/v, gate/up) are stacked into one matrix and
multiplied in one call (_FusedMatmul); each part's cached copy is then a view into the stack.

Threads
-------
Decoding one token is a chain of matrix-*vector* products: memory-bound work.  On an idle
2-core machine two BLAS threads stream the weights faster than one (SmolLM2 Q4_0 decode,
measured: 15.5 ms per token on 2 threads, 22.2 ms on 1), so by default every program uses the
thread count the caller set (engine.LLM's n_threads, through threadpoolctl).  On a machine whose
cores are busy with other work, OpenBLAS's per-call thread hand-off can cost more than the
product itself (measured under load: one 1536x576 f32 product took 150-250 us on 1 thread,
11 ms on 2); set GPT4ALL_NUMPY_DECODE_THREADS=1 (or ``ops.decode_threads``) to run
single-row programs on that many threads while prompt batches keep the caller's count.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from gguf import GGMLQuantizationType as T

from .. import quants
from . import quant_matvec
from ..ops import (SAMPLE_MIN_P, SAMPLE_REPEAT_LAST_N,
                   SAMPLE_REPEAT_PENALTY, SAMPLE_SIZE, SAMPLE_TEMP, SAMPLE_TOP_K, SAMPLE_TOP_P,
                   SAMPLE_UNIFORMS, STEP_N_HISTORY, STEP_N_KV, STEP_N_TOKENS, STEP_POS, STEP_SIZE, Ops, Program,
                   Tensor, Weight)
from ..sampling import sample_token

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _blas_controllers() -> list:
    """threadpoolctl's handles on the BLAS libraries NumPy uses (empty if it cannot find them)."""
    try:
        from threadpoolctl import ThreadpoolController
        return list(ThreadpoolController().select(user_api="blas").lib_controllers)
    except Exception:       # threadpoolctl missing or an unknown BLAS: leave threads alone
        return []


class _CacheBudget:
    """Bytes of float32 weight copies the backend may still keep (see the module docstring)."""

    def __init__(self, n_bytes: int):
        self.left = n_bytes

    def take(self, n_bytes: int) -> bool:
        if n_bytes > self.left:
            return False
        self.left -= n_bytes
        return True

    def give(self, n_bytes: int) -> None:
        self.left += n_bytes


class _F32Arena:
    """Where the float32 weight copies live: packed back to back into large blocks.

    Why: a decode step streams every cached matrix from memory once, and the speed of that stream
    depends on the pages under it.  NumPy asks the kernel for 2 MiB (transparent huge) pages only
    for allocations of 4 MiB or more, so most per-layer matrices of a small model (SmolLM2's
    576x576 = 1.3 MB) used to sit on 4 KiB pages scattered over the heap; in 128 MiB blocks they
    sit on huge pages, one after another.  Measured on SmolLM2-135M Q4_0, 2 threads, the same
    decode program's matmuls in one process: 13.0-13.4 ms per token packed, 13.3-14.0 scattered.
    Weights live as long as the model, so a bump allocator that never frees is all it takes.  A
    block's unused tail costs address space only: pages are committed when first written."""

    BLOCK_FLOATS = 32 << 20                     # 128 MiB blocks

    def __init__(self) -> None:
        self._block = np.empty(0, np.float32)   # the block being filled
        self._used = 0                          # floats of it handed out

    def empty(self, rows: int, width: int) -> np.ndarray:
        """An uninitialised float32 [rows, width] inside a block (a big one gets its own allocation,
        which NumPy already puts on huge pages)."""
        n = rows * width
        if n > self.BLOCK_FLOATS // 4:
            return np.empty((rows, width), np.float32)
        if self._used + n > self._block.size:
            self._block = np.empty(self.BLOCK_FLOATS, np.float32)
            self._used = 0
        out = self._block[self._used:self._used + n].reshape(rows, width)
        self._used += -(-n // 16) * 16          # the next matrix starts 64-byte aligned
        return out


def _default_cache_budget() -> int:
    """Half the machine's memory (the mapped file and activations need the rest)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


class NumpyWeight:
    """A GGUF tensor as the NumPy backend holds it: the mapped bytes, plus a lazy float32 copy."""

    CHUNK_ROWS = 1024      # rows dequantised at a time when a matrix is not cached

    def __init__(self, raw: np.ndarray, ggml_type: int, rows: int, width: int, name: str,
                 budget: Optional[_CacheBudget] = None, arena: Optional[_F32Arena] = None):
        self.raw = raw.reshape(rows, -1) if raw.ndim != 2 or raw.shape[0] != rows else raw
        self.ggml_type = ggml_type
        self.rows, self.width, self.name = rows, width, name
        self.budget, self.arena = budget, arena
        self._dense: Optional[np.ndarray] = None          # f32 [rows, width] once dequantised
        self._uncached = False                            # True: over budget, dequantise per use
        self._quant: Optional[quant_matvec.QuantMatrix] = None   # the decode kernels' copy, once built

    def reserve(self) -> bool:
        """Claim cache budget for the float32 copy; False (and row blocks per use from then on) when spent."""
        if self.budget is not None and not self.budget.take(4 * self.rows * self.width):
            self._uncached = True
            return False
        return True

    def fill(self, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Dequantise into ``out`` (f32 [rows, width]; default a slot of the arena) and keep it as
        the cache.  Budget must be reserved first."""
        if out is None and self.ggml_type == T.F32:
            self._dense = np.ascontiguousarray(self.raw, dtype=np.float32)   # the mapped bytes, no copy
        else:
            if out is None:
                out = self.arena.empty(self.rows, self.width) if self.arena is not None else None
            self._dense = quants.dequantize(self.raw, self.ggml_type, out=out)
        return self._dense

    def dense(self) -> Optional[np.ndarray]:
        """The whole matrix as float32 [rows, width], dequantised once and cached; None when the
        cache budget is spent (then ``rows_f32`` dequantises row blocks on each use)."""
        if self._dense is None and not self._uncached and self.reserve():
            self.fill()
        return self._dense

    def rows_f32(self, row0: int, n_rows: int) -> np.ndarray:
        """Rows row0 .. row0 + n_rows as float32, from the cache or straight from the mapped bytes."""
        d = self.dense()
        if d is not None:
            return d[row0:row0 + n_rows]
        return quants.dequantize_rows(self.raw, self.ggml_type, row0, n_rows)

    def quant(self) -> Optional[quant_matvec.QuantMatrix]:
        """The matrix in quant_matvec's layout (built on first use), or None for a type it lacks."""
        if self._quant is None and self.ggml_type in quant_matvec.SUPPORTED:
            self._quant = quant_matvec.QuantMatrix([self.raw], [self.ggml_type])
        return self._quant

    def take(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` as float32 [len(ids), width], from the cache if present, else from the bytes."""
        if self._dense is not None:
            return self._dense[ids]
        return quants.take_rows(self.raw, self.ggml_type, ids)


class _Matmul:
    """One recorded ``matmul`` step: a callable like every other step, which also keeps its
    operands so that ``NumpyOps.record`` can fuse neighbours that read the same input."""

    def __init__(self, ops: "NumpyOps", out: Tensor, w: Weight, x: Tensor, bias: Optional[Weight],
                 w_row0: int, out_col0: int, n_out: int, norm: Optional[Weight] = None, eps: float = 0.0,
                 accumulate: bool = False):
        self.ops, self.out, self.x = ops, out, x
        # the pre-norm (Ops.matmul's norm): its weight [in] and eps, or None
        self.norm = None if norm is None else (norm.handle.dense().reshape(x.width), np.float32(eps))
        self.norm_key = None if norm is None else (id(norm), float(eps))
        self.accumulate = accumulate
        self.nw: NumpyWeight = w.handle
        self.w_row0, self.out_col0 = w_row0, out_col0
        self.n_out = n_out or (w.rows - w_row0)
        self.bias = None if bias is None else bias.handle.dense()[0, w_row0:w_row0 + self.n_out]  # [n_out]
        self.full = out_col0 == 0 and self.n_out == out.width
        self.parts = [self]

    def fusable(self) -> bool:
        """Whole weight, whole output buffer, not an input: can join a _FusedMatmul."""
        return (self.w_row0 == 0 and self.n_out == self.nw.rows and self.full and self.out is not self.x
                and not self.accumulate)

    def accepts(self, other: "_Matmul") -> bool:
        """May ``other`` be fused with this step?  It must read the same input, process the same
        number of rows (same output capacity), use a weight not already in the group, and write a
        buffer the group neither reads nor writes."""
        return (self.fusable() and other.x is self.x and other.norm_key == self.norm_key
                and other.out.rows == self.out.rows
                and all(other.nw is not p.nw and other.out is not p.out for p in self.parts))

    def input(self, n: int) -> np.ndarray:
        """The first n rows of x as the product sees them: pre-normed when the step has a norm."""
        x = self.x.handle[:n]                                                    # [n, in]
        if self.norm is None:
            return x
        h = np.empty_like(x)
        _rms_norm_rows(h, x, self.norm[0], x.shape[1], self.norm[1])
        return h

    def quant(self) -> Optional[quant_matvec.QuantMatrix]:
        """The weight for quant_matvec's kernels when this step may use them (whole weight, the backend's
        switch on, a type they read), else None."""
        if not (self.ops.quant_matvec and self.w_row0 == 0 and self.n_out == self.nw.rows):
            return None
        return self.nw.quant()

    def __call__(self) -> None:
        n = self.ops._rows(self.out)
        x = self.input(n)                                                        # [n, in]
        dst = self.out.handle[:n, self.out_col0:self.out_col0 + self.n_out]      # [n, n_out]
        if self.accumulate:         # out += product: compute into a temporary, then add
            total, dst = dst, np.empty_like(dst)
        qm = self.quant() if n == 1 else None
        dense = None if qm is not None else self.nw.dense()
        self.read_bytes = qm.nbytes if qm is not None else 4 * self.n_out * self.nw.width
        if qm is not None:          # one row (decoding): straight from the quantised bytes
            qm.matvec(x[0], dst[0])
        elif dense is not None:
            wt = dense[self.w_row0:self.w_row0 + self.n_out]                     # [n_out, in]
            if self.full or self.accumulate:
                np.matmul(x, wt.T, out=dst)
            else:
                dst[...] = x @ wt.T
        else:       # over the cache budget: dequantise a block of rows at a time
            for j in range(0, self.n_out, NumpyWeight.CHUNK_ROWS):
                m = min(NumpyWeight.CHUNK_ROWS, self.n_out - j)
                dst[:, j:j + m] = x @ self.nw.rows_f32(self.w_row0 + j, m).T
        if self.bias is not None:
            dst += self.bias
        if self.accumulate:
            total += dst


class _FusedMatmul:
    """Several whole-weight matmuls on one input as ONE product with the stacked weight
    W_cat = [W_0; W_1; ...]  ([sum of out, in]), whose output columns are then copied to each
    step's own buffer.  Equivalent to running the parts in order (each output element is the same
    dot product of a weight row with x; only BLAS's blocking, hence the last bit of rounding, may
    differ).

    Memory does not double: W_cat is built once (on first run, so the cache budget and lazy
    dequantisation work as for one matrix), each part dequantised straight into its rows, and each
    part's cached float32 matrix is a *view* into it, so programs that still multiply the parts one by one share the same bytes.  The
    stacked matrix is kept per group of weights on the backend, shared by every program (prompt,
    decode) that fuses the same group.  If the budget cannot hold it, the parts run one by one."""

    def __init__(self, ops: "NumpyOps", parts: list):
        self.ops, self.parts = ops, parts
        self.x, self.out = parts[0].x, parts[0].out          # .out: the rows every part processes
        widths = [p.n_out for p in parts]
        self.cols = np.cumsum([0] + widths).tolist()         # part i -> columns cols[i]:cols[i+1]
        self.scratch = np.zeros((self.out.rows, self.cols[-1]), np.float32)   # [cap, sum of out]
        biases = [p.bias if p.bias is not None else np.zeros(p.n_out, np.float32) for p in parts]
        self.bias = None if all(p.bias is None for p in parts) else np.concatenate(biases)  # [sum of out]
        self.w_cat: Optional[np.ndarray] = None              # [sum of out, in] after the first run
        self.unfused = False
        self.q_cat: Optional[quant_matvec.QuantMatrix] = None   # the stack for quant_matvec, once built
        self.q_tried = False                                    # q_cat built, or found impossible (float parts)

    def fusable(self) -> bool:
        return True

    def accepts(self, other: _Matmul) -> bool:
        return self.parts[0].accepts(other) and all(other.nw is not p.nw and other.out is not p.out
                                                    for p in self.parts)

    def _stack(self) -> Optional[np.ndarray]:
        key = tuple(id(p.nw) for p in self.parts)
        if key in self.ops._stacked:
            return self.ops._stacked[key][1]
        todo = [p.nw for p in self.parts if p.nw._dense is None]     # parts not dequantised yet
        reserved = []
        for nw in todo:
            if nw._uncached or not nw.reserve():
                for r in reserved:                                   # over budget: run the parts alone
                    r.budget.give(4 * r.rows * r.width)
                return None
            reserved.append(nw)
        w_cat = self.ops._arena.empty(self.cols[-1], self.x.width)  # [sum of out, in]
        for p, a, b in zip(self.parts, self.cols[:-1], self.cols[1:]):
            if p.nw._dense is not None:                              # multiplied alone before: move it
                w_cat[a:b] = p.nw._dense                             # (its old arena slot stays unused)
                p.nw._dense = w_cat[a:b]
            else:
                p.nw.fill(out=w_cat[a:b])                            # dequantised straight into place
        self.ops._stacked[key] = ([p.nw for p in self.parts], w_cat)   # the weights too: ids stay theirs
        return w_cat

    def _quant_stack(self) -> Optional[quant_matvec.QuantMatrix]:
        """The stacked weight in quant_matvec's layout (kept on the backend, as the float32 stack is), or
        None when a part is of a type its kernels do not read (float types)."""
        if not all(p.nw.ggml_type in quant_matvec.SUPPORTED for p in self.parts):
            return None
        key = ("quant",) + tuple(id(p.nw) for p in self.parts)
        if key not in self.ops._stacked:
            self.ops._stacked[key] = ([p.nw for p in self.parts], quant_matvec.QuantMatrix(
                [p.nw.raw for p in self.parts], [p.nw.ggml_type for p in self.parts]))
        return self.ops._stacked[key][1]

    def __call__(self) -> None:
        n = self.ops._rows(self.out)
        quant = n == 1 and self.ops.quant_matvec
        if quant and not self.q_tried:
            self.q_cat, self.q_tried = self._quant_stack(), True
        quant = quant and self.q_cat is not None
        if not quant and self.w_cat is None and not self.unfused:
            self.w_cat = self._stack()
            self.unfused = self.w_cat is None
        if not quant and self.unfused:
            for p in self.parts:
                p()
            self.read_bytes = sum(p.read_bytes for p in self.parts)
            return
        res = self.scratch[:n]                                                   # [n, sum of out]
        self.read_bytes = self.q_cat.nbytes if quant else 4 * self.cols[-1] * self.x.width
        if quant:                   # one row (decoding): straight from the quantised bytes
            self.q_cat.matvec(self.parts[0].input(1)[0], res[0])
        else:
            np.matmul(self.parts[0].input(n), self.w_cat.T, out=res)    # the parts share x and its norm
        if self.bias is not None:
            res += self.bias
        for p, a, b in zip(self.parts, self.cols[:-1], self.cols[1:]):
            p.out.handle[:n] = res[:, a:b]


class NumpyProgram(Program):
    def __init__(self) -> None:
        self.steps: list[Callable[[], None]] = []
        self.step_us: list[float] = []      # each step's time in the last run, with NumpyOps.profile on

    def __len__(self) -> int:
        return len(self.steps)


def _rms_norm_rows(out: np.ndarray, x: np.ndarray, wv: Optional[np.ndarray], group: int, eps32: np.float32) -> None:
    """out = x scaled to unit RMS per contiguous group of ``group`` values (times wv, if given), for the
    rows x holds; out may be x itself.  Shared by rms_norm and add_rms_norm."""
    n = x.shape[0]
    if n == 1 and group == x.shape[1]:
        # a decode step's one row: the same formula in four NumPy calls instead of seven (it runs twice a layer
        # every token, and at this size a call's fixed cost is most of the work: 6.3 -> 2.1 us); np.dot may add
        # the squares in another order than einsum, so the last bit can differ from the general path's
        v, o1 = x[0], out[0]
        inv_rms1 = np.float32(1.0) / np.sqrt(np.dot(v, v) / np.float32(group) + eps32)
        np.multiply(v, inv_rms1, out=o1)
        if wv is not None:
            o1 *= wv
        return
    v = x.reshape(n, -1, group)                                         # [n, groups, group]
    o = out.reshape(n, -1, group)                                       # may be v itself
    # mean of squares as a dot product of each group with itself: no [n, width] temporary
    inv_rms = np.einsum("ngk,ngk->ng", v, v)                            # [n, groups]
    inv_rms /= group
    inv_rms += eps32
    np.sqrt(inv_rms, out=inv_rms)
    np.divide(1.0, inv_rms, out=inv_rms)
    np.multiply(v, inv_rms[:, :, None], out=o)
    if wv is not None:
        o *= wv


class NumpyOps(Ops):
    name = "cpu"
    device_name = None
    profile = False     # time every step of each run (timings(); tools/profile_decode.py --device cpu)

    def __init__(self, cache_budget: Optional[int] = None) -> None:
        """cache_budget: bytes of float32 weight copies to keep (default: half the machine's memory)."""
        self.cache_budget = _CacheBudget(_default_cache_budget() if cache_budget is None else cache_budget)
        self.step = np.zeros(STEP_SIZE, dtype=np.int32)          # the step buffer (STEP_*)
        self.sampling = np.zeros(SAMPLE_SIZE, dtype=np.float32)  # the sampling buffer (SAMPLE_*)
        self._recording: Optional[NumpyProgram] = None
        self._rope_cache: dict = {}
        self._stacked: dict = {}        # stacked weights of fused matmuls (see _FusedMatmul)
        self._arena = _F32Arena()       # where float32 weight copies live (see _F32Arena)
        # single-row products through quant_matvec's kernels (Numba installed, GPT4ALL_NUMBA not '0')
        self.quant_matvec = quant_matvec.available()
        self._blas = _blas_controllers()
        env = os.environ.get("GPT4ALL_NUMPY_DECODE_THREADS")
        self.decode_threads: Optional[int] = int(env) if env else None   # see "Threads" above

    # ---------------------------------------------------------------- memory
    def tensor(self, rows: int, width: int, dtype: str = "f32", name: str = "") -> Tensor:
        np_dtype = {"f32": np.float32, "i32": np.int32}[dtype]
        return Tensor(rows, width, dtype, name, np.zeros((rows, width), dtype=np_dtype))

    def weight(self, name: str, ggml_type: int, shape: Sequence[int], raw: np.ndarray) -> Weight:
        quants.check_supported(ggml_type, name)
        width = int(shape[0])
        rows = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        w = NumpyWeight(raw, ggml_type, rows, width, name, None if rows == 1 else self.cache_budget,
                        None if rows == 1 else self._arena)
        if rows == 1:
            w.dense()        # norms, biases: tiny, used every step, never counted against the budget
        return Weight(rows, width, int(ggml_type), name, w)

    def write(self, t: Tensor, values: np.ndarray, row: int = 0) -> None:
        values = np.asarray(values, dtype=t.handle.dtype)
        values = values.reshape(-1, t.width) if values.ndim != 2 else values
        t.handle[row:row + values.shape[0]] = values

    def read(self, t: Tensor, rows: Optional[int] = None) -> np.ndarray:
        return t.handle[: t.rows if rows is None else rows].copy()

    # ---------------------------------------------------------------- programs
    @contextmanager
    def record(self, resume: bool = False) -> Iterator[Program]:
        prog = NumpyProgram()                   # resume: the host arrays are the device state already
        self._recording = prog
        try:
            yield prog
        finally:
            self._recording = None
        prog.steps = self._fuse_matmuls(prog.steps)

    def _fuse_matmuls(self, steps: list) -> list:
        """Replace each run of consecutive matmuls that read the same input (llama's q/k/v, gate/up)
        by one _FusedMatmul: one BLAS call over the stacked weights instead of two or three.
        Decoding is a chain of small matrix-vector products, and each call costs a fixed hand-off
        (Python closure, BLAS dispatch, thread wake-up) that is a large share of a 576x576 product;
        one bigger product also gives BLAS's threads more rows to share.  Same products, same
        outputs: only the number of calls changes."""
        fused: list = []
        for step in steps:
            prev = fused[-1] if fused else None
            if isinstance(step, _Matmul) and step.fusable() and prev is not None and (
                    isinstance(prev, (_Matmul, _FusedMatmul)) and prev.accepts(step)):
                fused[-1] = _FusedMatmul(self, prev.parts + [step] if isinstance(prev, _FusedMatmul)
                                         else [prev, step])
            else:
                fused.append(step)
        return fused

    def run(self, program: Program) -> None:
        single_row = self.decode_threads is not None and self.step[STEP_N_TOKENS] <= 1
        saved = [c.get_num_threads() for c in self._blas] if single_row else []
        try:
            if single_row:
                for c in self._blas:
                    c.set_num_threads(self.decode_threads)      # see "Threads" in the module docstring
            if self.quant_matvec:       # the kernels get the threads BLAS has (the caller's n_threads)
                quant_matvec.set_threads(self.decode_threads if single_row else
                                         self._blas[0].get_num_threads() if self._blas else os.cpu_count() or 1)
            if self.profile:
                program.step_us = []
                for step in program.steps:
                    t0 = time.perf_counter()
                    step()
                    program.step_us.append((time.perf_counter() - t0) * 1e6)
            else:
                for step in program.steps:
                    step()
        finally:
            for c, n in zip(self._blas, saved):
                c.set_num_threads(n)

    def timings(self, program: Program) -> list[dict]:
        """Wall time of each step of ``program``'s last run with ``profile`` on, in VulkanOps.timings' form: a list of
        {'op': 'matmul' or the op's name, 'what': the weights a matmul reads, 'bytes': the bytes it streamed (float32
        copies, or quant_matvec's repacked blocks),
        'us'}.  A fused matmul (q/k/v, gate/up: _fuse_matmuls) is one step."""
        if len(program.step_us) != len(program.steps):
            raise RuntimeError("timings(): no profiled run of this program (set ops.profile = True before running it)")
        out = []
        for step, us in zip(program.steps, program.step_us):
            if isinstance(step, (_Matmul, _FusedMatmul)):
                parts = step.parts
                out.append({"op": "matmul", "what": "+".join(p.nw.name for p in parts), "us": us,
                            "bytes": step.read_bytes})
            else:           # a recorded closure: NumpyOps.<op>.<locals>.run
                out.append({"op": step.__qualname__.split(".")[1], "what": "", "us": us, "bytes": 0})
        return out

    def _op(self, fn: Callable[[], None]) -> None:
        """Record ``fn`` when inside ``record()``, else run it now (eager use by tests)."""
        if self._recording is not None:
            self._recording.steps.append(fn)
        else:
            fn()

    def _rows(self, t: Tensor) -> int:
        """Rows an op processes: n_tokens, but never more than its output buffer holds (so a
        one-row buffer such as the last row's hidden state or the logits is handled as one row
        inside a prompt program)."""
        return min(int(self.step[STEP_N_TOKENS]), t.rows)

    @property
    def n_tokens(self) -> int:
        return int(self.step[STEP_N_TOKENS])

    @property
    def pos(self) -> int:
        return int(self.step[STEP_POS])

    # ---------------------------------------------------------------- ops
    def get_rows(self, out: Tensor, table: Weight, ids: Tensor) -> None:
        w: NumpyWeight = table.handle

        def run():
            n = self._rows(out)
            out.handle[:n] = w.take(ids.handle[:n, 0])
        self._op(run)

    def rms_norm(self, out: Tensor, x: Tensor, weight: Optional[Weight], eps: float,
                 group: int = 0) -> None:
        group = group or x.width
        wv = None if weight is None else weight.handle.dense().reshape(group)
        eps32 = np.float32(eps)

        def run():
            n = self._rows(out)
            _rms_norm_rows(out.handle[:n], x.handle[:n], wv, group, eps32)
        self._op(run)

    def add_rms_norm(self, x: Tensor, delta: Tensor, out: Tensor, weight: Optional[Weight], eps: float) -> None:
        wv = None if weight is None else weight.handle.dense().reshape(x.width)
        eps32 = np.float32(eps)

        def run():
            n = min(self._rows(out), x.rows, delta.rows)
            xv = x.handle[:n]
            np.add(xv, delta.handle[:n], out=xv)            # in place: the residual stream moves on
            _rms_norm_rows(out.handle[:n], xv, wv, x.width, eps32)
        self._op(run)

    def layer_norm(self, out: Tensor, x: Tensor, weight: Optional[Weight], bias: Optional[Weight],
                   eps: float) -> None:
        wv = None if weight is None else weight.handle.dense()[0]
        bv = None if bias is None else bias.handle.dense()[0]

        def run():
            n = self._rows(out)
            v = x.handle[:n]
            centred = v - v.mean(axis=-1, keepdims=True)
            r = centred / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + np.float32(eps))
            if wv is not None:
                r *= wv
            if bv is not None:
                r += bv
            out.handle[:n] = r
        self._op(run)

    def matmul(self, out: Tensor, w: Weight, x: Tensor, bias: Optional[Weight] = None,
               w_row0: int = 0, out_col0: int = 0, n_out: int = 0, *,
               norm: Optional[Weight] = None, eps: float = 0.0, accumulate: bool = False) -> None:
        self._op(_Matmul(self, out, w, x, bias, w_row0, out_col0, n_out, norm, eps, accumulate))

    def _rope_table(self, n_rot: int, freq_base: float, freq_scale: float,
                    freq_factors: Optional[Weight], n_pos: int) -> tuple:
        """cos and sin of every rotation angle for positions 0 .. >= n_pos, as f32 [P, n_rot/2] each,
        and the same as complex64 cos + i sin [P, n_rot/2].  Angle p * theta_i with
        theta_i = freq_scale * base^(-2i/n_rot) / factor_i, computed in float64 and rounded once.
        A decode step needs one row of this table: computing it once per position instead of once
        per rope call (60 per token on a 30-layer model) takes cos/sin off the per-token path.
        The table grows by doubling to the largest position seen."""
        key = (n_rot, freq_base, freq_scale, id(freq_factors))
        table = self._rope_cache.get(key)
        if table is None or table[0].shape[0] < n_pos:
            i = np.arange(n_rot // 2, dtype=np.float64)
            inv = freq_scale * freq_base ** (-2.0 * i / n_rot)                          # [n_rot/2]
            if freq_factors is not None:
                inv = inv / freq_factors.handle.dense()[0, : n_rot // 2].astype(np.float64)
            size = max(256, 1 << (int(n_pos) - 1).bit_length())
            angle = np.arange(size, dtype=np.float64)[:, None] * inv                    # [P, n_rot/2]
            cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
            table = (cos, sin, (cos + 1j * sin).astype(np.complex64), freq_factors)  # keeps the id's owner
            self._rope_cache[key] = table
        return table

    def rope(self, x: Tensor, n_head: int, head_dim: int, n_rot: int, freq_base: float,
             neox: bool, freq_scale: float = 1.0, freq_factors: Optional[Weight] = None,
             positions: Optional[Tensor] = None, cache: Optional[Tensor] = None) -> None:
        if cache is not None and positions is not None:
            raise ValueError("rope: cache and positions cannot be combined")
        half = n_rot // 2
        # Pairs (2i, 2i+1) sit side by side in memory, so a head's first n_rot values viewed as
        # complex64 are the numbers x_2i + i x_2i+1, and the rotation is one complex multiply by
        # cos + i sin: (a + ib)(c + is) = (ac - bs) + i(as + bc), the definition below, in place.
        as_complex = not neox and head_dim % 2 == 0

        def run():
            n, pos = self._rows(x), self.pos
            if positions is None:
                p = slice(pos, pos + n)                                                # rows pos..pos+n
                n_pos = pos + n
            else:          # packed sequences: each row carries its own position
                p = positions.handle[:n, 0]                                            # [n]
                n_pos = int(p.max()) + 1 if n else 0
            cos_t, sin_t, rot_t, _ = self._rope_table(n_rot, freq_base, freq_scale, freq_factors, n_pos)
            rows = x.handle[:n]                                                        # [n, width]
            if cache is not None:      # rotate a copy in its cache rows, x stays as it is
                rows = cache.handle[pos:pos + n]
                rows[...] = x.handle[:n]
            if as_complex:
                v = rows.reshape(n, n_head, head_dim).view(np.complex64)[:, :, :half]  # view
                np.multiply(v, rot_t[p][:, None, :], out=v)                            # [n, n_head, n_rot/2]
                return
            cos, sin = cos_t[p][:, None, :], sin_t[p][:, None, :]                      # [n, 1, n_rot/2]
            v = rows.reshape(n, n_head, head_dim)                                      # view
            if neox:       # pairs (i, i + n_rot/2)
                a, b = v[:, :, :half].copy(), v[:, :, half:n_rot].copy()
                v[:, :, :half] = a * cos - b * sin
                v[:, :, half:n_rot] = a * sin + b * cos
            else:          # pairs (2i, 2i + 1)
                a, b = v[:, :, 0:n_rot:2].copy(), v[:, :, 1:n_rot:2].copy()
                v[:, :, 0:n_rot:2] = a * cos - b * sin
                v[:, :, 1:n_rot:2] = a * sin + b * cos
        self._op(run)

    def store_kv(self, cache: Tensor, src: Tensor) -> None:
        def run():
            n, pos = self._rows(src), self.pos
            cache.handle[pos:pos + n] = src.handle[:n]
        self._op(run)

    @staticmethod
    def _attention_mask(n: int, pos: int, n_kv: int, window: int) -> Optional[np.ndarray]:
        """Which cache rows each causal query row may see, bool [n, n_kv]; None when it sees them all --
        a decoding step's single row with no window cutting in, so no mask is built per token."""
        if n == 1 and (window <= 0 or window > pos):
            return None
        p = np.arange(pos, pos + n)[:, None]
        j = np.arange(n_kv)[None, :]
        visible = j <= p
        if window > 0:
            visible &= (p - j) < window
        return visible

    def attention(self, out: Tensor, q: Tensor, k_cache: Tensor, v_cache: Tensor,
                  n_head: int, n_kv_head: int, head_dim: int, scale: float,
                  causal: bool = True, window: int = 0, softcap: float = 0.0,
                  seq_ids: Optional[Tensor] = None) -> None:
        group = n_head // n_kv_head            # query heads per kv head (GQA)

        def attend(rows: slice, keys: slice, visible: Optional[np.ndarray]) -> np.ndarray:
            """Query rows `rows` over cache rows `keys`, only where visible (bool [rows, keys]) if given."""
            n, n_kv = rows.stop - rows.start, keys.stop - keys.start
            # queries [n, n_head, d] -> [n_kv_head, n * group, d]  (head h = kv * group + g)
            qh = q.handle[rows].reshape(n, n_kv_head, group, head_dim).transpose(1, 0, 2, 3)
            qh = qh.reshape(n_kv_head, n * group, head_dim)
            k = k_cache.handle[keys].reshape(n_kv, n_kv_head, head_dim).transpose(1, 2, 0)  # [kvh, d, n_kv]
            v = v_cache.handle[keys].reshape(n_kv, n_kv_head, head_dim).transpose(1, 0, 2)  # [kvh, n_kv, d]
            scores = qh @ k                                                        # [kvh, n*group, n_kv]
            scores *= np.float32(scale)
            if softcap > 0:
                scores = np.float32(softcap) * np.tanh(scores / np.float32(softcap))
            scores = scores.reshape(n_kv_head, n, group, n_kv)
            if visible is not None:
                scores = np.where(visible[None, :, None, :], scores, np.float32(-np.inf))
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores, out=scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = probs.reshape(n_kv_head, n * group, n_kv) @ v                    # [kvh, n*group, d]
            ctx = ctx.reshape(n_kv_head, n, group, head_dim).transpose(1, 0, 2, 3)
            return ctx.reshape(n, n_head * head_dim)

        def run():
            n, pos = self._rows(out), self.pos
            if causal:
                visible = self._attention_mask(n, pos, pos + n, window)               # [n, pos + n] or None
                out.handle[:n] = attend(slice(0, n), slice(0, pos + n), visible)
            elif seq_ids is None:      # one sequence: the batch sees all of itself
                out.handle[:n] = attend(slice(0, n), slice(0, n), None)
            else:
                # Packed embedding pass: a row sees only its own sequence's rows.  A mask over the
                # whole pass would give the same result, but its n x n scores cost O(pass^2), mostly
                # thrown away, so larger passes got slower; each sequence on its own costs
                # O(sum of len^2).  bert.py packs a sequence's rows contiguously: one run of equal ids.
                s = seq_ids.handle[:n, 0]
                cuts = np.flatnonzero(s[1:] != s[:-1]) + 1                        # first row of each later run
                assert n == 0 or len(cuts) + 1 == len(np.unique(s)), "a sequence's rows must be contiguous"
                for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), n]):
                    out.handle[a:b] = attend(slice(a, b), slice(a, b), None)
        self._op(run)

    def add(self, out: Tensor, a: Tensor, b: Tensor) -> None:
        def run():
            n = self._rows(out)
            np.add(a.handle[:n], b.handle[:n], out=out.handle[:n])
        self._op(run)

    def add_weight(self, out: Tensor, a: Tensor, w: Weight) -> None:
        wv = w.handle.rows_f32(0, 1)[0]

        def run():
            n = self._rows(out)
            np.add(a.handle[:n], wv, out=out.handle[:n])
        self._op(run)

    def scale(self, out: Tensor, x: Tensor, s: float) -> None:
        s32 = np.float32(s)

        def run():
            n = self._rows(out)
            np.multiply(x.handle[:n], s32, out=out.handle[:n])
        self._op(run)

    def mul_weight(self, out: Tensor, x: Tensor, w: Weight) -> None:
        wv = w.handle.rows_f32(0, 1)[0]

        def run():
            n = self._rows(out)
            np.multiply(x.handle[:n], wv, out=out.handle[:n])
        self._op(run)

    @staticmethod
    def _gelu(v: np.ndarray) -> np.ndarray:
        # ggml's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        return 0.5 * v * (1.0 + np.tanh(np.float32(SQRT_2_OVER_PI) * (v + np.float32(0.044715) * v * v * v)))

    def glu(self, out: Tensor, gate: Tensor, up: Tensor, kind: str) -> None:
        if kind not in ("silu", "gelu"):
            raise ValueError(f"glu kind must be 'silu' or 'gelu', not {kind!r}")
        scratch = np.empty((gate.rows, gate.width), np.float32)                # [rows, width]

        def run():
            n = self._rows(out)
            g, o = gate.handle[:n], out.handle[:n]                              # o may be g itself
            if kind == "silu":
                # silu(g) = g / (1 + exp(-g)), step by step into a buffer kept with the program:
                # no temporaries allocated per call
                t = scratch[:n]
                np.negative(g, out=t)
                np.exp(t, out=t)
                t += 1.0
                np.divide(g, t, out=t)
                np.multiply(t, up.handle[:n], out=o)
            else:
                np.multiply(self._gelu(g), up.handle[:n], out=o)
        self._op(run)

    def gelu(self, out: Tensor, x: Tensor) -> None:
        def run():
            n = self._rows(out)
            out.handle[:n] = self._gelu(x.handle[:n])
        self._op(run)

    def softmax(self, out: Tensor, x: Tensor) -> None:
        def run():
            n = self._rows(out)
            v = x.handle[:n]
            e = np.exp(v - v.max(axis=-1, keepdims=True))
            out.handle[:n] = e / e.sum(axis=-1, keepdims=True)
        self._op(run)

    def copy_rows(self, out: Tensor, x: Tensor, src_row: int = -1, n_rows: int = 1) -> None:
        def run():
            r = src_row if src_row >= 0 else self.n_tokens + src_row
            out.handle[:n_rows] = x.handle[r:r + n_rows]
        self._op(run)

    def mean_pool(self, out: Tensor, x: Tensor, seq_starts: Tensor, n_seqs: int) -> None:
        def run():
            starts = seq_starts.handle[: n_seqs + 1, 0]
            for s in range(n_seqs):         # one row per sequence: a handful per batch
                out.handle[s] = x.handle[starts[s]:starts[s + 1]].mean(axis=0)
        self._op(run)

    def l2_normalize(self, out: Tensor, x: Tensor, n_rows: int) -> None:
        def run():
            v = x.handle[:n_rows]
            norm = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
            out.handle[:n_rows] = v / np.maximum(norm, np.float32(1e-12))
        self._op(run)

    def sample(self, out_token: Tensor, logits: Tensor, history: Tensor, slot: int = 0) -> None:
        def run():
            s = self.sampling
            n_hist = int(self.step[STEP_N_HISTORY])
            out_token.handle[slot, 0] = sample_token(
                logits.handle[0], history.handle[:n_hist, 0],
                temp=float(s[SAMPLE_TEMP]), top_k=int(s[SAMPLE_TOP_K]), top_p=float(s[SAMPLE_TOP_P]),
                min_p=float(s[SAMPLE_MIN_P]), repeat_penalty=float(s[SAMPLE_REPEAT_PENALTY]),
                repeat_last_n=int(s[SAMPLE_REPEAT_LAST_N]), uniform=float(s[SAMPLE_UNIFORMS + slot]))
        self._op(run)

    def advance(self, ids: Tensor, tokens: Tensor, history: Tensor, slot: int = 0) -> None:
        def run():
            t = tokens.handle[slot, 0]
            ids.handle[0, 0] = t
            n_hist = int(self.step[STEP_N_HISTORY])
            if n_hist < history.rows:
                history.handle[n_hist, 0] = t
                self.step[STEP_N_HISTORY] = n_hist + 1
            else:           # full: drop the oldest entry (the penalty only looks at the newest)
                history.handle[:-1] = history.handle[1:].copy()
                history.handle[-1, 0] = t
            st = self.step
            st[STEP_POS] += st[STEP_N_TOKENS]
            st[STEP_N_TOKENS] = 1
            st[STEP_N_KV] = st[STEP_POS] + 1
        self._op(run)
