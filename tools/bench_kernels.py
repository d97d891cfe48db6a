"""Per-kernel benchmark at real model shapes: is this shader still right, and how fast?

    python tools/bench_kernels.py                              # llama-3.2-1b shapes, every op family
    python tools/bench_kernels.py --shape llama-3-8b --ops matmul_q4_0 --reps 50
    python tools/bench_kernels.py --shape smollm2-135m --reps 5 --json out.json
    python tools/bench_kernels.py --matvec v1,v2 --ops matmul   # A/B the decode mat-vec kernels
    python tools/bench_kernels.py --matvec v2:2x64,v2:4x64,v2:4x128 --ops q4_0   # tune v2 on this device

For every case (one op at one real decode shape) it
 1. builds the op's inputs from random data (quantised weights: random blocks with sane scales),
 2. checks the Vulkan result against the NumPy reference (engine/backends/numpy_ops.py) once: NMSE
    <= the op harness's tolerance, exact token ids for sampling; a failed check is printed as FAIL and
    makes the exit status 1 (the time is still shown),
 3. times the op recorded N (--reps) times into ONE program, i.e. one submission, and the same op
    recorded once; (t_N - t_1) / (N - 1) is the time per op with the submit-and-wait round trip
    (~0.55 ms on an H100) taken out.  Each program is run --runs times, the fastest run counts.
    Consecutive repetitions write the same output, so the backend puts a barrier between them,
    as between the dependent dispatches of a forward pass.  Weights and K/V caches are uploaded as
    several copies (together >= --rotate-mib, default 256 MiB, more than any GPU's L2 cache: the
    H100's is 50 MB) and the repetitions cycle through them, because a real forward pass streams
    every layer's own weights from memory: timing one 9 MB matrix again and again would time the
    cache instead.
 4. reports microseconds per op and GB/s: the *minimal* bytes the op must move (GGUF weight bytes, as
    in the file, padding of our repacked layout not counted; activations read and written; K and V
    rows up to the context depth) divided by that time, so kernels and layouts compare directly.

Large mat-vecs (the LM head: 128256 rows) are checked on 512 of their rows: the reference multiplies
those rows' GGUF bytes (a slice of the same array the GPU got), which keeps the NumPy side cheap.
The 'dispatch' cases time a chain of trivial dispatches (a scale of 8 floats): dependent (each
reads the previous one's output, so a barrier before each) and independent (no barriers).

Op families (--ops matches a substring of the case name, e.g. 'matmul', 'q4_k', 'lm_head',
'attention', 'depth=4096', 'sample'; names have no spaces): matmul_<type>:<matrix> for Q4_0, Q8_0,
F16, Q4_K, Q6_K and the matrices of one layer plus the LM head; attention:depth=<d> for a few depths; rms_norm; add_rms_norm; rope; sample:greedy and sample:sdk (GPT4All's
defaults, top_k 40 top_p 0.4 temp 0.7 repeat penalty 1.18); dispatch:dependent / dispatch:independent.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T  # noqa: E402

from engine.ops import Ops, Tensor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import op_harness  # noqa: E402

NMSE_TOL = 1e-7              # the op harness's tolerance (tools/op_harness.py)
CHECK_ROWS = 512             # weight rows the reference multiplies for a large mat-vec
MATMUL_TYPES = ("Q4_0", "Q8_0", "F16", "Q4_K", "Q6_K")
SPLIT_MATMULS = ("matmul_q4_0:", "matmul_q8_0:", "matmul_q4_k:", "matmul_q6_k:")   # the cases GPT4ALL_MATVEC (--matvec) changes
# f16 scale fields of each quantised block (byte offsets), set to small positive values


@dataclass(frozen=True)
class Shape:
    """The decode-time sizes of one model (llama architecture)."""
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    depths: tuple = (128, 1024, 4096)      # context depths for attention

    def matrices(self) -> dict:
        """name -> (rows = out, width = in) of one layer's weights and the LM head."""
        kv = self.n_head_kv * self.head_dim
        return {"attn_q": (self.n_head * self.head_dim, self.n_embd), "attn_k": (kv, self.n_embd),
                "attn_output": (self.n_embd, self.n_head * self.head_dim),
                "ffn_up": (self.n_ff, self.n_embd), "ffn_down": (self.n_embd, self.n_ff),
                "lm_head": (self.n_vocab, self.n_embd)}


SHAPES = {
    "llama-3.2-1b": Shape(2048, 8192, 32, 8, 64, 128256),
    "llama-3-8b": Shape(4096, 14336, 32, 8, 128, 128256),
    "smollm2-135m": Shape(576, 1536, 9, 3, 64, 49152),
    "smollm2-360m": Shape(960, 2560, 15, 5, 64, 49152),
    "smollm2-1.7b": Shape(2048, 8192, 32, 32, 64, 49152),
    "tiny": Shape(256, 768, 4, 2, 64, 2048, depths=(16, 100)),   # tests: seconds on lavapipe
}


@dataclass
class Case:
    name: str                                   # family:detail, matched by --ops
    build: Callable[[Ops, Ops, bool, int], "Built"]  # (vulkan, reference, wrong_reference, copies)
    bytes_moved: int                            # minimal bytes per op (see the module docstring)
    exact: bool = False                         # compare exactly (token ids) instead of by NMSE


@dataclass
class Built:
    record_op: Callable[[int], None]            # records the op once on the Vulkan backend, on copy i
    before_run: Callable[[], None]              # set_step / set_sampling on the Vulkan backend
    got: Callable[[], np.ndarray]               # the Vulkan result after a run
    want: Callable[[], np.ndarray]              # the reference result (runs the reference)


@dataclass
class Result:
    name: str
    ok: bool
    error: float
    us_per_op: float
    gb_s: float
    dispatches_per_op: float
    round_trip_ms: float                        # the 1-op program: submission + one op
    bytes_moved: int
    copies: int = 1                             # weight / cache copies the repetitions cycle through
    matvec: str = ""
    detail: str = ""


def nmse(got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    den = float(np.sum(want * want))
    return float(np.sum((got - want) ** 2)) / den if den > 0 else float(np.sum(got * got))


# ----------------------------------------------------------------------------------- inputs
def random_weight(rng: np.random.Generator, typ: int, rows: int, width: int) -> np.ndarray:
    """GGUF data of a [rows, width] weight, as GGUFReader hands it out.  Quantised: the op harness's random
    blocks (f16 scales in [0.002, 0.02]); F16: random bit patterns of magnitude < 1 (cheap for 10^8 values)."""
    if typ == T.F16:
        bits = rng.integers(0, 1 << 16, size=(rows, width), dtype=np.uint16)
        return ((bits & 0x3BFF) | (bits & 0x8000)).view(np.float16)     # exponent <= 14: |v| < 1
    return op_harness.random_weight(rng, typ, rows, width)


def _tensor(ops: Ops, values: np.ndarray, dtype: str = "f32") -> Tensor:
    values = np.asarray(values).reshape(np.asarray(values).shape[0], -1)
    t = ops.tensor(values.shape[0], values.shape[1], dtype)
    ops.write(t, values)
    return t


def _run_once(ops: Ops, record_op: Callable[[], None], before: Callable[[], None]) -> None:
    with ops.record() as prog:
        record_op()
    before()
    ops.run(prog)


# ----------------------------------------------------------------------------------- cases
def matmul_case(typ_name: str, matrix: str, rows: int, width: int, seed: int) -> Case:
    typ = T[typ_name]
    qk, bs = (1, 2) if typ == T.F16 else GGML_QUANT_SIZES[typ]
    weight_bytes = rows * width // qk * bs

    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        rng = np.random.default_rng(seed)
        raw = random_weight(rng, typ, rows, width)
        x = rng.standard_normal((1, width)).astype(np.float32)
        Ws = [vk.weight(matrix, typ, (width, rows), raw) for _ in range(copies)]   # same bytes, own buffers
        xt, out = _tensor(vk, x), vk.tensor(1, rows)
        # the reference multiplies CHECK_ROWS rows (first, last and random ones) of the same bytes
        pick = np.arange(rows) if rows <= CHECK_ROWS else np.unique(np.concatenate(
            [[0, rows - 1], rng.choice(rows, CHECK_ROWS - 2, replace=False)]))
        x_ref = rng.standard_normal((1, width)).astype(np.float32) if wrong else x

        def want() -> np.ndarray:
            Wr = ref.weight(matrix, typ, (width, len(pick)), np.ascontiguousarray(raw[pick]))
            xr, o = _tensor(ref, x_ref), ref.tensor(1, len(pick))
            _run_once(ref, lambda: ref.matmul(o, Wr, xr), lambda: ref.set_step(1, 0))
            return ref.read(o)
        return Built(lambda i: vk.matmul(out, Ws[i % copies], xt), lambda: vk.set_step(1, 0),
                     lambda: vk.read(out)[:, pick], want)
    return Case(f"matmul_{typ_name.lower()}:{matrix}[{rows},{width}]", build, weight_bytes + 4 * (width + rows))


def attention_case(s: Shape, depth: int, seed: int) -> Case:
    kv_w, q_w = s.n_head_kv * s.head_dim, s.n_head * s.head_dim
    n_ctx = depth + 1

    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        rng = np.random.default_rng(seed)
        q = rng.standard_normal((1, q_w)).astype(np.float32)
        kc = rng.standard_normal((n_ctx, kv_w)).astype(np.float32)      # [n_ctx, n_kv_head * head_dim]
        vc = rng.standard_normal((n_ctx, kv_w)).astype(np.float32)
        scale = 1.0 / math.sqrt(s.head_dim)

        def make(ops: Ops, qv, n: int):        # n copies of the caches (each layer has its own)
            qt, out = _tensor(ops, qv), ops.tensor(1, q_w)
            kv = [(_tensor(ops, kc), _tensor(ops, vc)) for _ in range(n)]
            return out, lambda i: ops.attention(out, qt, *kv[i % n], s.n_head, s.n_head_kv, s.head_dim, scale)
        out, rec = make(vk, q, copies)

        def want() -> np.ndarray:
            o, r = make(ref, rng.standard_normal((1, q_w)).astype(np.float32) if wrong else q, 1)
            _run_once(ref, lambda: r(0), lambda: ref.set_step(1, depth))
            return ref.read(o)
        return Built(rec, lambda: vk.set_step(1, depth), lambda: vk.read(out), want)
    # K and V rows 0..depth (the new token's row included), q read, out written
    return Case(f"attention:depth={depth}[{s.n_head}/{s.n_head_kv}x{s.head_dim}]", build, 2 * n_ctx * kv_w * 4 + 2 * q_w * 4)


def rms_norm_case(s: Shape, seed: int) -> Case:
    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((1, s.n_embd)).astype(np.float32)
        w = rng.standard_normal(s.n_embd).astype(np.float32)

        def make(ops: Ops, xv):
            xt, out = _tensor(ops, xv), ops.tensor(1, s.n_embd)
            W = ops.weight("attn_norm", T.F32, (s.n_embd,), w)
            return out, lambda i=0: ops.rms_norm(out, xt, W, 1e-5)
        out, rec = make(vk, x)

        def want() -> np.ndarray:
            o, r = make(ref, x[:, ::-1].copy() if wrong else x)
            _run_once(ref, r, lambda: ref.set_step(1, 0))
            return ref.read(o)
        return Built(rec, lambda: vk.set_step(1, 0), lambda: vk.read(out), want)
    return Case(f"rms_norm:[1,{s.n_embd}]", build, 3 * s.n_embd * 4)


def add_rms_norm_case(s: Shape, seed: int) -> Case:
    """The residual add fused with the norm after it (x += d; out = rms_norm(x) * w): compare with
    rms_norm + the add it replaces.  Checked on both outputs, out and the updated x."""
    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((1, s.n_embd)).astype(np.float32)
        d = rng.standard_normal((1, s.n_embd)).astype(np.float32)
        w = rng.standard_normal(s.n_embd).astype(np.float32)

        def make(ops: Ops, xv):
            xt, dt, out = _tensor(ops, xv), _tensor(ops, d), ops.tensor(1, s.n_embd)
            W = ops.weight("ffn_norm", T.F32, (s.n_embd,), w)
            return (lambda: np.concatenate([ops.read(out), ops.read(xt)], axis=1),
                    lambda i=0: ops.add_rms_norm(xt, dt, out, W, 1e-5))
        got, rec = make(vk, x)

        def want() -> np.ndarray:
            g, r = make(ref, x[:, ::-1].copy() if wrong else x)
            _run_once(ref, r, lambda: ref.set_step(1, 0))
            return g()
        return Built(rec, lambda: vk.set_step(1, 0), got, want)
    return Case(f"add_rms_norm:[1,{s.n_embd}]", build, 5 * s.n_embd * 4)


def rope_case(s: Shape, seed: int) -> Case:
    width = s.n_head * s.head_dim
    pos = 1000

    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((1, width)).astype(np.float32)

        def make(ops: Ops):
            xt = _tensor(ops, x)
            return xt, lambda i=0: ops.rope(xt, s.n_head, s.head_dim, s.head_dim, 500000.0, False)
        xt, rec = make(vk)

        def want() -> np.ndarray:
            xr, r = make(ref)
            _run_once(ref, r, lambda: ref.set_step(1, pos + 1 if wrong else pos))
            return ref.read(xr)
        return Built(rec, lambda: vk.set_step(1, pos), lambda: vk.read(xt), want)
    return Case(f"rope:q[1,{width}]={s.n_head}x{s.head_dim}", build, 2 * width * 4)


SAMPLING = {"greedy": (0.0, 40, 0.4, 0.0, 1.0), "sdk": (0.7, 40, 0.4, 0.0, 1.18)}   # temp, k, p, min_p, penalty


def sample_case(s: Shape, kind: str, seed: int) -> Case:
    temp, top_k, top_p, min_p, penalty = SAMPLING[kind]
    n_hist = 64

    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        rng = np.random.default_rng(seed)
        logits = (rng.standard_normal((1, s.n_vocab)) * 3).astype(np.float32)
        history = rng.integers(0, s.n_vocab, size=n_hist).astype(np.int32)
        history[:4] = np.argsort(-logits[0])[:4]            # penalise some of the likeliest tokens

        def make(ops: Ops, lv):
            lt, ht, tok = _tensor(ops, lv), _tensor(ops, history, "i32"), ops.tensor(1, 1, "i32")
            before = lambda: (ops.set_step(1, 0),                                     # noqa: E731
                              ops.set_sampling(temp, top_k, top_p, min_p, penalty, 64, [0.37], n_hist))
            return tok, (lambda i=0: ops.sample(tok, lt, ht)), before
        tok, rec, before = make(vk, logits)

        def want() -> np.ndarray:
            t, r, b = make(ref, -logits if wrong else logits)
            _run_once(ref, r, b)
            return ref.read(t)
        return Built(rec, before, lambda: vk.read(tok), want)
    return Case(f"sample:{kind}[vocab={s.n_vocab}]", build, s.n_vocab * 4, exact=True)


def dispatch_case(dependent: bool) -> Case:
    """Trivial dispatches (scale of 8 floats).  Dependent: each scales one buffer in place, so the
    backend puts a barrier before each.  Independent: each reads x and writes the next of 64 output
    buffers, so only every 64th needs a barrier (when an output is written again)."""
    def build(vk: Ops, ref: Ops, wrong: bool, copies: int) -> Built:
        x = np.arange(8, dtype=np.float32).reshape(1, 8)
        xt = _tensor(vk, x)
        outs = [vk.tensor(1, 8) for _ in range(64)]
        k = [0]

        def rec(i):
            if dependent:
                vk.scale(xt, xt, 1.0)                   # in place: reads what the last one wrote
            else:
                vk.scale(outs[k[0] % 64], xt, 0.5)      # a different output each time, x only read
                k[0] += 1

        def want() -> np.ndarray:
            xr = _tensor(ref, x)
            o = ref.tensor(1, 8)
            _run_once(ref, lambda: ref.scale(o, xr, 1.0 if dependent else 0.5), lambda: ref.set_step(1, 0))
            return ref.read(o) + (1.0 if wrong else 0.0)
        got = (lambda: vk.read(xt)) if dependent else (lambda: vk.read(outs[0]))
        return Built(rec, lambda: vk.set_step(1, 0), got, want)
    return Case(f"dispatch:{'dependent' if dependent else 'independent'}", build, 0)


def build_cases(shape: Shape) -> list[Case]:
    cases = []
    for i, typ in enumerate(MATMUL_TYPES):
        for j, (name, (rows, width)) in enumerate(shape.matrices().items()):
            if width % (256 if typ in ("Q4_K", "Q6_K") else 32):
                continue
            cases.append(matmul_case(typ, name, rows, width, seed=100 + 10 * i + j))
    cases += [attention_case(shape, d, seed=200 + d) for d in shape.depths]
    cases += [rms_norm_case(shape, 300), add_rms_norm_case(shape, 304), rope_case(shape, 301),
              sample_case(shape, "greedy", 302), sample_case(shape, "sdk", 303),
              dispatch_case(True), dispatch_case(False)]
    return cases


# ----------------------------------------------------------------------------------- running
def _time_program(vk: Ops, prog, before: Callable[[], None], runs: int) -> float:
    """Seconds of the fastest of ``runs`` runs (after one warm-up run)."""
    before()
    vk.run(prog)
    best = float("inf")
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        vk.run(prog)
        best = min(best, time.perf_counter() - t0)
    return best


def run_case(case: Case, vk: Ops, ref: Ops, reps: int, runs: int, wrong_reference: bool = False,
             matvec: str = "", rotate_bytes: int = 256 << 20) -> Result:
    copies = min(reps, -(-rotate_bytes // case.bytes_moved)) if case.bytes_moved else 1
    b = case.build(vk, ref, wrong_reference, copies)
    # correctness: one run of the op (copy 0), recorded as a model records it
    _run_once(vk, lambda: b.record_op(0), b.before_run)
    got, want = b.got(), b.want()
    if case.exact:
        err = float(not np.array_equal(got, want))
        ok, detail = err == 0.0, "" if err == 0.0 else f"got {got.ravel()[:4]} want {want.ravel()[:4]}"
    else:
        err = nmse(got, want)
        ok = bool(np.isfinite(got).all()) and err <= NMSE_TOL
        detail = "" if ok else f"NMSE {err:.2e} > {NMSE_TOL:.0e}"
    # speed: 1 op and reps ops in one program each
    with vk.record() as p1:
        b.record_op(0)
    with vk.record() as pn:
        for i in range(reps):
            b.record_op(i)
    t1 = _time_program(vk, p1, b.before_run, runs)
    tn = _time_program(vk, pn, b.before_run, runs)
    per_op = (tn - t1) / (reps - 1)
    if per_op <= 0:                  # the reps ops took no longer than one: noise (a loaded CPU device)
        per_op = float("nan")
        detail = (detail + "; " if detail else "") + "time below the noise: raise --reps / --runs"
    gbs = case.bytes_moved / per_op / 1e9 if case.bytes_moved else 0.0
    return Result(case.name, ok, err, per_op * 1e6, gbs, len(pn) / reps, t1 * 1e3, case.bytes_moved,
                  copies, matvec, detail)


def make_vulkan(device: str, matvec: str = ""):
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import VulkanOps
    return VulkanOps(choose(device), matvec=matvec or None)


def release(vk, bytes_before: int) -> None:
    """Drop the cached pipelines (which hold the case's buffers, the last references to them) so the
    buffers are freed, and give their bytes back to the backend's allocation count (check_fits)."""
    vk._algos.clear()
    gc.collect()
    vk.bytes_allocated = bytes_before


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--device", default="kompute", help="device string, as engine.load's (default: kompute)")
    ap.add_argument("--shape", default="llama-3.2-1b", choices=sorted(SHAPES))
    ap.add_argument("--ops", default="", help="comma-separated substrings of case names (default: all)")
    ap.add_argument("--reps", type=int, default=20, help="ops recorded into the timed program (default 20)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each program; the fastest counts (default 3)")
    ap.add_argument("--matvec", default="", help="decode mat-vec kernel(s), comma-separated: v1, v2, "
                    "v2:NRxWG (rows per workgroup x threads; default: the backend's).  After the first, only "
                    "the Q4_0 / Q8_0 / Q4_K / Q6_K mat-vecs run again (nothing else depends on it)")
    ap.add_argument("--rotate-mib", type=int, default=256, help="bytes of weight / K-V copies the "
                    "repetitions cycle through, so they stream from memory, not from cache (default 256)")
    ap.add_argument("--json", help="also write the results as JSON to this file ('-': stdout)")
    ap.add_argument("--wrong-reference", action="store_true",
                    help="feed the reference wrong inputs: every check must FAIL (tests the checker)")
    args = ap.parse_args(argv)
    if args.reps < 2:
        ap.error("--reps must be >= 2 (the time per op is (t_reps - t_1) / (reps - 1))")
    from engine.backends.numpy_ops import NumpyOps
    shape = SHAPES[args.shape]
    wanted = [w for w in args.ops.split(",") if w]
    cases = [c for c in build_cases(shape) if not wanted or any(w in c.name for w in wanted)]
    if not cases:
        print(f"no case matches --ops {args.ops!r}", file=sys.stderr)
        return 2
    matvecs = [m for m in args.matvec.split(",") if m] or [""]
    results: list[Result] = []
    out = sys.stderr if args.json == "-" else sys.stdout
    vk = None
    for mv in matvecs:
        vk = make_vulkan(args.device, mv)
        mv_name = str(vk.matvec_kernel)
        print(f"device: {vk.device_name} ({vk.info.vendor} {vk.info.type}, subgroup {vk.info.subgroup_size}, "
              f"{'subgroup' if vk.subgroups else 'shared-memory'} reductions, sample {vk.sample_kernel} "
              f"(workgroup {vk.sample_wg}), "
              f"{'global' if vk.global_barriers else 'stock kp'} barriers); "
              f"shape {args.shape}; {args.reps} ops per timed program, best of {args.runs}"
              + (f"; matvec {mv_name}" if mv_name else ""), file=out)
        print(f"{'case':48s} {'check':>5s} {'error':>9s} {'us/op':>10s} {'GB/s':>8s} {'disp/op':>7s} "
              f"{'1-op ms':>8s}", file=out)
        for c in cases:
            if mv != matvecs[0] and not c.name.startswith(SPLIT_MATMULS):
                continue                 # only these mat-vecs depend on the mat-vec choice
            ref = NumpyOps()
            bytes_before = vk.bytes_allocated
            try:
                r = run_case(c, vk, ref, args.reps, args.runs, args.wrong_reference, mv_name,
                             args.rotate_mib << 20)
            except Exception as e:       # one broken kernel must not hide the others
                r = Result(c.name, False, float("nan"), float("nan"), float("nan"), 0, float("nan"), 0,
                           0, mv_name, f"{type(e).__name__}: {e}")
            results.append(r)
            print(f"{r.name[:48]:48s} {'OK' if r.ok else 'FAIL':>5s} {r.error:9.2e} {r.us_per_op:10.1f} "
                  f"{r.gb_s:8.2f} {r.dispatches_per_op:7.1f} {r.round_trip_ms:8.2f}"
                  + (f"  {r.detail}" if r.detail else ""), file=out, flush=True)
            del ref
            release(vk, bytes_before)
    n_bad = sum(not r.ok for r in results)
    print(f"{len(results) - n_bad}/{len(results)} checks passed on {vk.device_name}", file=out)
    if args.json:
        doc = {"device": vk.device_name, "device_type": vk.info.type, "subgroup_size": vk.info.subgroup_size,
               "subgroup_reductions": vk.subgroups, "sample_wg": vk.sample_wg, "sample_kernel": str(vk.sample_kernel), "shape": args.shape,
               "shape_sizes": asdict(shape), "reps": args.reps, "runs": args.runs,
               "results": [asdict(r) for r in results]}
        text = json.dumps(doc, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
