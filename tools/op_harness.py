"""The op harness, in the manner of llama.cpp's test-backend-ops: every op of engine/ops.py, every
weight type, several shapes (odd ones included), run on the Vulkan backend and on the NumPy
reference (engine/backends/numpy_ops.py) from the same inputs, compared within a stated tolerance.

    python tools/op_harness.py                  # all cases: correctness table, exit 1 on any failure
    python tools/op_harness.py --op matmul      # only ops whose name contains 'matmul'
    python tools/op_harness.py --perf           # plus the time of each case's recorded program
    python -m pytest tests/test_ops_harness.py  # the same cases as tests

Each case records its op into a Program (exactly as a model does), sets the step buffer and runs
it, so the harness checks the record-once / replay path and the run-time row count.
Errors are NMSE = sum((vk - ref)^2) / sum(ref^2) (test-backend-ops' measure), except for
sampling and integer outputs, which must be equal.  Split-weight cases run on a second
VulkanOps whose storage-buffer limit is a few KiB, so every weight is cut into row chunks.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T  # noqa: E402

from engine.backends.numpy_ops import NumpyOps, _Matmul  # noqa: E402
from engine.ops import Ops, Program, Tensor  # noqa: E402

NMSE_TOL = 1e-7             # test-backend-ops' default max NMSE
# max NMSE of a batched matmul on the tensor-core GEMM (GPT4ALL_GEMM=coopmat), whose weights and activations
# are rounded to f16 (relative error up to 2^-11 each: an NMSE of ~1e-8..1e-7 on these cases, so 1e-7 is too tight)
F16_GEMM_TOL = 1e-6
WEIGHT_TYPES = [T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q8_0, T.Q4_K, T.Q6_K]
# byte offsets of the f16 scale fields of each quantised block (set to sane values in random blocks)
SCALE_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q8_0: [0], T.Q4_K: [0, 2], T.Q6_K: [208]}
SPLIT_BYTES = 2048          # storage-buffer limit of the split-weight backend


def random_weight(rng: np.random.Generator, typ: int, rows: int, width: int) -> np.ndarray:
    """GGUF data for a [rows, width] weight, as gguf.GGUFReader hands it out: f32/f16 values, or
    random quantised blocks (every bit pattern of the quants) with small positive f16 scales."""
    if typ == T.F32:
        return rng.standard_normal((rows, width)).astype(np.float32)
    if typ == T.F16:
        return rng.standard_normal((rows, width)).astype(np.float16)
    qk, bs = GGML_QUANT_SIZES[typ]
    blocks = rng.integers(0, 256, size=(rows, width // qk, bs), dtype=np.uint8)
    for off in SCALE_FIELDS[typ]:
        d = rng.uniform(0.002, 0.02, size=(rows, width // qk)).astype(np.float16)
        blocks[:, :, off:off + 2] = d.view(np.uint8).reshape(rows, width // qk, 2)
    return blocks.reshape(rows, -1)


@dataclass
class Prepared:
    program: Program
    before_run: Callable[[], None]          # set_step / set_sampling: per-run values
    outputs: list                           # Tensors (with rows to read) compared after the run
    extra: Optional[Callable[[], np.ndarray]] = None   # host-visible state to compare (step buffer)


@dataclass
class Case:
    op: str
    label: str
    prepare: Callable[[Ops], Prepared]
    tol: float = NMSE_TOL                   # max NMSE; 0: must be equal
    split: bool = False                     # run on the split-weight Vulkan backend
    f16_gemm: bool = False                  # a batched matmul: F16_GEMM_TOL on a backend with gemm 'coopmat'
    f16_attention: bool = False             # a batch's attention: F16_GEMM_TOL under attention_prompt 'coopmat'
    head_dim: int = 0                       # attention cases: the head size (it picks the kernel)

    def tolerance(self, ops: Ops) -> float:
        f16 = (self.f16_gemm and getattr(ops, "gemm", "").startswith("coopmat")) or (
            self.f16_attention and getattr(ops, "attention_prompt", "") == "coopmat")
        return max(self.tol, F16_GEMM_TOL) if f16 else self.tol

    @property
    def name(self) -> str:
        return f"{self.op}[{self.label}]"


def nmse(got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    den = float(np.sum(want * want))
    num = float(np.sum((got - want) ** 2))
    return num / den if den > 0 else num


# ----------------------------------------------------------------------------------- case builders
def _tensor(ops: Ops, values: np.ndarray, dtype: str = "f32", rows: Optional[int] = None) -> Tensor:
    values = np.asarray(values)
    values = values.reshape(values.shape[0], -1)
    t = ops.tensor(rows or values.shape[0], values.shape[1], dtype)
    ops.write(t, values)
    return t


def _weight(ops: Ops, name: str, typ: int, raw: np.ndarray, rows: int, width: int):
    shape = (width,) if rows == 1 and raw.ndim == 1 else (width, rows)
    return ops.weight(name, typ, shape, raw)


def _simple(ops: Ops, n_tokens: int, pos: int = 0):
    return lambda: ops.set_step(n_tokens, pos)


def matmul_case(typ: int, n_tok: int, width: int, rows: int, cap: int = 0, window=None, bias=False,
                split=False, norm=False, acc=False, seed=0) -> Case:
    """``norm``: matmul's folded pre-norm (a random norm weight); ``acc``: accumulate into an output
    that already holds values."""
    rng = np.random.default_rng(seed)
    raw = random_weight(rng, typ, rows, width)
    x = (rng.standard_normal((n_tok, width)) * (3.0 if norm else 1.0)).astype(np.float32)
    b = rng.standard_normal(rows).astype(np.float32) if bias else None
    g = rng.standard_normal(width).astype(np.float32) if norm else None
    w_row0, out_col0, n_out = window or (0, 0, 0)
    out_w = (n_out or rows - w_row0) + out_col0 + (2 if window else 0)
    cap = cap or n_tok
    out0 = rng.standard_normal((cap, out_w)).astype(np.float32) if acc else None

    def prepare(ops: Ops) -> Prepared:
        W = _weight(ops, "w", typ, raw, rows, width)
        B = ops.weight("b", T.F32, (rows,), b) if bias else None
        G = ops.weight("g", T.F32, (width,), g) if norm else None
        xt = _tensor(ops, x, rows=cap)
        out = ops.tensor(cap, out_w)
        with ops.record() as prog:
            ops.matmul(out, W, xt, bias=B, w_row0=w_row0, out_col0=out_col0, n_out=n_out, norm=G, eps=1e-5,
                       accumulate=acc)

        def before():
            ops.set_step(n_tok, 0)
            if acc:
                ops.write(out, out0)             # accumulate: each run starts from the same values
        return Prepared(prog, before, [(out, n_tok)])
    label = f"{T(typ).name} x[{n_tok}/{cap},{width}] W[{rows},{width}]"
    if window:
        label += f" rows {w_row0}+{n_out or rows - w_row0}->col {out_col0}"
    label += " +bias" * bias + " split" * split + " norm" * norm + " acc" * acc
    return Case("matmul", label, prepare, split=split, f16_gemm=cap > 1)


def matmul_glu_case(typ: int, n_tok: int, width: int, rows: int, kind: str = "silu", norm=True, cap: int = 0,
                    up_typ: Optional[int] = None, split=False, seed=14) -> Case:
    """act(x @ Wgate^T) * (x @ Wup^T); ``up_typ`` other than ``typ``: gate and up cannot be stacked (the
    backend's decomposed path)."""
    rng = np.random.default_rng(seed)
    up_typ = typ if up_typ is None else up_typ
    raw_g, raw_u = random_weight(rng, typ, rows, width), random_weight(rng, up_typ, rows, width)
    x = (rng.standard_normal((n_tok, width)) * 2.0).astype(np.float32)
    g = rng.standard_normal(width).astype(np.float32) if norm else None
    cap = cap or n_tok

    def prepare(ops: Ops) -> Prepared:
        Wg, Wu = _weight(ops, "gate", typ, raw_g, rows, width), _weight(ops, "up", up_typ, raw_u, rows, width)
        G = ops.weight("g", T.F32, (width,), g) if norm else None
        xt = _tensor(ops, x, rows=cap)
        out = ops.tensor(cap, rows)
        with ops.record() as prog:
            ops.matmul_glu(out, Wg, Wu, xt, kind, norm=G, eps=1e-6)
        return Prepared(prog, lambda: ops.set_step(n_tok, 0), [(out, n_tok)])
    label = (f"{kind} {T(typ).name}" + (f"+{T(up_typ).name}" if up_typ != typ else "")
             + f" x[{n_tok}/{cap},{width}] W[{rows},{width}]" + " norm" * norm + " split" * split)
    return Case("matmul_glu", label, prepare, split=split, f16_gemm=cap > 1)


def get_rows_case(typ: int, n_tok: int, width: int, rows: int, split=False, seed=1) -> Case:
    rng = np.random.default_rng(seed)
    raw = random_weight(rng, typ, rows, width)
    ids = rng.integers(0, rows, size=n_tok).astype(np.int32)
    ids[0], ids[-1] = 0, rows - 1                    # first and last rows (chunk edges)

    def prepare(ops: Ops) -> Prepared:
        W = _weight(ops, "table", typ, raw, rows, width)
        it = _tensor(ops, ids, "i32")
        out = ops.tensor(n_tok, width)
        with ops.record() as prog:
            ops.get_rows(out, W, it)
        return Prepared(prog, _simple(ops, n_tok), [(out, n_tok)])
    return Case("get_rows", f"{T(typ).name} [{rows},{width}] x{n_tok}" + " split" * split, prepare, split=split)


def unary_case(op: str, label: str, n_tok: int, width: int, record, cap: int = 0, seed=2,
               weights: dict | None = None, tol=NMSE_TOL, scale=1.0) -> Case:
    """An op of one activation input x [n_tok, width] (plus optional weights) -> out [n_tok, width]."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n_tok, width)) * scale).astype(np.float32)
    cap = cap or n_tok

    def prepare(ops: Ops) -> Prepared:
        ws = {k: ops.weight(k, t, shape, raw) for k, (t, shape, raw) in (weights or {}).items()}
        xt = _tensor(ops, x, rows=cap)
        out = ops.tensor(cap, width)
        with ops.record() as prog:
            record(ops, out, xt, ws)
        return Prepared(prog, _simple(ops, n_tok), [(out, n_tok)])
    return Case(op, label, prepare, tol=tol)


def binary_case(op: str, n_tok: int, width: int, record, seed=3) -> Case:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n_tok, width)).astype(np.float32)
    b = rng.standard_normal((n_tok, width)).astype(np.float32)

    def prepare(ops: Ops) -> Prepared:
        at, bt, out = _tensor(ops, a), _tensor(ops, b), ops.tensor(n_tok, width)
        with ops.record() as prog:
            record(ops, out, at, bt)
        return Prepared(prog, _simple(ops, n_tok), [(out, n_tok)])
    return Case(op, f"[{n_tok},{width}]", prepare)


def add_rms_norm_case(n_tok: int, width: int, cap: int = 0, with_w=True, out_is_delta=False, seed=13) -> Case:
    """x += delta, out = rms_norm(x) * w: both the residual stream x (rows past n_tok left alone) and out are
    compared.  ``out_is_delta``: out aliases delta, as the models call it (the branch output buffer)."""
    rng = np.random.default_rng(seed)
    cap = cap or n_tok
    x = rng.standard_normal((cap, width)).astype(np.float32)
    d = rng.standard_normal((cap, width)).astype(np.float32)
    wv = rng.standard_normal(width).astype(np.float32)

    def prepare(ops: Ops) -> Prepared:
        xt, dt = _tensor(ops, x), _tensor(ops, d)
        W = ops.weight("w", T.F32, (width,), wv) if with_w else None
        out = dt if out_is_delta else ops.tensor(cap, width)
        with ops.record() as prog:
            ops.add_rms_norm(xt, dt, out, W, 1e-5)
        return Prepared(prog, _simple(ops, n_tok), [(xt, cap), (out, n_tok)])
    label = f"[{n_tok}/{cap},{width}]" + " weight" * with_w + " out=delta" * out_is_delta
    return Case("add_rms_norm", label, prepare)


def matmul_stack_case(typ: int, n_tok: int, width: int, rows: tuple, norm=True, biases=False, cap: int = 0,
                      typs: Optional[tuple] = None, split=False, seed=15) -> Case:
    """outs[i] = x @ W_i^T for weights of ``rows`` (q, k, v shapes): one pass over the weights stacked on
    a backend that can; ``biases`` or mixed ``typs`` (no stacking) take the one-matmul-each path."""
    rng = np.random.default_rng(seed)
    typs = typs or (typ,) * len(rows)
    raws = [random_weight(rng, t, r, width) for t, r in zip(typs, rows)]
    bs = [rng.standard_normal(r).astype(np.float32) for r in rows] if biases else None
    x = (rng.standard_normal((n_tok, width)) * 2.0).astype(np.float32)
    g = rng.standard_normal(width).astype(np.float32) if norm else None
    cap = cap or n_tok

    def prepare(ops: Ops) -> Prepared:
        Ws = [_weight(ops, f"w{i}", t, raw, r, width) for i, (t, raw, r) in enumerate(zip(typs, raws, rows))]
        Bs = [ops.weight(f"b{i}", T.F32, (r,), b) for i, (r, b) in enumerate(zip(rows, bs))] if biases else None
        G = ops.weight("g", T.F32, (width,), g) if norm else None
        xt = _tensor(ops, x, rows=cap)
        outs = [ops.tensor(cap, r) for r in rows]
        with ops.record() as prog:
            ops.matmul_stack(outs, Ws, xt, Bs, norm=G, eps=1e-6)
        return Prepared(prog, lambda: ops.set_step(n_tok, 0), [(o, n_tok) for o in outs])
    label = (f"{'+'.join(T(t).name for t in typs)} x[{n_tok}/{cap},{width}] rows {'/'.join(map(str, rows))}"
             + " norm" * norm + " +bias" * biases + " split" * split)
    return Case("matmul_stack", label, prepare, split=split, f16_gemm=cap > 1)


def rope_qkv_case(neox: bool, n_tok: int, pos: int, n_head: int, n_kv: int, head_dim: int, n_rot: int,
                  base=10000.0, factors=False, cap: int = 0, n_ctx: int = 64, seed=6) -> Case:
    """Ops.rope_qkv: q rotated in place, k rotated into its cache, v copied into its cache; cache rows
    outside pos..pos+n_tok and q rows past n_tok must stay as they were."""
    rng = np.random.default_rng(seed)
    cap = cap or n_tok
    q = rng.standard_normal((cap, n_head * head_dim)).astype(np.float32)
    k, v = (rng.standard_normal((cap, n_kv * head_dim)).astype(np.float32) for _ in range(2))
    kc0, vc0 = (rng.standard_normal((n_ctx, n_kv * head_dim)).astype(np.float32) for _ in range(2))
    ff = rng.uniform(1.0, 8.0, n_rot // 2).astype(np.float32) if factors else None

    def prepare(ops: Ops) -> Prepared:
        qt, kt, vt, KC, VC = (_tensor(ops, a) for a in (q, k, v, kc0, vc0))
        F = ops.weight("rope_freqs", T.F32, (n_rot // 2,), ff) if factors else None
        with ops.record() as prog:
            ops.rope_qkv(qt, kt, vt, KC, VC, n_head, n_kv, head_dim, n_rot, base, neox, 1.0, F)
        return Prepared(prog, _simple(ops, n_tok, pos), [(qt, cap), (KC, n_ctx), (VC, n_ctx)])
    label = (f"{'neox' if neox else 'norm'} n={n_tok}" + (f"/{cap}" if cap != n_tok else "") + f" pos={pos}"
             + f" heads={n_head}/{n_kv}x{head_dim} rot={n_rot}" + " factors" * factors)
    return Case("rope_qkv", label, prepare, tol=1e-6)


def qkv_rope_case(typ: int, width: int, n_head: int, n_kv: int, head_dim: int, n_rot: int, pos: int,
                  neox=False, base=10000.0, fscale=1.0, factors=False, n_tok: int = 1, cap: int = 0,
                  first_pos: Optional[int] = None, n_ctx: int = 64, seed=16) -> Case:
    """A decoder layer's attention input as llama.py records it: matmul_stack (q, k, v of a pre-normed x) then
    rope_qkv on those outputs, in one program.  On Vulkan a decode step (one row) records the pair as one
    dispatch where it can (the rope in the mat-vec's epilogue, VulkanOps._rope_epilogue_fits); the reference
    runs the two ops.  Compared: q (rotated), k and v (as computed), both caches whole (rows other than pos
    must stay as they were).  ``first_pos``: the program runs at that position first, then at ``pos``: both
    cache rows are compared, so a position fixed at record time would show."""
    rng = np.random.default_rng(seed)
    cap = cap or n_tok
    qw, kw = n_head * head_dim, n_kv * head_dim
    raws = [random_weight(rng, typ, r, width) for r in (qw, kw, kw)]
    x = (rng.standard_normal((n_tok, width)) * 2.0).astype(np.float32)
    g = rng.standard_normal(width).astype(np.float32)
    kc0, vc0 = (rng.standard_normal((n_ctx, kw)).astype(np.float32) for _ in range(2))
    ff = rng.uniform(1.0, 8.0, n_rot // 2).astype(np.float32) if factors else None

    def prepare(ops: Ops) -> Prepared:
        Ws = [_weight(ops, f"w{i}", typ, raw, r, width) for i, (raw, r) in enumerate(zip(raws, (qw, kw, kw)))]
        G = ops.weight("g", T.F32, (width,), g)
        F = ops.weight("rope_freqs", T.F32, (n_rot // 2,), ff) if factors else None
        xt, KC, VC = _tensor(ops, x, rows=cap), _tensor(ops, kc0), _tensor(ops, vc0)
        q, k, v = ops.tensor(cap, qw), ops.tensor(cap, kw), ops.tensor(cap, kw)
        with ops.record() as prog:
            ops.matmul_stack([q, k, v], Ws, xt, norm=G, eps=1e-6)
            ops.rope_qkv(q, k, v, KC, VC, n_head, n_kv, head_dim, n_rot, base, neox, fscale, F)

        def before():
            if first_pos is not None:
                ops.set_step(n_tok, first_pos)
                ops.run(prog)
            ops.set_step(n_tok, pos)
        return Prepared(prog, before, [(q, n_tok), (k, n_tok), (v, n_tok), (KC, n_ctx), (VC, n_ctx)])
    label = (f"{T(typ).name} x[{n_tok}/{cap},{width}] heads={n_head}/{n_kv}x{head_dim} rot={n_rot} "
             + f"{'neox' if neox else 'norm'}" + (f" pos={first_pos},{pos}" if first_pos is not None else f" pos={pos}")
             + (f" scale={fscale}" if fscale != 1 else "") + " factors" * factors)
    return Case("matmul_stack+rope_qkv", label, prepare, tol=1e-6)


def rope_case(neox: bool, n_tok: int, pos: int, n_head: int, head_dim: int, n_rot: int, base=10000.0,
              fscale=1.0, factors=False, positions=None, cap: int = 0, n_ctx: int = 0, seed=4) -> Case:
    """``positions``: per-row positions (packed sequences) instead of pos + t; ``cap``: buffer rows
    (> n_tok: the rows past n_tokens must be left alone); ``n_ctx``: rope into a KV cache of n_ctx rows
    (Ops.rope's cache; x must stay as it was, cache rows outside pos..pos+n_tok too)."""
    rng = np.random.default_rng(seed)
    cap = cap or n_tok
    x = rng.standard_normal((cap, n_head * head_dim)).astype(np.float32)
    ff = rng.uniform(1.0, 8.0, n_rot // 2).astype(np.float32) if factors else None
    cache0 = rng.standard_normal((n_ctx, n_head * head_dim)).astype(np.float32) if n_ctx else None

    def prepare(ops: Ops) -> Prepared:
        xt = _tensor(ops, x)
        F = ops.weight("rope_freqs", T.F32, (n_rot // 2,), ff) if factors else None
        P = None
        if positions is not None:        # i32 [cap, 1]; rows past n_tok hold junk the op must not use
            p = np.full(cap, 7777, np.int32)
            p[:n_tok] = positions
            P = _tensor(ops, p, "i32")
        C = _tensor(ops, cache0) if n_ctx else None
        with ops.record() as prog:
            ops.rope(xt, n_head, head_dim, n_rot, base, neox, fscale, F, positions=P, cache=C)
        return Prepared(prog, _simple(ops, n_tok, pos), [(xt, cap)] + ([(C, n_ctx)] if n_ctx else []))
    label = (f"{'neox' if neox else 'norm'} n={n_tok}" + (f"/{cap}" if cap != n_tok else "")
             + (f" pos={pos}" if positions is None else f" positions={list(positions)[:6]}")
             + f" heads={n_head}x{head_dim} rot={n_rot}"
             + (f" scale={fscale}" if fscale != 1 else "") + " factors" * factors
             + (f" ->cache[{n_ctx}]" if n_ctx else ""))
    return Case("rope", label, prepare, tol=1e-6)


def attention_case(label: str, n_tok: int, pos: int, n_head: int, n_kv: int, hd: int, causal=True,
                   window=0, softcap=0.0, seqs=None, n_ctx=64, seed=5, split=False, layers=1,
                   first_pos: Optional[int] = None, key_growth: float = 0.0) -> Case:
    """``layers``: that many attention calls of the same shape (own q, K, V, out) in one program, as a
    model's layers make them (on the split path they share the partial-results and counter buffers);
    ``first_pos``: the program also runs at that position first, and only the run at ``pos`` is compared
    (state a run leaves behind, e.g. attention_decode.comp's arrival counters, must not change the next);
    ``key_growth``: key row j is scaled by 1 + key_growth * j, so a row's scores grow along the keys and its
    running max keeps rising (attention_prompt_cm.comp's rescaling of O)."""
    rng = np.random.default_rng(seed)
    rows_kv = max(pos, first_pos or 0) + n_tok if causal else n_tok
    data = []
    for _ in range(layers):
        q = rng.standard_normal((n_tok, n_head * hd)).astype(np.float32)
        kc = np.zeros((n_ctx, n_kv * hd), np.float32)
        vc = np.zeros((n_ctx, n_kv * hd), np.float32)
        kc[:rows_kv] = rng.standard_normal((rows_kv, n_kv * hd))
        kc[:rows_kv] *= 1.0 + key_growth * np.arange(rows_kv, dtype=np.float32)[:, None]
        vc[:rows_kv] = rng.standard_normal((rows_kv, n_kv * hd))
        data.append((q, kc, vc))
    scale = 1.0 / math.sqrt(hd)

    def prepare(ops: Ops) -> Prepared:
        st = _tensor(ops, np.asarray(seqs, np.int32), "i32") if seqs is not None else None
        args = [(_tensor(ops, q), _tensor(ops, kc), _tensor(ops, vc), ops.tensor(n_tok, n_head * hd))
                for q, kc, vc in data]
        with ops.record() as prog:
            for qt, kt, vt, out in args:
                ops.attention(out, qt, kt, vt, n_head, n_kv, hd, scale, causal, window, softcap, st)

        def before():
            if first_pos is not None:
                ops.set_step(n_tok, first_pos)
                ops.run(prog)
            ops.set_step(n_tok, pos)
        return Prepared(prog, before, [(a[3], n_tok) for a in args])
    return Case("attention", label + " split keys" * split, prepare, tol=1e-6, split=split,
                f16_attention=n_tok > 1 and not split, head_dim=hd)


def sample_case(label: str, n_vocab: int, temp: float, top_k: int, top_p: float, min_p: float,
                penalty: float, uniforms, history_len=20, seed=6, ties=False, plant: Optional[dict] = None,
                history: Optional[list] = None, last_n: int = 64, fill: Optional[float] = None) -> Case:
    """Random logits (N(0, 9)), or all ``fill``; ``plant``: {id: logit} set on top of them (maxima in a given
    slice of Vulkan's v2 kernel, ties across slices, a top-k spread over slices); ``history``: the penalty
    history instead of a random one whose first 5 entries are the likeliest tokens (ids outside the
    vocabulary may be given: they are ignored); ``last_n``: the penalty window (repeat_last_n)."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(n_vocab) * 3).astype(np.float32)
    if fill is not None:
        logits[:] = fill
    if ties:                    # a block of equal maxima: the lowest id must win, as in np.argmax
        logits[[7, 3, 11]] = logits.max() + 1.0
    for i, v in (plant or {}).items():
        logits[i] = v
    if history is None:
        history = rng.integers(0, n_vocab, size=history_len).astype(np.int32)
        history[:5] = np.argsort(-logits)[:5]           # penalise some of the likeliest tokens
        history[5] = history[0]                          # a repeat: penalised once, not twice
    else:
        history = np.asarray(history, np.int32)
    history_len = len(history)
    n_slots = len(uniforms)

    def prepare(ops: Ops) -> Prepared:
        lt = _tensor(ops, logits[None, :])
        ht = _tensor(ops, history, "i32", rows=history_len + 4)
        tok = ops.tensor(n_slots, 1, "i32")
        with ops.record() as prog:
            for s in range(n_slots):
                ops.sample(tok, lt, ht, slot=s)

        def before():
            ops.set_step(1, 0)
            ops.set_sampling(temp, top_k, top_p, min_p, penalty, last_n, uniforms, history_len)
        return Prepared(prog, before, [(tok, n_slots)])
    return Case("sample", label, prepare, tol=0.0)


def advance_case(n_vocab=300, steps=3, seed=7, hist_cap=6, history=(5, 9, 2, 7)) -> Case:
    """k decode steps recorded once: sample(slot i) then advance(slot i) feeds the token back.  A history
    longer than advance.comp's workgroup (64) makes its shift move several chunks."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(n_vocab) * 3).astype(np.float32)
    history = np.asarray(history, np.int32)
    # one uniform per step: the first four fixed (the existing cases' inputs), any further ones from the rng
    uniforms = [0.3, 0.6, 0.9, 0.45][:steps] + [float(u) for u in rng.uniform(0.0, 1.0, max(0, steps - 4))]

    def prepare(ops: Ops) -> Prepared:
        lt = _tensor(ops, logits[None, :])
        ht = _tensor(ops, history, "i32", rows=hist_cap)
        ids = ops.tensor(1, 1, "i32")
        tok = ops.tensor(steps, 1, "i32")
        with ops.record() as prog:
            for s in range(steps):
                ops.sample(tok, lt, ht, slot=s)
                ops.advance(ids, tok, ht, slot=s)

        def before():
            ops.write(ht, history.reshape(-1, 1))
            ops.set_step(4, 10)
            ops.set_sampling(0.8, 40, 0.95, 0.0, 1.5, 64, uniforms, len(history))
        return Prepared(prog, before, [(tok, steps), (ids, 1), (ht, hist_cap)],
                        extra=lambda: np.concatenate([np.asarray(ops.step[:3], np.float64),
                                                      np.asarray(ops.sampling[6:7], np.float64)]))
    return Case("advance", f"{steps} steps, history of {hist_cap} fills and shifts", prepare, tol=0.0)


def build_cases() -> list[Case]:
    cases: list[Case] = []
    # matmul: mat-vec and batched, odd row counts, odd widths for F32/F16; a window + bias; split weights
    for typ in WEIGHT_TYPES:
        qk = GGML_QUANT_SIZES[typ][0] if typ not in (T.F32, T.F16) else 1
        wd = 75 if qk == 1 else (256 if qk == 256 else 96)
        cases.append(matmul_case(typ, 1, wd, 37))
        cases.append(matmul_case(typ, 7, wd, 37, cap=16))
        cases.append(matmul_case(typ, 13, 2 * max(wd, 256) if qk != 1 else 257, 67))
        cases.append(matmul_case(typ, 5, wd, 45, window=(3, 2, 30), bias=True, split=True))
        # mat-vec (decode) with a row window + bias over split chunks; a long row (several blocks per thread)
        cases.append(matmul_case(typ, 1, wd, 45, window=(3, 2, 30), bias=True, split=True))
        cases.append(matmul_case(typ, 1, 4096 + 3 * (qk == 1), 37))
        # the folded pre-norm and the accumulating epilogue: decode (the mat-vec folds the norm in) and a
        # batch (normed copy), both with a bias; the norm over several chunks of a split weight
        cases.append(matmul_case(typ, 1, 2 * max(wd, 256) if qk != 1 else 257, 41, bias=True, norm=True, acc=True))
        cases.append(matmul_case(typ, 6, wd, 37, cap=8, bias=True, norm=True, acc=True))
        cases.append(matmul_case(typ, 1, wd, 45, window=(3, 2, 30), norm=True, split=True))
        # prompt-sized batches, for the tiled GEMM's 64 weight rows x 64 x rows tiles (GPT4ALL_GEMM=tiled): the
        # last tiles partial both ways, F32/F16 widths past a 32-weight step, capacity tiles past n_tokens
        # (recorded for 150 rows, 40 real), a row window + bias + accumulate, also over split chunks
        bw = 257 if qk == 1 else wd
        cases.append(matmul_case(typ, 70, bw, 130, cap=80))
        cases.append(matmul_case(typ, 40, bw, 100, cap=150, bias=True, acc=True))
        cases.append(matmul_case(typ, 70, wd, 100, cap=80, window=(5, 3, 90), bias=True, acc=True, split=True))
    # gate-up-activation: stacked (one pass when decoding), unstackable types, split weights
    cases += [matmul_glu_case(T.Q4_0, 1, 512, 70), matmul_glu_case(T.Q4_0, 5, 256, 70, cap=8),
              matmul_glu_case(T.Q8_0, 1, 96, 37, kind="gelu", norm=False), matmul_glu_case(T.Q4_K, 1, 512, 33),
              matmul_glu_case(T.Q6_K, 1, 256, 33, kind="gelu"), matmul_glu_case(T.F16, 1, 75, 21),
              matmul_glu_case(T.Q4_K, 1, 256, 40, up_typ=T.Q6_K), matmul_glu_case(T.Q4_0, 1, 96, 45, split=True),
              matmul_glu_case(T.Q4_0, 3, 96, 45, split=True),
              # prompt-sized batches (the two halves of the stack through the batched matmul, tiled or not)
              matmul_glu_case(T.Q4_0, 70, 256, 100, cap=80),
              matmul_glu_case(T.Q4_K, 66, 256, 70, kind="gelu", split=True)]
    # Q4_0 rows of whole 1024-weight tiles (GPT4ALL_MATVEC=v3's tile layout; other kernels read it through
    # dequant8v): decode with norm + accumulate, a window + bias over split chunks, batches, gate-up, q/k/v, get_rows
    cases += [matmul_case(T.Q4_0, 1, 2048, 45, norm=True, acc=True),
              matmul_case(T.Q4_0, 1, 1024, 45, window=(3, 2, 30), bias=True, split=True),
              matmul_case(T.Q4_0, 7, 1024, 37, cap=16), matmul_case(T.Q4_0, 70, 1024, 100, cap=80),
              matmul_glu_case(T.Q4_0, 1, 1024, 70), matmul_glu_case(T.Q4_0, 1, 2048, 45, split=True),
              matmul_stack_case(T.Q4_0, 1, 1024, (64, 16, 16)), get_rows_case(T.Q4_0, 6, 1024, 41),
              get_rows_case(T.Q4_0, 9, 2048, 41, split=True)]
    # q, k, v as one pass: decode (stacked), a prompt, biases and mixed types (one matmul each), 2 weights
    cases += [matmul_stack_case(T.Q4_0, 1, 256, (64, 16, 16)), matmul_stack_case(T.Q8_0, 1, 96, (48, 24, 24)),
              matmul_stack_case(T.Q4_K, 1, 256, (40, 8, 8), norm=False), matmul_stack_case(T.Q6_K, 1, 256, (33, 11, 11)),
              matmul_stack_case(T.Q4_0, 5, 128, (64, 16, 16), cap=8), matmul_stack_case(T.Q4_0, 1, 128, (32, 8, 8), biases=True),
              matmul_stack_case(T.Q4_0, 1, 128, (32, 8, 8), typs=(T.Q4_0, T.Q8_0, T.Q4_0)),
              matmul_stack_case(T.Q4_0, 1, 128, (32, 16)), matmul_stack_case(T.Q4_0, 1, 96, (45, 15, 15), split=True),
              matmul_stack_case(T.F16, 1, 64, (16, 8, 8))]
    # get_rows: every type, plain and split into chunks
    for typ in WEIGHT_TYPES:
        qk = GGML_QUANT_SIZES[typ][0] if typ not in (T.F32, T.F16) else 1
        wd = 75 if qk == 1 else (256 if qk == 256 else 96)
        cases.append(get_rows_case(typ, 6, wd, 41))
        cases.append(get_rows_case(typ, 9, wd, 41, split=True))
    # norms
    rng = np.random.default_rng(10)
    # (widths and groups that are multiples of 4 take the kernel's register path, up to 16 vec4s a thread: 4096 and
    # 2048 with and without weight; 4100 is past it; the others take the loop)
    for width, group, with_w in [(576, 0, True), (75, 0, False), (192, 64, True), (4096, 0, True), (2048, 0, False),
                                 (4100, 0, True), (512, 256, True)]:
        wv = rng.standard_normal(group or width).astype(np.float32)
        ws = {"w": (T.F32, (group or width,), wv)} if with_w else {}
        cases.append(unary_case("rms_norm", f"[5,{width}] group={group or width}" + " weight" * with_w, 5, width,
                                lambda o, out, x, w, g=group: o.rms_norm(out, x, w.get("w"), 1e-6, g),
                                weights=ws, cap=8))
    # the residual add fused with the norm after it: odd widths (fewer values than threads, several per thread),
    # spare capacity rows, one decode row, out aliasing delta (the models' call)
    cases += [add_rms_norm_case(5, 576, cap=8), add_rms_norm_case(3, 75, with_w=False),
              add_rms_norm_case(1, 2049, out_is_delta=True), add_rms_norm_case(6, 200, cap=7, out_is_delta=True)]
    for width, with_wb in [(384, True), (75, False)]:
        ws = {"w": (T.F32, (width,), rng.standard_normal(width).astype(np.float32)),
              "b": (T.F32, (width,), rng.standard_normal(width).astype(np.float32))} if with_wb else {}
        cases.append(unary_case("layer_norm", f"[4,{width}]" + " weight+bias" * with_wb, 4, width,
                                lambda o, out, x, w: o.layer_norm(out, x, w.get("w"), w.get("b"), 1e-12),
                                weights=ws, scale=3.0))
    # rope
    cases += [rope_case(False, 5, 0, 9, 64, 64), rope_case(False, 1, 300, 3, 64, 64),
              rope_case(True, 4, 17, 4, 256, 256, base=1e6), rope_case(True, 3, 9, 2, 96, 64, fscale=0.5),
              rope_case(False, 2, 40, 2, 64, 64, base=500000.0, factors=True),
              # per-row positions: 3 packed sequences (nomic-bert), the step's pos (50) must be ignored;
              # spare capacity rows must stay untouched; a long sequence's large positions
              rope_case(True, 9, 50, 4, 64, 64, positions=[0, 1, 2, 0, 1, 0, 1, 2, 3], cap=12),
              rope_case(False, 5, 3, 3, 64, 64, base=500000.0, factors=True, positions=[0, 1, 0, 1, 2]),
              rope_case(True, 4, 0, 2, 96, 64, fscale=0.25, positions=[2045, 2046, 0, 2047]),
              # into a KV cache (x unchanged): decode and a prompt, both pairings, partial rotary, factors
              rope_case(False, 1, 11, 4, 64, 64, n_ctx=16), rope_case(True, 5, 3, 2, 96, 64, cap=6, n_ctx=12),
              rope_case(False, 3, 0, 2, 64, 32, base=500000.0, factors=True, n_ctx=4)]
    cases += [rope_qkv_case(False, 1, 37, 8, 2, 64, 64), rope_qkv_case(True, 1, 5, 4, 1, 96, 64),
              rope_qkv_case(False, 1, 60, 4, 4, 64, 64, base=500000.0, factors=True),
              rope_qkv_case(False, 3, 10, 6, 2, 32, 32, cap=5), rope_qkv_case(True, 2, 0, 2, 2, 128, 128, base=1e6)]
    # q/k/v then rope_qkv, as a llama layer records them: decode (one dispatch on Vulkan where NR is even: the
    # rope in the mat-vec's epilogue) with and without Llama 3's freq_factors, freq_scale, partial rotary, every
    # split type, Q4_0 rows of whole tiles (v3), a program replayed at a second position; and the pairs that
    # stay two dispatches: neox, a prompt, a type that cannot stack
    cases += [qkv_rope_case(T.Q4_0, 256, 4, 2, 64, 64, 37),
              qkv_rope_case(T.Q4_0, 256, 4, 2, 64, 64, 60, base=500000.0, factors=True),
              qkv_rope_case(T.Q8_0, 96, 6, 2, 32, 32, 9, fscale=0.5, first_pos=3),
              qkv_rope_case(T.Q4_K, 256, 2, 1, 128, 64, 20),
              qkv_rope_case(T.Q6_K, 256, 4, 4, 16, 16, 5, factors=True),
              qkv_rope_case(T.Q4_0, 1024, 8, 2, 64, 64, 30, base=500000.0, factors=True, first_pos=29),
              qkv_rope_case(T.Q4_0, 128, 4, 2, 32, 32, 7, neox=True),
              qkv_rope_case(T.Q4_0, 128, 4, 2, 32, 32, 3, n_tok=3, cap=5),
              qkv_rope_case(T.F16, 64, 2, 1, 16, 16, 4)]
    # store_kv
    def store_prepare(ops: Ops) -> Prepared:
        r = np.random.default_rng(11)
        cache = ops.tensor(20, 48)
        src = _tensor(ops, r.standard_normal((3, 48)).astype(np.float32), rows=8)
        with ops.record() as prog:
            ops.store_kv(cache, src)
        return Prepared(prog, _simple(ops, 3, 6), [(cache, 20)])
    cases.append(Case("store_kv", "3 rows at pos 6 into [20,48]", store_prepare))
    # attention
    cases += [attention_case("causal GQA 6/2 x64, prompt", 5, 7, 6, 2, 64),
              attention_case("causal decode pos=90 (2 key tiles)", 1, 90, 9, 3, 64, n_ctx=128),
              attention_case("sliding window 4", 6, 3, 4, 2, 32, window=4),
              attention_case("softcap 30, head_dim 256", 3, 5, 4, 1, 256, softcap=30.0),
              attention_case("non-causal + seq_ids (3 seqs)", 7, 0, 4, 4, 32, causal=False,
                             seqs=[[0], [0], [0], [1], [1], [2], [2]]),
              attention_case("causal decode pos=200", 1, 200, 8, 2, 64, n_ctx=256, split=True),
              attention_case("causal decode pos=2 (empty slices)", 1, 2, 4, 4, 32, split=True),
              attention_case("window 70 at pos 300, GQA 8/2 x256", 2, 300, 8, 2, 256, window=70,
                             n_ctx=320, split=True),
              attention_case("window 100 at pos 300, 1 slice path", 3, 300, 4, 1, 64, window=100, n_ctx=320),
              # the split path's kernel (shaders/attention_decode.comp): Llama-3-8B's heads, slices longer
              # than its CHUNK (256 keys: two online-softmax steps), softcap with a window, > GMAX (8)
              # query heads per KV head (two head blocks), head_dim 512, forced splits on an embedding
              # pass (non-causal, seq_ids), and head_dim % 4 != 0 (attention.comp's split path instead)
              attention_case("decode pos=300, GQA 32/8 x128", 1, 300, 32, 8, 128, n_ctx=320, split=True),
              attention_case("decode pos=1500, slices > CHUNK", 1, 1500, 8, 2, 64, n_ctx=1504, split=True),
              attention_case("softcap 30 + window 100 at pos 300", 1, 300, 8, 4, 128, window=100,
                             softcap=30.0, n_ctx=320, split=True),
              attention_case("decode pos=40, MQA 12/1 x64", 1, 40, 12, 1, 64, split=True),
              attention_case("decode pos=100, 4/2 x512", 1, 100, 4, 2, 512, n_ctx=128, split=True),
              attention_case("non-causal + seq_ids (3 seqs)", 7, 0, 4, 4, 32, causal=False,
                             seqs=[[0], [0], [0], [1], [1], [2], [2]], split=True),
              attention_case("decode pos=70, head_dim 30", 1, 70, 4, 2, 30, n_ctx=80, split=True),
              # one recorded program run twice (pos 40, then 150), with 2 layers: the split path's merge in
              # attention_decode.comp counts each (row, head block)'s finished slices in a buffer that every
              # layer and run shares, so a counter left non-zero breaks the next layer or run; G = 12 heads
              # per KV head make 2 head blocks, 3 rows 3 counters per block
              attention_case("2 layers, run at pos 40 then 150, GQA 8/2 x64", 1, 150, 8, 2, 64, n_ctx=160,
                             split=True, layers=2, first_pos=40),
              attention_case("3 rows, 2 layers, pos 9 then 30, GQA 24/2 x32", 3, 30, 24, 2, 32, n_ctx=40,
                             split=True, layers=2, first_pos=9),
              # the tiled prompt kernel (shaders/attention_prompt.comp, rows > 1 without key slices): blocks
              # of 16 query rows (8 for head_dim > 128) over key tiles of 32 (x128), 16 (x256), 64 (x64, x32)
              # keys; rows past the last full block, tiles where some rows see no key, a window that
              # starts mid-tile, a head_dim that is not a multiple of 32 (x96: 3 vec4s per thread, some idle);
              # a block's slots are gcd(slots, group size) heads of a KV group x rows: 4 heads x 4 rows (32/8),
              # 2 x 4 (4/2 x256), 2 x 8 (6/3), 1 x 16 (5/1, 12/12), 16 heads x 1 row (MQA 16/1)
              attention_case("prompt 37 rows at pos 50, GQA 32/8 x128", 37, 50, 32, 8, 128, n_ctx=96),
              attention_case("prompt 21 rows at pos 7, MQA 16/1 x64", 21, 7, 16, 1, 64, n_ctx=40),
              attention_case("prompt 20 rows at pos 0, 4/2 x256, softcap", 20, 0, 4, 2, 256, softcap=30.0),
              attention_case("prompt 70 rows at pos 10, window 45, 6/3 x64", 70, 10, 6, 3, 64, window=45,
                             n_ctx=96),
              attention_case("prompt 33 rows at pos 3, MQA 5/1 x96", 33, 3, 5, 1, 96, n_ctx=40),
              attention_case("non-causal 40 rows + seq_ids (2 seqs), 12/12 x32", 40, 0, 12, 12, 32,
                             causal=False, seqs=[[0]] * 23 + [[1]] * 17),
              attention_case("prompt 19 rows at pos 4, head_dim 30 (attention.comp)", 19, 4, 4, 2, 30),
              # ... and the tensor-core kernel (attention_prompt_cm.comp, head_dim 64 and 128, where the device has
              # cooperative matrices): blocks of 64 slots over tiles of 32 keys; the cases above, plus many tiles
              # and two blocks of a head group, and seq_ids with softcap at head_dim 64 (nomic-embed's heads)
              attention_case("prompt 100 rows at pos 200, GQA 8/2 x128, softcap", 100, 200, 8, 2, 128, n_ctx=320,
                             softcap=30.0),
              attention_case("non-causal 50 rows + seq_ids (3 seqs), 4/4 x64", 50, 0, 4, 4, 64,
                             causal=False, seqs=[[0]] * 20 + [[1]] * 5 + [[2]] * 25),
              # scores growing along the keys: rows' maxima rise by more than the tensor-core kernel's RESCALE_AT
              # from tile to tile (56 of the 320 (row, head) pairs at least once, 40 of 96), so its O accumulators
              # are rescaled (the f32 kernels rescale anyway).  Steeper growth makes the softmax so sharp that f16
              # rounding of q and K alone comes near the 1e-6 tolerance (0.2: NMSE 1.0e-6 on the H100)
              attention_case("prompt 40 rows at pos 60, growing keys, GQA 8/2 x128", 40, 60, 8, 2, 128, n_ctx=100,
                             key_growth=0.05),
              attention_case("prompt 24 rows at pos 90, growing keys, MQA 4/1 x64", 24, 90, 4, 1, 64, n_ctx=120,
                             key_growth=0.05)]
    # element-wise and row ops
    cases.append(binary_case("add", 5, 77, lambda o, out, a, b: o.add(out, a, b)))
    cases.append(unary_case("scale", "[3,77] * 0.125", 3, 77, lambda o, out, x, w: o.scale(out, x, 0.125)))
    cases.append(unary_case("mul_weight", "[4,77] * f32 row", 4, 77, lambda o, out, x, w: o.mul_weight(out, x, w["w"]),
                            weights={"w": (T.F32, (77,), rng.standard_normal(77).astype(np.float32))}))
    for typ in (T.F32, T.F16, T.Q8_0):
        width = 96
        raw = random_weight(rng, typ, 2, width)
        cases.append(unary_case("add_weight", f"[4,{width}] + {T(typ).name} row 0 of [2,{width}]", 4, width,
                                lambda o, out, x, w: o.add_weight(out, x, w["w"]),
                                weights={"w": (typ, (width, 2), raw)}))
    for kind in ("silu", "gelu"):
        cases.append(binary_case("glu", 5, 99, lambda o, out, a, b, k=kind: o.glu(out, a, b, k)))
        cases[-1].label += f" {kind}"
    cases.append(unary_case("gelu", "[4,130]", 4, 130, lambda o, out, x, w: o.gelu(out, x), scale=3.0))
    cases.append(unary_case("softmax", "[3,1000]", 3, 1000, lambda o, out, x, w: o.softmax(out, x), scale=4.0))

    def copy_prepare(src_row, n_rows, n_tok):
        def prepare(ops: Ops) -> Prepared:
            x = _tensor(ops, np.arange(8 * 33, dtype=np.float32).reshape(8, 33))
            out = ops.tensor(3, 33)
            with ops.record() as prog:
                ops.copy_rows(out, x, src_row, n_rows)
            return Prepared(prog, _simple(ops, n_tok), [(out, n_rows)])
        return prepare
    cases.append(Case("copy_rows", "last real row (-1) of 6", copy_prepare(-1, 1, 6)))
    cases.append(Case("copy_rows", "rows 2..3", copy_prepare(2, 2, 8)))

    def pool_prepare(ops: Ops) -> Prepared:
        r = np.random.default_rng(12)
        x = _tensor(ops, r.standard_normal((9, 40)).astype(np.float32))
        starts = _tensor(ops, np.array([0, 4, 5, 9], np.int32), "i32")
        out = ops.tensor(4, 40)
        with ops.record() as prog:
            ops.mean_pool(out, x, starts, 3)
        return Prepared(prog, _simple(ops, 9), [(out, 3)])
    cases.append(Case("mean_pool", "3 sequences of 4, 1, 4 rows", pool_prepare))
    cases.append(unary_case("l2_normalize", "[5,384], 4 rows", 5, 384,
                            lambda o, out, x, w: o.l2_normalize(out, x, 4)))
    # sampling: exact token ids
    us = [0.05, 0.5, 0.93]
    cases += [sample_case("greedy + repeat penalty", 1000, 0.0, 40, 0.9, 0.0, 1.3, [0.5]),
              sample_case("greedy, tied maxima -> lowest id", 500, 0.0, 40, 0.9, 0.0, 1.0, [0.5], ties=True),
              sample_case("top_k=1 is greedy", 700, 0.8, 1, 0.9, 0.0, 1.1, [0.7]),
              sample_case("top-k 40, top-p 0.9, temp 0.8", 3001, 0.8, 40, 0.9, 0.0, 1.18, us),
              sample_case("GPT4All defaults (k40 p0.4 t0.7)", 49152, 0.7, 40, 0.4, 0.0, 1.18, us),
              sample_case("min-p 0.05, top-p 1", 2000, 1.0, 100, 1.0, 0.05, 1.0, us),
              sample_case("top-k off, top-p 0.5", 5000, 1.2, 0, 0.5, 0.0, 1.1, us),
              sample_case("top-k 1000 > 512 candidates, top-p 0.3", 4000, 0.9, 1000, 0.3, 0.0, 1.0, us),
              advance_case(),
              advance_case(steps=4, hist_cap=150, history=np.random.default_rng(8).integers(0, 300, 148))]
    # sampling at the edges of Vulkan's v2 slices (sample_partial.comp: a workgroup per slice of the vocabulary;
    # tests/test_ops_harness.py runs these with small slices and candidate budgets too): vocabularies that are
    # no multiple of a slice, the maximum at the last id, equal maxima in different slices (every logit equal:
    # in all of them), a top-40 packed into one slice and spread over the others (with the penalty on some of
    # both), top-k longer than a slice, the penalty on tokens of several slices with ids outside the vocabulary
    # and an older repeat outside the window (greedy picks 777 only if the window and every slice's penalty hold)
    top40 = {4970 + i: 20.0 - 0.1 * i for i in range(25)}
    top40.update({331 * i + 13: 19.95 - 0.1 * i for i in range(15)})
    hot = {0: 15.0, 3000: 14.9, 1500: 14.8, 777: 14.7}
    window = [777, 777, 0, 3000, -1, 3001, 1500, 0, 99999, 2999, 1, 1500]      # last_n = 10: the 777s are older
    cases += [sample_case("slices: vocab 1001, max at the last id, greedy", 1001, 0.0, 40, 0.9, 0.0, 1.3, [0.5],
                          plant={1000: 30.0}),
              sample_case("slices: equal maxima in 3 slices -> lowest id", 1001, 0.0, 40, 0.9, 0.0, 1.0, [0.5],
                          plant={999: 25.0, 640: 25.0, 333: 25.0}),
              sample_case("slices: every logit equal -> id 0", 777, 0.0, 40, 0.9, 0.0, 1.0, [0.5], fill=0.5),
              sample_case("slices: top-40 packed + spread, penalised", 5003, 1.5, 40, 1.0, 0.0, 1.18,
                          [0.02, 0.5, 0.98], plant=top40),
              sample_case("slices: top-k 100 longer than a slice, min-p", 301, 1.0, 100, 1.0, 0.02, 1.1, us),
              sample_case("slices: penalty window over 3 slices, greedy", 3001, 0.0, 40, 1.0, 0.0, 1.3, [0.5],
                          plant=hot, history=window, last_n=10),
              sample_case("slices: penalty window over 3 slices, top-k 40", 3001, 0.9, 40, 0.95, 0.0, 1.3, us,
                          plant=hot, history=window, last_n=10)]
    return cases


def perf_cases() -> list[Case]:
    """Model-sized cases, only with --perf: the shapes a 1B model's decode and prompt steps run."""
    cases = []
    for typ in (T.Q4_0, T.Q8_0, T.Q4_K, T.Q6_K, T.F16):
        cases.append(matmul_case(typ, 1, 2048, 8192, seed=20))        # mat-vec: FFN up, decode
        cases.append(matmul_case(typ, 128, 2048, 2048, seed=21))      # batched: attention proj, prompt
    cases.append(attention_case("decode pos=1023, 32/8 heads x64", 1, 1023, 32, 8, 64, n_ctx=1024))
    cases.append(attention_case("prompt 128 at pos 0, 32/8 heads x64", 128, 0, 32, 8, 64, n_ctx=128))
    cases.append(sample_case("GPT4All defaults, vocab 128256", 128256, 0.7, 40, 0.4, 0.0, 1.18, [0.5]))
    for c in cases:
        c.label = "perf " + c.label
    return cases


def weight_gbs(case: Case, ms: float) -> str:
    """Weight bytes streamed per second by a matmul case (mat-vec is bandwidth bound)."""
    if case.op != "matmul" or not ms or ms != ms:
        return ""
    parts = case.label.replace("perf ", "").split()
    typ = T[parts[0]]
    rows, width = (int(v) for v in parts[2].strip("W[]").split(","))
    qk, bs = GGML_QUANT_SIZES[typ]
    return f"{rows * width // qk * bs / (ms * 1e-3) / 1e9:6.1f} GB/s"


# ----------------------------------------------------------------------------------- running
@dataclass
class Result:
    case: Case
    error: float
    ok: bool
    vk_ms: float = float("nan")
    cpu_ms: float = float("nan")
    detail: str = ""


def execute(ops: Ops, prep: Prepared) -> list[np.ndarray]:
    prep.before_run()
    ops.run(prep.program)
    outs = [ops.read(t, rows) for t, rows in prep.outputs]
    if prep.extra is not None:
        outs.append(prep.extra())
    return outs


def time_program(ops: Ops, prep: Prepared, min_s: float = 0.2, max_reps: int = 50) -> float:
    """Milliseconds per run of the recorded program (warm; before_run included: it is host writes)."""
    execute(ops, prep)
    reps, t0 = 0, time.perf_counter()
    while reps < max_reps and (reps == 0 or time.perf_counter() - t0 < min_s):
        prep.before_run()
        ops.run(prep.program)
        reps += 1
    return (time.perf_counter() - t0) / reps * 1e3


def check(case: Case, vk: Ops, ref: Ops, perf: bool = False) -> Result:
    pv, pr = case.prepare(vk), case.prepare(ref)
    got, want = execute(vk, pv), execute(ref, pr)
    if case.tol == 0.0:
        bad = [i for i, (g, w) in enumerate(zip(got, want)) if not np.array_equal(g, w)]
        err = float(len(bad))
        detail = "" if not bad else f"output {bad[0]}: got {got[bad[0]].ravel()[:8]} want {want[bad[0]].ravel()[:8]}"
        res = Result(case, err, not bad, detail=detail)
    else:
        err = max(nmse(g, w) for g, w in zip(got, want))
        finite = all(np.isfinite(g).all() for g in got)
        res = Result(case, err, finite and err <= case.tolerance(vk), detail="" if finite else "non-finite output")
    if perf:
        res.vk_ms = time_program(vk, pv)
        res.cpu_ms = time_program(ref, pr)
    return res


def round_x_like_int_dot(x: np.ndarray) -> np.ndarray:
    """x [rows, K] (K a multiple of 8) as the tile mat-vec's -DINT_DOT build multiplies it (shaders/quants/
    q4_0_tile.glsl, tile_x_int): each 8 consecutive values scaled by the power of two that puts their largest |x|
    in [64, 128), rounded to the nearest integer (halves to even), clamped at 127 and scaled back; a group whose
    largest |x| is below 2^-120 becomes zero.  Powers of two keep every step but the rounding exact, so this
    matches the GPU bit for bit before the products."""
    g = np.asarray(x, np.float32).reshape(-1, 8)
    e = (np.abs(g).max(axis=1).view(np.uint32) >> 23).astype(np.int64)        # biased exponent of the max
    scale = np.where(e >= 7, np.ldexp(1.0, 133 - e), 0.0)[:, None]             # float64: exact
    q = np.minimum(np.rint(g * scale), 127.0)
    back = np.divide(q, scale, out=np.zeros_like(q), where=scale > 0)
    return back.astype(np.float32).reshape(np.shape(x))


class IntDotReference(NumpyOps):
    """The NumPy reference for a Vulkan backend whose decode mat-vec rounds x to 8 bits (VulkanOps.integer_dot):
    one-row matmuls over Q4_0 weights of whole 1024-weight tiles (the tile layout, GPT4ALL_MATVEC=v3) multiply
    round_x_like_int_dot(x), pre-normed as the shader does it (x * norm weight rounded, 1 / rms applied to the
    sums); everything else is NumpyOps' float product."""

    def matmul(self, out: Tensor, w, x: Tensor, bias=None, w_row0: int = 0, out_col0: int = 0, n_out: int = 0, *,
               norm=None, eps: float = 0.0, accumulate: bool = False) -> None:
        from engine.backends.vulkan_ops import TILE_WEIGHTS
        if min(x.rows, out.rows) == 1 and w.ggml_type == T.Q4_0 and w.width % TILE_WEIGHTS == 0:
            self._op(_RoundedMatmul(self, out, w, x, bias, w_row0, out_col0, n_out, norm, eps, accumulate))
        else:
            super().matmul(out, w, x, bias, w_row0, out_col0, n_out, norm=norm, eps=eps, accumulate=accumulate)


class _RoundedMatmul(_Matmul):
    """A one-row matmul step whose input is x rounded as the -DINT_DOT mat-vec rounds it (IntDotReference)."""

    def fusable(self) -> bool:
        return False

    def input(self, n: int) -> np.ndarray:
        x = self.x.handle[:n]
        if self.norm is None:
            return round_x_like_int_dot(x)
        g, eps = self.norm
        rinv = np.float32(1.0) / np.sqrt(np.mean(x * x, axis=1, keepdims=True, dtype=np.float32) + eps)
        return round_x_like_int_dot(x * g) * rinv


class Backends:
    """The Vulkan backend (plus a split-weight one) and the NumPy reference, made once."""

    def __init__(self, device: str = "kompute", subgroups: Optional[bool] = None, matvec: Optional[str] = None,
                 norm: Optional[str] = None, gemm: Optional[str] = None):
        from engine.backends.vulkan_device import choose
        from engine.backends.vulkan_ops import VulkanOps
        info = choose(device)
        self.vk = VulkanOps(info, subgroups=subgroups, matvec=matvec, norm=norm, gemm=gemm)
        # split weights into row chunks, and attention keys into 3 slices (flash-decoding path)
        self.vk_split = VulkanOps(info, max_buffer_bytes=SPLIT_BYTES, subgroups=subgroups, attention_splits=3,
                                  matvec=matvec, norm=norm, gemm=gemm)
        # the reference rounds x wherever the mat-vec does (integer dot products over the tile layout)
        self.ref = IntDotReference() if self.vk.integer_dot and self.vk.matvec == "v3" else NumpyOps()

    def check(self, case: Case, perf: bool = False) -> Result:
        return check(case, self.vk_split if case.split else self.vk, self.ref, perf)


def main() -> int:
    ap = argparse.ArgumentParser(description="Vulkan ops vs the NumPy reference (test-backend-ops style)")
    ap.add_argument("--op", help="only cases whose op name contains this")
    ap.add_argument("--perf", action="store_true", help="also time each case's recorded program")
    ap.add_argument("--device", default="kompute", help="device string, as engine.load's (default: kompute)")
    ap.add_argument("--portable", action="store_true",
                    help="force the shared-memory reduction shaders (no subgroup operations)")
    ap.add_argument("--matvec", help="decode mat-vec kernel and weight layout: v1, v2 or v2:NRxWG "
                    "(default: $GPT4ALL_MATVEC or the backend's; see vulkan_ops.MatvecKernel)")
    args = ap.parse_args()
    b = Backends(args.device, subgroups=False if args.portable else None, matvec=args.matvec)
    cases = [c for c in build_cases() + (perf_cases() if args.perf else []) if not args.op or args.op in c.op]
    sg = "subgroup reductions" if b.vk.subgroups else "shared-memory reductions"
    print(f"device: {b.vk.device_name} ({b.vk.info.vendor} {b.vk.info.type}, subgroup {b.vk.info.subgroup_size}, "
          f"{sg}, maxStorageBufferRange {b.vk.info.max_storage_buffer_range >> 20} MiB, matvec {b.vk.matvec_kernel}, "
          f"sample {b.vk.sample_kernel})")
    head = f"{'op':12s} {'case':52s} {'error':>10s} {'tol':>8s}  ok"
    if args.perf:
        head += f" {'vulkan ms':>10s} {'numpy ms':>9s}"
    print(head)
    n_bad = 0
    for c in cases:
        try:
            r = b.check(c, args.perf)
        except Exception as e:          # one broken op must not hide the others
            r = Result(c, float("nan"), False, detail=f"{type(e).__name__}: {e}")
        n_bad += not r.ok
        tol = "exact" if c.tol == 0 else f"{c.tolerance(b.vk_split if c.split else b.vk):.0e}"
        line = f"{c.op:12s} {c.label[:52]:52s} {r.error:10.2e} {tol:>8s}  {'OK' if r.ok else 'FAIL'}"
        if args.perf:
            line += f" {r.vk_ms:10.3f} {r.cpu_ms:9.3f} {weight_gbs(c, r.vk_ms)}"
        print(line + (f"  {r.detail}" if r.detail else ""), flush=True)
    print(f"{len(cases) - n_bad}/{len(cases)} cases passed on {b.vk.device_name}")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
