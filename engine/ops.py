"""The op interface: the one seam between model files and backends.

A model file (engine/models/*.py) describes a forward pass as a list of calls on an
``Ops`` object.  It never touches NumPy arrays or GPU buffers directly, so the same
forward pass runs on every backend:

    NumPy  (engine/backends/numpy_ops.py)  - the reference; every GPU kernel is checked against it
    Vulkan (engine/backends/vulkan_ops.py) - GLSL compute shaders through Kompute (kp)
    CUDA / Metal                            - later, behind the same methods

Programs, not eager calls
-------------------------
Ops are *recorded*, then *run*:

    with ops.record() as prog:          # model code calls ops.matmul(...), ops.rope(...), ...
        model.forward(ops, state)
    ops.set_step(n_tokens=1, pos=17)    # per-step values go into a small host-written buffer
    ops.run(prog)                       # run the whole recorded pass (again and again)

The Vulkan backend records every call into one kp.Sequence once and re-submits it for
each token (never re-recording); the NumPy backend records Python closures.  Because a
program is replayed, no op may capture per-step values at record time: positions and
token counts are read at run time from the step buffer (``ops.set_step``), sampling
parameters from the sampling buffer (``ops.set_sampling``).

Buffers and shapes
------------------
Activation buffers are 2-D float32 ``[rows, width]`` made by ``ops.tensor``.  ``rows`` is
a *capacity* (the largest batch a program handles); each op processes only the first
min(n_tokens, rows of its output) rows, n_tokens read from the step buffer at run time (so a
prompt program can run the LM head on a one-row buffer holding just the last position).  KV-cache buffers are
``[n_ctx, n_kv_head * head_dim]`` and are indexed by absolute position.  Weights are
uploaded once by ``ops.weight`` from a GGUF tensor and keep their quantised type; a
weight of GGUF shape ``(ne0=in, ne1=out)`` is used as the matrix ``W[out, in]``.

All ops write into an ``out`` buffer the caller allocated; ``out`` may alias an input
only where the docstring says so.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np

# Layout of the int32 step buffer written by Ops.set_step (host -> device each step).
STEP_N_TOKENS = 0   # rows of this batch that are real (<= the program's capacity)
STEP_POS = 1        # absolute position of row 0 in the sequence (= tokens already in the KV cache)
STEP_N_KV = 2       # pos + n_tokens: KV entries visible to the last row
STEP_N_HISTORY = 3  # decode: valid entries in the penalty's history buffer (newest last); advance moves it on
STEP_SIZE = 8

# Layout of the float32 sampling buffer written by Ops.set_sampling.
SAMPLE_TEMP = 0
SAMPLE_TOP_K = 1            # <= 0 or >= n_vocab: no top-k cut
SAMPLE_TOP_P = 2
SAMPLE_MIN_P = 3
SAMPLE_REPEAT_PENALTY = 4
SAMPLE_REPEAT_LAST_N = 5    # how many of the newest history entries the penalty looks at
SAMPLE_UNIFORMS = 8         # then one random number in [0, 1) per decode slot: slot i draws with [8 + i]
MAX_DECODE_STEPS = 32       # most decode steps one program may record
# slots of a decode program: 0.. or, for the second of two chunks in flight at once, MAX_DECODE_STEPS..
# (engine/llm.py: the host writes one chunk's uniforms while the GPU still reads the other's)
DECODE_SLOT_SETS = 2
SAMPLE_SIZE = SAMPLE_UNIFORMS + DECODE_SLOT_SETS * MAX_DECODE_STEPS


@dataclass
class Tensor:
    """A backend buffer of shape ``[rows, width]`` (float32 unless ``dtype`` says int32)."""
    rows: int
    width: int
    dtype: str = "f32"      # 'f32' | 'i32'
    name: str = ""
    handle: Any = None      # the backend's own object (np.ndarray, kp.Tensor, ...)


@dataclass
class Weight:
    """A model weight on the backend: GGUF type kept, shape ``[rows=out, width=in]``.

    1-D GGUF tensors (norm weights, biases) have rows == 1.
    """
    rows: int
    width: int
    ggml_type: int          # gguf.GGMLQuantizationType value
    name: str = ""
    handle: Any = None


class Program:
    """A recorded list of ops; run it with ``Ops.run``.  Backends subclass it."""


class Ops(ABC):
    """What every backend implements.  See the module docstring for the contract."""

    name: str = "abstract"      # 'cpu' | 'kompute' | 'cuda' | 'metal': the SDK's `backend`
    device_name: Optional[str] = None

    # ---------------------------------------------------------------- memory
    @abstractmethod
    def tensor(self, rows: int, width: int, dtype: str = "f32", name: str = "") -> Tensor:
        """A zero-filled buffer [rows, width]."""

    @abstractmethod
    def weight(self, name: str, ggml_type: int, shape: Sequence[int], raw: np.ndarray) -> Weight:
        """Upload one GGUF tensor.  ``shape`` is GGUF order (ne0, ne1, ...); ``raw`` its bytes (uint8)
        or its elements (f32/f16), exactly as gguf.GGUFReader returns ``tensor.data``."""

    @abstractmethod
    def write(self, t: Tensor, values: np.ndarray, row: int = 0) -> None:
        """Copy host values into rows ``row..`` of ``t`` now (outside any program)."""

    @abstractmethod
    def read(self, t: Tensor, rows: Optional[int] = None) -> np.ndarray:
        """Copy the first ``rows`` rows (default all) of ``t`` back to the host now."""

    # ---------------------------------------------------------------- programs
    @abstractmethod
    @contextmanager
    def record(self, resume: bool = False) -> Iterator[Program]:
        """Collect every op called inside the ``with`` block into a Program.  ``resume``: a decode program
        that carries on from where the previous one left the device (step, ids, history and the number of
        history entries, which ``advance`` moves on there): running it takes nothing from the host but the
        uniforms of its slots, so it may be started while that previous program still runs (start())."""

    @abstractmethod
    def run(self, program: Program) -> None:
        """Execute a recorded program (after set_step / set_sampling) and wait for it."""

    # A backend whose programs run asynchronously (a GPU) sets this: engine/llm.py then starts the next decode
    # chunk (a ``resume`` program) before it waits for the current one, so the device never idles while the
    # host hands out tokens and submits (~0.9 ms per chunk measured on an H100).
    overlaps_programs = False

    def start(self, program: Program) -> None:
        """Begin running ``program``; finish() waits for it.  Here: run it to the end now."""
        self.run(program)

    def finish(self, program: Program) -> None:
        """Wait until ``program``, begun by start(), has run (nothing to wait for here)."""

    # The step and sampling buffers: every backend exposes them as writable host arrays, ``self.step``
    # (int32 [STEP_SIZE]) and ``self.sampling`` (float32 [SAMPLE_SIZE]), that its programs read at run time.
    step: np.ndarray
    sampling: np.ndarray

    def set_step(self, n_tokens: int, pos: int) -> None:
        """Write the step buffer (STEP_*) read by the next run."""
        self.step[STEP_N_TOKENS] = n_tokens
        self.step[STEP_POS] = pos
        self.step[STEP_N_KV] = pos + n_tokens

    def set_sampling(self, temp: float, top_k: int, top_p: float, min_p: float,
                     repeat_penalty: float, repeat_last_n: int, uniforms: Sequence[float],
                     n_history: int) -> None:
        """Write the sampling buffer (SAMPLE_*) read by ``sample`` in the next run."""
        s = self.sampling
        s[SAMPLE_TEMP], s[SAMPLE_TOP_K], s[SAMPLE_TOP_P], s[SAMPLE_MIN_P] = temp, top_k, top_p, min_p
        s[SAMPLE_REPEAT_PENALTY], s[SAMPLE_REPEAT_LAST_N] = repeat_penalty, repeat_last_n
        self.step[STEP_N_HISTORY] = n_history   # device state like the position: advance() moves it on
        self.set_uniforms(uniforms)

    def set_uniforms(self, uniforms: Sequence[float], first_slot: int = 0) -> None:
        """The random numbers of decode slots first_slot, first_slot + 1, ... (SAMPLE_UNIFORMS)."""
        uniforms = list(uniforms)[:MAX_DECODE_STEPS]
        at = SAMPLE_UNIFORMS + first_slot
        self.sampling[at:at + len(uniforms)] = uniforms

    # ---------------------------------------------------------------- ops
    # Every op below processes rows [0, n_tokens) of its row-wise operands.

    @abstractmethod
    def get_rows(self, out: Tensor, table: Weight, ids: Tensor) -> None:
        """out[t, :] = dequant(table[ids[t, 0], :])  (embedding lookup; ids is i32 [rows, 1])."""

    @abstractmethod
    def rms_norm(self, out: Tensor, x: Tensor, weight: Optional[Weight], eps: float,
                 group: int = 0) -> None:
        """Each contiguous group of ``group`` values (default: the whole row) of x is scaled to unit RMS,
        then multiplied by ``weight`` (width == group), if given.  out may alias x."""

    def add_rms_norm(self, x: Tensor, delta: Tensor, out: Tensor, weight: Optional[Weight], eps: float) -> None:
        """x += delta (x is the residual stream, updated in place), then out = rms_norm(x) * weight as
        ``rms_norm`` over whole rows.  A decoder adds each branch back to the residual stream and
        normalises it straight away for the next branch; as one op a backend can do both in one pass
        (one dispatch and one barrier fewer per pair on a GPU).  out may alias delta, not x.
        This default is the two ops, so every backend has it."""
        self.add(x, x, delta)
        self.rms_norm(out, x, weight, eps)

    @abstractmethod
    def layer_norm(self, out: Tensor, x: Tensor, weight: Optional[Weight], bias: Optional[Weight],
                   eps: float) -> None:
        """Row-wise (x - mean) / sqrt(var + eps) * weight + bias.  out may alias x."""

    @abstractmethod
    def matmul(self, out: Tensor, w: Weight, x: Tensor, bias: Optional[Weight] = None,
               w_row0: int = 0, out_col0: int = 0, n_out: int = 0, *,
               norm: Optional[Weight] = None, eps: float = 0.0, accumulate: bool = False) -> None:
        """out[t, out_col0 + j] = sum_k W[w_row0 + j, k] * x[t, k] (+ bias[w_row0 + j]) for j < n_out
        (default n_out: all of W's rows).  The row window lets fused weights (phi3's QKV,
        gate-up) be split without copies.
        ``norm``: x is used as rms_norm(x) * norm (whole rows, ``eps``), a pre-norm folded into the
        product: a decoder normalises the residual stream only to multiply it straight away, and on a
        GPU each mat-vec workgroup can compute that row's RMS itself (one dispatch and barrier fewer).
        ``accumulate``: out += the product instead of out = it (a residual branch added back to the
        stream by its last mat-vec).  out may not alias x."""

    def matmul_glu(self, out: Tensor, w_gate: Weight, w_up: Weight, x: Tensor, kind: str, *,
                   norm: Optional[Weight] = None, eps: float = 0.0) -> None:
        """out = act(x @ W_gate^T) * (x @ W_up^T), act as ``glu`` (kind 'silu' or 'gelu'), x pre-normed as
        in ``matmul``: a gated feed-forward's first half.  A backend may do it in one pass (both dot
        products of a row in one workgroup); this default is the three ops, over a scratch buffer."""
        up = self.scratch(out.rows, out.width, "glu_up")
        self.matmul(out, w_gate, x, norm=norm, eps=eps)
        self.matmul(up, w_up, x, norm=norm, eps=eps)
        self.glu(out, out, up, kind)

    def matmul_stack(self, outs: Sequence[Tensor], weights: Sequence[Weight], x: Tensor,
                     biases: Optional[Sequence[Optional[Weight]]] = None, *,
                     norm: Optional[Weight] = None, eps: float = 0.0) -> None:
        """outs[i] = x @ weights[i]^T (+ biases[i]) for every i, x pre-normed as in ``matmul``: several
        matmuls of one input (attention's q, k and v).  A backend may do them in one pass over the weights
        stacked; this default is one matmul each."""
        for i, (out, w) in enumerate(zip(outs, weights)):
            self.matmul(out, w, x, bias=biases[i] if biases else None, norm=norm, eps=eps)

    def rope_qkv(self, q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, n_head: int,
                 n_kv_head: int, head_dim: int, n_rot: int, freq_base: float, neox: bool,
                 freq_scale: float = 1.0, freq_factors: Optional[Weight] = None) -> None:
        """What a decoder layer does between its q/k/v matmuls and attention: ``rope`` q in place,
        k rotated into k_cache rows pos + t, v copied into v_cache rows pos + t.  A backend may do it in
        one pass; this default is the three ops."""
        rope = dict(n_rot=n_rot, freq_base=freq_base, neox=neox, freq_scale=freq_scale, freq_factors=freq_factors)
        self.rope(q, n_head, head_dim, **rope)
        self.rope(k, n_kv_head, head_dim, **rope, cache=k_cache)
        self.store_kv(v_cache, v)

    def scratch(self, rows: int, width: int, purpose: str) -> Tensor:
        """A backend-owned f32 buffer [rows, width] for ``purpose``, made on first use and shared by every
        op and program asking for the same (purpose, shape); programs run one at a time and each use is
        recorded in order, so sharing is safe."""
        pool = self.__dict__.setdefault("_scratch_tensors", {})
        key = (purpose, rows, width)
        if key not in pool:
            pool[key] = self.tensor(rows, width, name=f"scratch:{purpose}")
        return pool[key]

    @abstractmethod
    def rope(self, x: Tensor, n_head: int, head_dim: int, n_rot: int, freq_base: float,
             neox: bool, freq_scale: float = 1.0, freq_factors: Optional[Weight] = None,
             positions: Optional[Tensor] = None, cache: Optional[Tensor] = None) -> None:
        """Rotate, in place, the first ``n_rot`` dims of each head of row t by angle
        p_t * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i], where p_t = pos + t, or
        p_t = positions[t, 0] when ``positions`` (i32 [rows, 1]) is given: several sequences packed
        into one batch (nomic-bert embeddings) each start again at position 0.
        neox=False pairs dims (2i, 2i+1) (llama's GGUF layout); neox=True pairs (i, i + n_rot/2).
        ``cache`` (a KV-cache buffer, not with ``positions``): x is left as it is and the rotated rows go
        to cache rows pos + t instead, as ``store_kv`` would put them: rope and the store of K in one op."""

    @abstractmethod
    def store_kv(self, cache: Tensor, src: Tensor) -> None:
        """cache[pos + t, :] = src[t, :]  (pos from the step buffer)."""

    @abstractmethod
    def attention(self, out: Tensor, q: Tensor, k_cache: Tensor, v_cache: Tensor,
                  n_head: int, n_kv_head: int, head_dim: int, scale: float,
                  causal: bool = True, window: int = 0, softcap: float = 0.0,
                  seq_ids: Optional[Tensor] = None) -> None:
        """Multi-head attention with grouped KV heads (head h reads kv head h // (n_head // n_kv_head)).
        Query row t sits at position p = pos + t and sees cache rows j with j <= p (causal) and, when
        window > 0, p - j < window.  Non-causal (BERT): row t sees rows [0, n_tokens) of k/v, which
        then hold the batch itself; with ``seq_ids`` (i32 [rows, 1]) row t sees only rows of its own sequence,
        so several embedding chunks share one batch.  softcap > 0: scores = softcap * tanh(scores / softcap)."""

    @abstractmethod
    def add(self, out: Tensor, a: Tensor, b: Tensor) -> None:
        """out = a + b (element-wise).  out may alias a or b."""

    @abstractmethod
    def add_weight(self, out: Tensor, a: Tensor, w: Weight) -> None:
        """out[t, :] = a[t, :] + w[0, :]  (bias or a broadcast row, e.g. BERT's position/type rows)."""

    @abstractmethod
    def scale(self, out: Tensor, x: Tensor, s: float) -> None:
        """out = x * s.  out may alias x."""

    @abstractmethod
    def mul_weight(self, out: Tensor, x: Tensor, w: Weight) -> None:
        """out[t, :] = x[t, :] * w[0, :].  out may alias x."""

    @abstractmethod
    def glu(self, out: Tensor, gate: Tensor, up: Tensor, kind: str) -> None:
        """out = act(gate) * up with kind 'silu' (SwiGLU) or 'gelu' (GeGLU, tanh approximation)."""

    @abstractmethod
    def gelu(self, out: Tensor, x: Tensor) -> None:
        """out = gelu(x), tanh approximation (as ggml)."""

    @abstractmethod
    def softmax(self, out: Tensor, x: Tensor) -> None:
        """Row-wise softmax (for the op harness and for logits to probabilities)."""

    @abstractmethod
    def copy_rows(self, out: Tensor, x: Tensor, src_row: int = -1, n_rows: int = 1) -> None:
        """out[0:n_rows] = x[r:r + n_rows] with r = src_row, or r = n_tokens + src_row when negative
        (so -1 picks the last real row: only it needs the LM head during prompt processing)."""

    @abstractmethod
    def mean_pool(self, out: Tensor, x: Tensor, seq_starts: Tensor, n_seqs: int) -> None:
        """out[s, :] = mean of x rows [seq_starts[s], seq_starts[s + 1]) for s < n_seqs
        (seq_starts is i32 [n_seqs + 1, 1]); embedding models pool several chunks per batch."""

    @abstractmethod
    def l2_normalize(self, out: Tensor, x: Tensor, n_rows: int) -> None:
        """out[r] = x[r] / max(||x[r]||, 1e-12) for r < n_rows.  out may alias x."""

    @abstractmethod
    def sample(self, out_token: Tensor, logits: Tensor, history: Tensor, slot: int = 0) -> None:
        """One token id from logits row 0 into out_token[slot, 0] (i32), with llama.cpp's semantics and the
        sampling buffer's parameters: repeat penalty over the last repeat_last_n entries of ``history``
        (i32 [cap, 1], newest at n_history - 1; logit > 0 divided, else multiplied), then greedy when
        temp <= 0 or top_k == 1, else top_k -> top_p -> min_p -> temperature -> softmax -> the draw
        that picks the first token whose cumulative probability exceeds the slot's uniform."""

    @abstractmethod
    def advance(self, ids: Tensor, tokens: Tensor, history: Tensor, slot: int = 0) -> None:
        """Feed a sampled token back for the next decode step, entirely on the device, so several decode
        steps can be recorded into one program (one submission, one read of k token ids):
        with t = tokens[slot, 0] (the id ``sample`` wrote): ids[0, 0] = t; history[n_history, 0] = t; then in
        the step buffer pos += n_tokens, n_tokens = 1, n_kv = pos + 1, and in the sampling buffer
        n_history += 1.  A k-step program records k x (forward, sample(slot=i), advance(slot=i)) and the host
        reads tokens[0:k] once; it stops at EOS / max_tokens / callback between such chunks."""
