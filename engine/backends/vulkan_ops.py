"""The Vulkan backend: every op of engine/ops.py as a GLSL compute shader, run through Kompute (kp).

How a forward pass runs
-----------------------
``record()`` collects the model's op calls; each becomes one dispatch (its push constants given per
dispatch) of a ``kp.Algorithm`` (a pipeline with its buffers bound), inside one ``kp.Sequence``;
algorithms are shared by every dispatch of the same shader on the same buffers (``_algorithm``).
``run()`` re-submits that sequence with ``eval()``: nothing is re-recorded per token.  What changes
per step lives in small buffers the host writes through views of their staging memory, copied to
the device by the program's first (recorded) op and back by its last: the step buffer (n_tokens,
pos, n_kv; binding 0 of every shader), the sampling buffer and every i32 tensor the program binds
(token ids, sampled tokens, history: see ``write``), so a decode chunk is a single submission.
Dispatches are sized for a buffer's row *capacity* and each shader skips the rows >= n_tokens.

kp 0.9 records, before each dispatch, only a transfer->compute barrier, so two dispatches in one
sequence are not ordered on a real GPU.  Where a dispatch depends on an earlier one we therefore record
a barrier.  With kp built by tools/setup.sh (patched by tools/kp_patch.py) that is one global memory
barrier, ``kp.OpGlobalBarrier``, and kp's own per-tensor barriers are left out of recorded programs
(``kp.set_dispatch_barriers``).  With a stock kp it is an ``OpTensorSyncLocal`` of a 4-byte device
tensor: its compute->transfer barrier followed by the next dispatch's transfer->compute barrier chains
every earlier dispatch before the next one, at the price of a copy to host memory (on an H100 a
dependent trivial dispatch cost ~19 us that way).  GPT4ALL_KP_BARRIERS=kp forces the stock scheme.

Weights
-------
``weight()`` repacks each GGUF tensor into 32-bit words (kp enables no 8/16-bit storage feature):
blocks whose size is not a multiple of 4 bytes get 2 bytes of padding so every field is word
aligned (see shaders/dequant.glsl), F32/F16 rows are padded to a multiple of 8 values.  The words
go to device-local memory (a kp *storage* tensor, filled by a GPU copy from a temporary host
buffer).  A weight larger than the device's maxStorageBufferRange is split into row chunks
(gemma3's 178 MB Q8_0 token_embd, which is also its tied LM head); get_rows and matmul issue one
dispatch per chunk.  1-D weights (norms, biases, rope factors) are dequantised to F32 at upload.

With the v2 mat-vec (``matvec='v2'``, the default; GPT4ALL_MATVEC=v1 selects the old kernel) Q4_0,
Q8_0, Q4_K and Q6_K matrices are stored in a *split* layout instead (``repack_split``): per row chunk a 16-byte
header, the blocks' quants as 16-byte vectors, then their f16 scales, with no padding.
shaders/matmul_vec.comp reads it for one-row (decode) matmuls at 16 bytes per load; every other
typed kernel reads it through the same dequant8v interface (shaders/quants/<type>_split.glsl).
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import kp
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize as gguf_dequantize

from ..ops import SAMPLE_SIZE, STEP_SIZE, Ops, Program, Tensor, Weight
from .vulkan_device import COOPMAT_EXTENSIONS, INTEGER_DOT_EXTENSION, GpuInfo, check_fits, choose

SPV_DIR = Path(__file__).resolve().parent.parent / "spv"
WG = 64                     # WG_SIZE of most shaders (shaders/common.glsl)
MATMUL_NR = 16              # weight rows per workgroup pass of matmul.comp (mat-vec)
MATMUL_NR_BATCH = 8         # ... of the batched variant
MATMUL_NT = 4               # x rows per workgroup of the batched matmul (matmul.comp, BATCH)
ROW_GROUPS = 8              # workgroups along the row dimension of row-wise ops on a CPU device
GPU_ROW_GROUPS = 65535      # ... on a GPU: one per row (up to Vulkan's guaranteed grid size)
GEMM_TARGET_GROUPS = 512    # workgroups a batched matmul on a GPU should launch; fewer tiles split K (H100: 132 SMs)
GEMM_MIN_SPLIT_STEPS = 8    # K steps (of 32 weights) per part of a split K, at least
MATMUL_TILE_GROUPS = 4      # workgroups along the NT-row tiles of the batched matmul
GEMM_BM = 64                # weight rows per workgroup tile of the tiled GEMM (shaders/matmul_tiled.comp BM)
GEMM_BN = 64                # x rows per workgroup tile of the tiled GEMM (BN)
COOPMAT_BM = 128            # weight rows per workgroup tile of its tensor-core variant (-DCOOPMAT's BM; BN the same)
COOPMAT_WIDE_BN = 128       # x rows per tile of the wide tensor-core variant (GPT4ALL_GEMM=coopmat_wide, 256 threads)
COOPMAT_SHAPE = (16, 8, 16)  # the (M, N, K) cooperative matrices it is built for (CM_M, CM_N, CM_K)
# the tiled GEMMs (GPT4ALL_GEMM, batches on a GPU): shader prefix, weight rows and x rows per workgroup tile
GEMM_TILES = {"tiled": ("tiled_", GEMM_BM, GEMM_BN), "coopmat": ("tiled_cm_", COOPMAT_BM, GEMM_BN),
              "coopmat_wide": ("tiled_cmw_", COOPMAT_BM, COOPMAT_WIDE_BN)}
# the GEMMs with a -DGLU build (Ops.matmul_glu of a batch in one dispatch over the stacked gate / up weight)
GLU_GEMMS = ("coopmat_wide",)
ATTENTION_SPLITS = 16       # key slices per head for a decode step's attention on a GPU
ATTENTION_MAX_SPLITS = 1024 # shaders/attention_merge.comp MAX_SPLITS (its shared arrays)
ATTENTION_DECODE_HEADS = 8  # query heads per workgroup of the split path's kernel (GMAX, shaders/attention_decode.comp)
ATTENTION_DECODE_LANES = 8  # threads per key row in that kernel (its LK): subgroups of fewer take its portable build
ATTENTION_DECODE_MAX_DIM = 256  # largest head_dim of that kernel (8 vec4s per lane)
ATTENTION_PROMPT_MAX_DIM = 256  # largest head_dim of the tiled prompt kernel (shaders/attention_prompt.comp)
ATTENTION_PROMPT_CM_DIMS = (64, 128)   # head_dims with a tensor-core build (attention_prompt_cm_d<HD>.spv)
ATTENTION_PROMPT_CM_SLOTS = 64  # query slots per workgroup of attention_prompt_cm.comp (BR: 16 per subgroup of 4)


def _attention_cm_shared_bytes(head_dim: int) -> int:
    """Shared memory of attention_prompt_cm.comp's build for head_dim: q_h, k_h, v_h (rows of head_dim / 2 + 4
    uints), s_sh, p_h and common.glsl's red_buf (128 threads, 4 subgroups of 32, tiles of 32 keys)."""
    row = head_dim // 2 + 4
    return 4 * ((ATTENTION_PROMPT_CM_SLOTS + 2 * 32) * row + 4 * 16 * 32 + 4 * 16 * 20 + 128)


CPU_MATMUL_GROUPS = 64      # matmul workgroups on a CPU Vulkan device (see _matmul_groups)
MAX_GROUPS_X = 32768        # split large dispatches over x and y (Vulkan guarantees >= 65535)
DEFAULT_MATVEC = "v2"       # decode mat-vec kernel on a CPU device (see MatvecKernel; docs/vulkan.md)
# ... on a GPU: v3 (Q4_0 in the tile layout where rows allow, v2's split layouts elsewhere), 4 rows x 128
# threads per workgroup: on an H100, Llama-3-8B shape 244.6 tok/s against 235.3 (v3:2x128) and 225.4
# (v2:2x128, the previous default); 1B shape 711.5 / 736.0 / 681.7 (docs/performance.md, PART=tune)
DEFAULT_MATVEC_GPU = "v3:4x128"
# a mat-vec of fewer rows than this many workgroups x NR takes NR / 2 rows per workgroup (VulkanOps._matvec_nr)
MATVEC_MIN_GROUPS = 1024


@dataclass(frozen=True)
class Layout:
    """How one GGUF type is stored on the GPU (must match shaders/quants/<type>.glsl)."""
    shader: str             # the variant suffix: matmul_<shader>
    qk: int                 # values per block
    words: int              # 32-bit words per repacked block
    pad_at: int = -1        # byte offset where 2 padding bytes are inserted (-1: none)
    split: bool = False     # split layout: header, quants as uvec4s, f16 scales apart (repack_split)
    d_at: int = 0           # split layout: byte offset of the block's scale fields ("meta") in the GGUF block
    meta_bytes: int = 2     # split layout: their size (2: f16 d, stored two per word; 16: one uvec4)


LAYOUTS = {
    T.F32: Layout("f32", 8, 8),
    T.F16: Layout("f16", 8, 4),
    T.Q4_0: Layout("q4_0", 32, 5, pad_at=2),    # 18 -> 20 bytes: pad after d
    T.Q4_1: Layout("q4_1", 32, 5),              # 20 bytes
    T.Q5_0: Layout("q5_0", 32, 6, pad_at=2),    # 22 -> 24 bytes
    T.Q8_0: Layout("q8_0", 32, 9, pad_at=2),    # 34 -> 36 bytes
    T.Q4_K: Layout("q4_k", 256, 36),            # 144 bytes
    T.Q6_K: Layout("q6_k", 256, 53, pad_at=210),  # 210 -> 212 bytes: pad after d at the end
}


# The split layouts of GPT4ALL_MATVEC=v2 (shaders/quants/<type>_split.glsl), used for these types instead.
# `words` counts only a block's quant words: the scales live in their own array after them.
SPLIT_LAYOUTS = {
    T.Q4_0: Layout("q4_0_split", 32, 4, split=True),     # 16 quant bytes + 2 scale bytes per block
    T.Q8_0: Layout("q8_0_split", 32, 8, split=True),     # 32 + 2
    T.Q4_K: Layout("q4_k_split", 256, 32, split=True, meta_bytes=16),   # qs: 128 bytes + (d, dmin, scales)
    T.Q6_K: Layout("q6_k_split", 256, 52, split=True, d_at=208),   # ql, qh, scales: 208 bytes + d
}
SPLIT_HEADER_WORDS = 4      # word 0: where the scales start; 4 words keep the quants 16-byte aligned
# GPT4ALL_MATVEC=v3: Q4_0 rows of whole 1024-weight tiles go in the tile layout (repack_tile,
# shaders/quants/q4_0_tile.glsl); other types and widths keep their split layout
TILE_LAYOUTS = {T.Q4_0: Layout("q4_0_tile", 32, 4, split=True)}
TILE_WEIGHTS = 1024
TILE_THREADS = 32           # threads sharing a tile (the layout's, not a subgroup size)


@dataclass(frozen=True)
class MatvecKernel:
    """The decode (one-row) mat-vec.  'v1': matmul.comp on the padded layouts.  'v2[:NRxWG]':
    matmul_vec.comp on the split layouts (Q4_0, Q8_0, Q4_K, Q6_K), NR weight rows per workgroup pass and WG threads
    per workgroup (its specialization constants; default 4x64), e.g. 'v2:2x128'.  'v3[:NRxWG]': the same, with
    Q4_0 rows of a multiple of 1024 weights in the tile layout (shaders/quants/q4_0_tile.glsl; WG a
    multiple of 32)."""
    version: str = "v2"
    nr: int = 4
    wg: int = 64

    @classmethod
    def parse(cls, spec: str) -> "MatvecKernel":
        version, _, dims = spec.partition(":")
        try:
            if version not in ("v1", "v2", "v3") or (dims and version == "v1"):
                raise ValueError
            nr, wg = (int(v) for v in dims.split("x")) if dims else (4, 64)
            if not (1 <= nr <= 32 and 1 <= wg <= 1024) or (version == "v3" and wg % 32):
                raise ValueError
        except ValueError:
            raise ValueError(f"matvec kernel {spec!r}: use 'v1', 'v2[:NRxWG]' or 'v3[:NRxWG]' (rows per workgroup "
                             f"pass 1..32 x threads per workgroup 1..1024, a multiple of 32 for v3; e.g. v2:4x64) "
                             f"(GPT4ALL_MATVEC)") from None
        return cls(version, nr, wg)

    def __str__(self) -> str:
        return self.version if self.version == "v1" else f"{self.version}:{self.nr}x{self.wg}"


def split_bytes_per_row(ggml_type: int, width: int) -> int:
    """Bytes one weight row takes in a split layout (the chunk header not counted): its GGUF bytes."""
    qk, bs = GGML_QUANT_SIZES[ggml_type]
    return width // qk * bs


def repack_split(raw: np.ndarray, ggml_type: int, rows: int, width: int) -> np.ndarray:
    """GGUF blocks of ``rows`` rows (scale fields at byte d_at, meta_bytes long; the rest quants) -> one
    chunk's uint32 words: [header (4 words)] [quants: rows * nb blocks of `words` words] [meta: rows * nb
    entries; 2-byte ones (an f16 d) two per word, 16-byte ones (Q4_K's d, dmin, scales) one uvec4]."""
    lay = SPLIT_LAYOUTS[ggml_type]
    qk, bs = GGML_QUANT_SIZES[ggml_type]
    n = rows * (width // qk)                                       # blocks in the chunk
    blocks = np.asarray(raw, dtype=np.uint8).reshape(n, bs)
    d0, mb = lay.d_at, lay.meta_bytes
    quants = np.concatenate([blocks[:, :d0], blocks[:, d0 + mb:]], axis=1).reshape(-1).view(np.uint32)
    n_meta = -(-n * mb // 4) * 4 // mb                              # entries, rounded up to whole words
    scales = np.zeros((n_meta, mb), np.uint8)                       # [n_meta, meta_bytes]
    scales[:n] = blocks[:, d0:d0 + mb]
    header = np.zeros(SPLIT_HEADER_WORDS, np.uint32)
    header[0] = SPLIT_HEADER_WORDS + n * lay.words
    return np.concatenate([header, quants, scales.reshape(-1).view(np.uint32)])


def repack_tile(raw: np.ndarray, ggml_type: int, rows: int, width: int) -> np.ndarray:
    """Q4_0 blocks of ``rows`` rows of whole 1024-weight tiles -> one chunk's words in the tile layout
    (shaders/quants/q4_0_tile.glsl), the reference for shaders/tile_repack.comp, which does this on the
    device at upload (VulkanOps._upload_split; tests/test_ops_harness.py checks they agree):
    [header] [tile i, thread t: word p = elements 8 (t % 4) .. + 7 of block 8 p + t / 4, byte k's low nibble
    element 8 (t % 4) + k, its high nibble element 8 (t % 4) + 4 + k]
    [tile i, thread group g = t / 4: the f16 d of blocks 8 p + g, p = 0..3]."""
    if ggml_type != T.Q4_0 or width % TILE_WEIGHTS:
        raise ValueError(f"tile layout: Q4_0 rows of a multiple of {TILE_WEIGHTS} weights, not {T(ggml_type).name} x {width}")
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, 18)      # [n, d (2 bytes) + 16 bytes of nibbles]
    n = blocks.shape[0]
    qs = blocks[:, 2:]
    elements = np.concatenate([qs & 0xF, qs >> 4], axis=1)        # [n, 32]: element e of each block
    chunks = elements.reshape(n // 32, 4, 8, 4, 2, 4)             # [tile, p, g, j, low/high, k]
    nibbles = chunks[:, :, :, :, 0, :] | (chunks[:, :, :, :, 1, :] << 4)            # [tile, p, g, j, k] bytes
    quants = np.ascontiguousarray(nibbles.transpose(0, 2, 3, 1, 4)).reshape(-1).view(np.uint32)   # [tile, g, j, p]
    d = blocks[:, :2].copy().view(np.uint16).reshape(n // 32, 4, 8).transpose(0, 2, 1)   # [tile, g, p]
    header = np.zeros(SPLIT_HEADER_WORDS, np.uint32)
    header[0] = SPLIT_HEADER_WORDS + quants.size
    return np.concatenate([header, quants, np.ascontiguousarray(d).reshape(-1).view(np.uint32)])


def repack(raw: np.ndarray, ggml_type: int, rows: int, width: int) -> np.ndarray:
    """GGUF tensor data -> uint32 words [rows, n_blocks * words] in the layout the shaders read."""
    lay = LAYOUTS[ggml_type]
    if ggml_type in (T.F32, T.F16):
        dt = np.float32 if ggml_type == T.F32 else np.float16
        vals = np.asarray(raw).view(dt).reshape(rows, width) if np.asarray(raw).dtype == np.uint8 \
            else np.asarray(raw, dtype=dt).reshape(rows, width)
        padded = np.zeros((rows, -(-width // 8) * 8), dtype=dt)
        padded[:, :width] = vals
        return padded.view(np.uint32)
    block_bytes = GGML_QUANT_SIZES[ggml_type][1]
    nb = width // lay.qk
    blocks = np.asarray(raw, dtype=np.uint8).reshape(rows, nb, block_bytes)
    if lay.pad_at >= 0:
        pad = np.zeros((rows, nb, 2), dtype=np.uint8)
        blocks = np.concatenate([blocks[:, :, :lay.pad_at], pad, blocks[:, :, lay.pad_at:]], axis=2)
    return np.ascontiguousarray(blocks).reshape(rows, nb * lay.words * 4).view(np.uint32)


def push_constants(*values) -> np.ndarray:
    """Shader push constants: Python floats -> f32, ints -> 32-bit two's complement, as one f32 array
    (kp passes the bytes through; the shader's struct gives each word its type)."""
    words = np.zeros(len(values), dtype=np.uint32)
    for i, v in enumerate(values):
        if isinstance(v, float):
            words[i] = np.float32(v).view(np.uint32)
        else:
            words[i] = int(v) & 0xFFFFFFFF
    return words.view(np.float32)


@dataclass
class VulkanWeight:
    """A weight on the device: row chunks, each its own buffer of repacked words."""
    layout: Layout
    nb: int                                     # blocks per row
    chunks: list = field(default_factory=list)  # [(kp.Tensor, row_lo, row_hi)]; row_lo < 0: a window
    raw: Optional[np.ndarray] = None            # split layouts: the GGUF bytes [rows, row bytes] (a view of the
                                                # mapped file), kept to stack weights (VulkanOps._stack)


class VulkanProgram(Program):
    def __init__(self):
        self.seq: Optional["kp.Sequence"] = None   # made when record() ends (with timestamps when profiling)
        self.ops: list = []                     # kp ops in order, recorded into seq when record() ends
        self.labels: list = []                  # per op: (shader or 'barrier', what, bytes moved) (timings())
        self.timed = False                      # recorded with GPU timestamps (VulkanOps.profile)
        self.resume = False                     # a resume program (Ops.record)
        self.algorithms: list = []              # keeps kp objects alive as long as the program
        # mirrored (i32) tensors the dispatches read / write: id -> kp.Tensor.  The sequence starts by
        # copying the inputs' host memory to the device and ends by copying the outputs back, so the
        # host writes them and reads them with no submission of its own (see VulkanOps.write)
        self.inputs: dict = {}
        self.outputs: dict = {}
        self.writes: dict = {}                  # every tensor a dispatch writes (their host copies go stale)
        self.record_s = 0.0                     # host seconds spent recording (bench, docs/vulkan.md)
        self.n_dispatches = 0
        self.n_barriers = 0
        # hazard tracking for barriers (VulkanOps._dispatch): ids of kp tensors written / read
        # since the last barrier; the first dispatch always gets one (after earlier submissions)
        self.dirty: set = set()
        self.reads: set = set()
        self.first = True

    def __len__(self) -> int:
        return self.n_dispatches


# Vulkan flag bits (vulkan_core.h) for kp.OpGlobalBarrier: a dispatch's shader reads and writes wait
# for earlier shader writes and for the program's opening host-to-device copies
_ACCESS_SHADER_READ, _ACCESS_SHADER_WRITE, _ACCESS_TRANSFER_WRITE = 0x20, 0x40, 0x1000
_STAGE_COMPUTE_SHADER, _STAGE_TRANSFER = 0x800, 0x1000


def _global_barriers() -> bool:
    """Whether programs order their dispatches with kp.OpGlobalBarrier (a kp patched by
    tools/kp_patch.py) rather than the stock-kp scheme (module docstring)."""
    mode = os.environ.get("GPT4ALL_KP_BARRIERS", "auto")
    if mode not in ("auto", "global", "kp"):
        raise ValueError(f"GPT4ALL_KP_BARRIERS={mode!r}: auto, global or kp")
    patched = hasattr(kp, "OpGlobalBarrier") and hasattr(kp, "set_dispatch_barriers")
    if mode == "global" and not patched:
        raise RuntimeError("GPT4ALL_KP_BARRIERS=global needs kp built by tools/setup.sh (tools/kp_patch.py)")
    return patched and mode != "kp"


def _groups(n: int, per: int = 1) -> int:
    return max(1, -(-n // per))


# Ops.sample v2 (SampleKernel): shaders/sample_partial.comp's slices of the vocabulary, one per workgroup
SAMPLE_SLICE_GPU = 2048     # logits per workgroup on a GPU: 63 workgroups for Llama 3's 128256, each on its own
                            # compute unit of an H100 (132) with all of its 8 KiB in flight at once.  Latency, not
                            # bandwidth, bounds them, so 1024 would not be faster, while the merge's work grows with
                            # the number of slices (top-k 40: 40 candidates per slice)
SAMPLE_WG_GPU = 512         # its threads on a GPU (4 logits each per pass over the slice)
CPU_SAMPLE_SLICES = 4       # slices on a CPU device at most (lavapipe runs a workgroup per core, and every
CPU_SAMPLE_MIN_SLICE = 16384    # workgroup's barriers cost), of this many logits at least (a 1000-token vocabulary
                            # in 4 slices of 128 threads took 0.17 ms a greedy token there, in 1 slice 0.10 ms)
CPU_SAMPLE_WG = 128         # their threads there, as v1's single workgroup
SAMPLE_MAX_SLICE = 65536    # shaders/sample_partial.comp MAX_SLICE: its penalty bitmap, 8 KiB of shared memory
SAMPLE_MAX_CANDS = 512      # shaders/sample.comp MAX_CAND: top-k up to this can come from the slices' candidates


@dataclass(frozen=True)
class SampleKernel:
    """Ops.sample.  'v1': shaders/sample.comp alone, one workgroup over the whole vocabulary (62-99 us per token
    on an H100 for a 128256 vocabulary: one compute unit pulls the logits).  'v2[:SLICExWG][/CANDS]' (the
    default): shaders/sample_partial.comp over slices of SLICE logits, WG threads per slice (a power of two,
    32..1024), then sample.comp -DSLICES ('sample_merge') in one workgroup of VulkanOps.sample_wg threads.
    Greedy finishes from the slices' arg-maxes, top-k <= CANDS (1..512, default 512) from each slice's
    min(k, length) largest logits, a larger top-k (or none) from the penalised logits the slices leave in
    scratch, selected by the merge workgroup as v1 does.  Without SLICExWG: SAMPLE_SLICE_GPU x SAMPLE_WG_GPU on
    a GPU, up to CPU_SAMPLE_SLICES slices (of CPU_SAMPLE_MIN_SLICE logits or more) of CPU_SAMPLE_WG threads on a
    CPU device."""
    version: str = "v2"
    slice: int = 0              # 0: per device and vocabulary (slicing())
    wg: int = 0
    cands: int = SAMPLE_MAX_CANDS

    @classmethod
    def parse(cls, spec: str) -> "SampleKernel":
        head, slash, cands = spec.partition("/")
        version, colon, dims = head.partition(":")
        try:
            if version not in ("v1", "v2") or (version == "v1" and (colon or slash)):
                raise ValueError
            sl, wg = (int(v) for v in dims.split("x")) if colon else (0, 0)
            c = int(cands) if slash else SAMPLE_MAX_CANDS
            if colon and not (1 <= sl <= SAMPLE_MAX_SLICE and 32 <= wg <= 1024 and wg & (wg - 1) == 0):
                raise ValueError
            if not 1 <= c <= SAMPLE_MAX_CANDS:
                raise ValueError
        except ValueError:
            raise ValueError(f"sample kernel {spec!r}: use 'v1' or 'v2[:SLICExWG][/CANDS]' (logits per slice "
                             f"1..{SAMPLE_MAX_SLICE} x threads per slice, a power of two 32..1024; top-k candidates "
                             f"per slice 1..{SAMPLE_MAX_CANDS}; e.g. v2:1024x256/512) (GPT4ALL_SAMPLE)") from None
        return cls(version, sl, wg, c)

    def slicing(self, n_vocab: int, info: GpuInfo) -> tuple[int, int]:
        """(logits per slice, threads per slice) for a vocabulary of ``n_vocab`` on ``info``'s device."""
        cpu = info.type == "cpu"
        wg = self.wg or (CPU_SAMPLE_WG if cpu else min(SAMPLE_WG_GPU, info.max_workgroup_invocations))
        sl = self.slice or (max(-(-n_vocab // CPU_SAMPLE_SLICES), CPU_SAMPLE_MIN_SLICE) if cpu else SAMPLE_SLICE_GPU)
        return min(sl, SAMPLE_MAX_SLICE), wg

    def __str__(self) -> str:
        if self.version == "v1":
            return "v1"
        dims = f":{self.slice}x{self.wg}" if self.slice else ""
        return f"v2{dims}/{self.cands}"


def _coopmat_usable(info: GpuInfo) -> bool:
    """Whether the tensor-core GEMM (matmul_tiled.comp -DCOOPMAT) can run on the device: f16 cooperative
    matrices of COOPMAT_SHAPE, subgroups of 32 (its tile split assumes them) and a kp whose Manager enables
    the extensions' features (tools/kp_patch.py, PATCH_LEVEL 2)."""
    return (COOPMAT_SHAPE in info.coopmat_shapes and info.subgroup_size == 32
            and getattr(kp, "PATCH_LEVEL", 1) >= 2)


class VulkanOps(Ops):
    name = "kompute"

    def __init__(self, info: Optional[GpuInfo] = None, max_buffer_bytes: Optional[int] = None,
                 subgroups: Optional[bool] = None, attention_splits: Optional[int] = None,
                 matvec: Optional[str] = None, sample_wg: Optional[int] = None, norm: Optional[str] = None,
                 gemm: Optional[str] = None, profile: Optional[bool] = None, sample: Optional[str] = None):
        """``info``: the device (default: vulkan_device.choose('kompute')).  ``max_buffer_bytes``
        overrides the device's maxStorageBufferRange for splitting weights (the op harness uses a few KiB
        to test split weights).
        ``subgroups``: use the subgroup-reduction shader variants (default: where the device has
        subgroup arithmetic; False forces the portable shared-memory path).  ``attention_splits``:
        key slices per (row, head) in attention (default: $GPT4ALL_ATTENTION_SPLITS, else ATTENTION_SPLITS,
        for decode on a GPU, else 1).
        ``matvec``: the decode mat-vec kernel, 'v1' (matmul.comp on the padded layout), 'v2[:NRxWG]'
        (matmul_vec.comp on the split layouts of Q4_0, Q8_0, Q4_K and Q6_K, which every other typed kernel reads
        too; see MatvecKernel) or 'v3[:NRxWG]' (v2, with Q4_0 rows of whole 1024-weight tiles in the tile
        layout); default: $GPT4ALL_MATVEC, else DEFAULT_MATVEC_GPU on a GPU, DEFAULT_MATVEC on a CPU device.  Fixed per backend: it
        decides how weights are uploaded.  ``sample_wg``: threads of sample.comp's single workgroup (v1's, v2's
        merge) (default: $GPT4ALL_SAMPLE_WG, else 128 on a CPU device, else as many as the device allows, <= 1024).
        ``sample``: the sampling kernels, 'v1' (sample.comp, one workgroup) or 'v2[:SLICExWG][/CANDS]' (the
        vocabulary in slices over many workgroups, then one to finish; see SampleKernel); default:
        $GPT4ALL_SAMPLE, else 'v2'.
        ``norm``: the RMSNorm kernels, 'v1' (rms_norm.comp with shared-memory reductions; ``add_rms_norm``
        as add + rms_norm, two dispatches) or 'v2' (subgroup reductions where the device has them, and
        ``add_rms_norm`` fused into one dispatch); default: $GPT4ALL_NORM, else 'v1'.  v2 saves
        2 x n_layer - 1 dispatches and barriers per llama token, yet on the H100 it decoded slower (1B
        396 -> 387 tok/s, 8B 118 -> 108; docs/performance.md), so it stays opt-in until that is understood.
        ``gemm``: the batched (prompt) matmul kernel, 'coopmat_wide' / 'coopmat' (matmul_tiled.comp -DCOOPMAT: the
        tiled GEMM on tensor cores, f16 cooperative matrices, 128 x 128 tiles over 256 threads / 128 x 64 over 128;
        only where _coopmat_usable), 'tiled' (shaders/matmul_tiled.comp: a shared-memory tiled GEMM) or 'rows'
        (matmul.comp -DBATCH: NR weight rows x NT x rows per workgroup, threads splitting K); default:
        $GPT4ALL_GEMM, else 'coopmat_wide' where usable (H100, 8B pp512 at n_batch 512: 1734 / 1782 tok/s against
        1634 / 1497 for 'coopmat', two calls, before its accumulators left local memory; 4150 tok/s since), else 'tiled' on a GPU (H100, 512-row prompt matmuls of
        Llama-3-8B's shapes: mostly 14-22 TFLOP/s against 3-6) and 'rows' on a CPU device: on lavapipe a 64-row tile
        costs the same however few of its rows are real, so 'tiled' wins from ~32 rows on (128 x 2048 x 2048
        Q4_0: 233 -> 97 ms) but loses on short batches (5 rows: 36 -> 92 ms).
        ``profile``: latch GPU timestamps around every op of the programs recorded while it is on (see
        timings(); the attribute may be set later); default: $GPT4ALL_PROFILE == '1'."""
        self.norm = norm or os.environ.get("GPT4ALL_NORM") or "v1"
        if self.norm not in ("v1", "v2"):
            raise ValueError(f"norm kernels {self.norm!r} (GPT4ALL_NORM): 'v1' or 'v2'")
        env_splits = os.environ.get("GPT4ALL_ATTENTION_SPLITS")
        self.attention_splits = attention_splits if attention_splits is not None else (
            int(env_splits) if env_splits else None)
        self.info = info or choose("kompute")
        coopmat = _coopmat_usable(self.info)
        self.gemm = gemm or os.environ.get("GPT4ALL_GEMM") or (
            "rows" if self.info.type == "cpu" else "coopmat_wide" if coopmat else "tiled")
        if self.gemm not in (*GEMM_TILES, "rows"):
            raise ValueError(f"batched matmul kernel {self.gemm!r} (GPT4ALL_GEMM): 'coopmat', 'coopmat_wide', "
                             f"'tiled' or 'rows'")
        # split K of the batched GEMM when its tiles are too few to fill the GPU (see _k_split: coopmat only unless
        # asked): 'auto' (default) or a fixed number of parts (1: never), from $GPT4ALL_GEMM_SPLIT
        split = os.environ.get("GPT4ALL_GEMM_SPLIT", "auto")
        if split != "auto" and not (split.isdigit() and int(split) >= 1):
            raise ValueError(f"GPT4ALL_GEMM_SPLIT={split!r}: 'auto' or a number of parts >= 1")
        self.gemm_split = None if split == "auto" else int(split)
        if self.gemm.startswith("coopmat") and not coopmat:
            raise self._no_coopmat(f"GPT4ALL_GEMM={self.gemm}")
        self.matvec_kernel = MatvecKernel.parse(matvec or os.environ.get("GPT4ALL_MATVEC") or (
            DEFAULT_MATVEC if self.info.type == "cpu" else DEFAULT_MATVEC_GPU))
        self.matvec = self.matvec_kernel.version            # 'v1' | 'v2' | 'v3'
        # Q4_0 / Q8_0 mat-vec: 4 threads per 32-weight block (coalesced x loads) unless GPT4ALL_MATVEC_LANES=0
        self.matvec_lanes = os.environ.get("GPT4ALL_MATVEC_LANES", "1") != "0" and self.matvec_kernel.wg % 4 == 0
        # v3, tile layouts: a workgroup has at most one 32-thread team per tile of a row (a 2048-wide row has 2
        # tiles, so 4x128 would leave half its threads idle); and small matrices take half the rows per workgroup
        # (_matvec_nr); GPT4ALL_MATVEC_FIT=0 keeps WG threads and NR rows everywhere (an A/B switch)
        self.matvec_fit = os.environ.get("GPT4ALL_MATVEC_FIT", "1") != "0"
        if self.matvec_kernel.wg > self.info.max_workgroup_invocations:
            raise ValueError(f"matvec kernel {self.matvec_kernel}: {self.matvec_kernel.wg} threads per workgroup, "
                             f"more than '{self.info.name}' allows ({self.info.max_workgroup_invocations})")
        # sample.comp's single workgroup: as wide as the device allows on a GPU (it runs on one compute
        # unit and must keep loads in flight over the whole vocabulary), 128 on a CPU device;
        # GPT4ALL_SAMPLE_WG overrides (tools/bench_kernels.py --ops sample compares).  A power of two >= 32:
        # sizes below lavapipe's SIMD width (8) gave wrong tokens there in 1-2 of the 8 harness cases,
        # not understood yet, and no GPU needs fewer than 32
        wide = 1 << (min(1024, self.info.max_workgroup_invocations).bit_length() - 1)
        self.sample_wg = int(sample_wg or os.environ.get("GPT4ALL_SAMPLE_WG")
                             or (128 if self.info.type == "cpu" else wide))
        if self.sample_wg & (self.sample_wg - 1) or not 32 <= self.sample_wg <= self.info.max_workgroup_invocations:
            raise ValueError(f"sample workgroup size {self.sample_wg} (GPT4ALL_SAMPLE_WG): a power of two in "
                             f"32..{self.info.max_workgroup_invocations}")
        # sampling v1 (one workgroup) or v2 (slices over many workgroups, then one): GPT4ALL_SAMPLE=v1 is the
        # A/B switch for GPU timings
        self.sample_kernel = SampleKernel.parse(sample or os.environ.get("GPT4ALL_SAMPLE") or "v2")
        if self.sample_kernel.wg > self.info.max_workgroup_invocations:
            raise ValueError(f"sample kernel {self.sample_kernel}: {self.sample_kernel.wg} threads per slice, more "
                             f"than '{self.info.name}' allows ({self.info.max_workgroup_invocations})")
        # a batch of query rows (prompts, embeddings): 'coopmat' (attention_prompt_cm.comp: the products on tensor
        # cores, for head_dim 64 and 128; the default where the device has them), 'tiled' (attention_prompt.comp,
        # blocks of query rows sharing each key tile, f32; the default elsewhere, and coopmat's fallback for other
        # head sizes) or 'rows' (attention.comp, a workgroup per row and head; the A/B switch)
        self.attention_prompt = os.environ.get("GPT4ALL_ATTENTION_PROMPT") or ("coopmat" if coopmat else "tiled")
        # the tiled kernels' blocks hold several query heads of a KV group (0: one head, an A/B switch)
        self.attention_prompt_gqa = os.environ.get("GPT4ALL_ATTENTION_PROMPT_GQA", "1") != "0"
        if self.attention_prompt not in ("coopmat", "tiled", "rows"):
            raise ValueError(f"GPT4ALL_ATTENTION_PROMPT={self.attention_prompt!r}: 'coopmat', 'tiled' or 'rows'")
        if self.attention_prompt == "coopmat" and not coopmat:
            raise self._no_coopmat("GPT4ALL_ATTENTION_PROMPT=coopmat")
        # decode's rope_qkv done in the epilogue of the q/k/v mat-vec before it (matmul_stack): one dispatch and
        # one barrier fewer per layer (~4.7 us each on an H100); GPT4ALL_ROPE_EPILOGUE=0 keeps the two dispatches
        # (an A/B switch; see matmul_stack and _rope_epilogue_fits)
        self.rope_epilogue = os.environ.get("GPT4ALL_ROPE_EPILOGUE", "1") != "0"
        # a batch's matmul_glu as one GEMM over the stacked gate / up weight on the GEMMs built for it (GLU_GEMMS):
        # no separate gate and up GEMMs, split sums or glu dispatch; GPT4ALL_GEMM_GLU=0 keeps the three ops
        self.gemm_glu = self.gemm in GLU_GEMMS and os.environ.get("GPT4ALL_GEMM_GLU", "1") != "0"
        # GPU timestamps after every recorded op, read by timings() (tools/profile_decode.py)
        self.profile = profile if profile is not None else os.environ.get("GPT4ALL_PROFILE", "0") == "1"
        # where the SPIR-V comes from: engine/spv, or an A/B set built by `tools/compile_shaders.py --out DIR
        # --define ... [--only ...]` (a kernel variant timed against the default in one session: tools/gpu_run.sh
        # TUNE_ENV); variants the set lacks come from engine/spv
        self.spv_dir = Path(os.environ.get("GPT4ALL_SPV_DIR") or SPV_DIR)
        self.subgroups = self.info.subgroup_arithmetic if subgroups is None else bool(subgroups)
        self._sg = "_sg" if self.subgroups else ""
        # the decode mat-vec over the tile layout rounds x to 8 bits and multiplies with integer dot products
        # (matmul_vec.comp -DINT_DOT, subgroup builds only) where the device has them and kp enables the feature;
        # GPT4ALL_INT_DOT=0 keeps the float product (an A/B switch, and what devices without them run)
        self.integer_dot = (self.info.integer_dot and self.subgroups and getattr(kp, "PATCH_LEVEL", 1) >= 4
                            and os.environ.get("GPT4ALL_INT_DOT", "1") != "0")
        self.device_name = self.info.name
        self.max_buffer_bytes = max_buffer_bytes or self.info.max_storage_buffer_range
        # the extensions the coopmat GEMM and attention need; kp patched by tools/kp_patch.py enables their features
        uses_coopmat = self.gemm.startswith("coopmat") or self.attention_prompt == "coopmat"
        self.mgr = kp.Manager(self.info.index, [], (list(COOPMAT_EXTENSIONS) if uses_coopmat else [])
                              + ([INTEGER_DOT_EXTENSION] if self.integer_dot else []))
        # The per-step buffers: the host writes them through NumPy views of their (host-visible) staging
        # memory; each program starts with a recorded copy to device memory (so a discrete GPU's
        # workgroups do not read host memory over the bus) and ends with a copy of the step buffer back, so
        # the host view shows what advance() left there (the sampling buffer is only read by the device).
        self._step_t = self.mgr.tensor_t(np.zeros(STEP_SIZE, np.int32))
        self._samp_t = self.mgr.tensor_t(np.zeros(SAMPLE_SIZE, np.float32))
        self.step = self._step_t.data()         # writable views of the mapped staging memory
        self.sampling = self._samp_t.data()
        self._barrier_t = self.mgr.tensor_t(np.zeros(1, np.float32))   # see the module docstring
        self.global_barriers = _global_barriers()
        self._barrier_op = (kp.OpGlobalBarrier(_ACCESS_SHADER_WRITE | _ACCESS_TRANSFER_WRITE,
                                               _ACCESS_SHADER_READ | _ACCESS_SHADER_WRITE,
                                               _STAGE_COMPUTE_SHADER | _STAGE_TRANSFER, _STAGE_COMPUTE_SHADER)
                            if self.global_barriers else None)
        # a resume program's first op: the previous program's reads of the sampling buffer end before it is uploaded
        self._upload_barrier = (kp.OpGlobalBarrier(_ACCESS_SHADER_WRITE, _ACCESS_TRANSFER_WRITE,
                                                   _STAGE_COMPUTE_SHADER | _STAGE_TRANSFER, _STAGE_TRANSFER)
                                if self.global_barriers else None)
        # decode chunks overlap (engine/llm.py): on a GPU the next one is submitted before the current one ends;
        # not on a CPU device, where a submission is cheap and the extra chunk after a stop would cost a token;
        # GPT4ALL_DECODE_OVERLAP=0 turns it off (an A/B switch)
        # (kp.PATCH_LEVEL 3: kp 0.9's own eval_async waits for the work, see tools/kp_patch.py)
        self.overlaps_programs = (self.global_barriers and getattr(kp, "PATCH_LEVEL", 1) >= 3
                                  and self.info.type != "cpu" and os.environ.get("GPT4ALL_DECODE_OVERLAP", "1") != "0")
        self._dummy = self.mgr.tensor_t(np.zeros(8, np.float32))       # for absent optional buffers
        self._spv: dict[str, bytes] = {}
        self._scratch: dict[tuple, "kp.Tensor"] = {}              # see _scratch_for()
        self._normed: Optional[tuple] = None                    # see _pre_normed()
        self._stacks: dict[tuple, tuple] = {}                   # see _stack()
        self._algos: dict[tuple, tuple] = {}                    # see _algorithm()
        self._mirror: dict[int, "kp.Tensor"] = {}               # i32 tensors, see write()
        self._stale: set[int] = set()                           # see write()
        self._recording: Optional[VulkanProgram] = None
        self._held_stack: Optional[tuple] = None               # see matmul_stack()
        self.bytes_allocated = 0
        # Decode steps per submission (engine/llm.py reads it): on a GPU a submit-and-wait round trip
        # (~0.6 ms measured on an H100) is worth saving; a k-step program is k forward passes that
        # reuse one pipeline per op (_algorithm), so recording it costs k x the op calls, not k x the
        # pipeline builds.  On a CPU device a submission is cheap and the forward pass is the cost.
        default_steps = 1 if self.info.type == "cpu" else 16
        self.decode_steps = int(os.environ.get("GPT4ALL_DECODE_STEPS", default_steps))

    # ---------------------------------------------------------------- memory
    def check_fits(self, bytes_needed: int, what: str = "the model") -> None:
        """Raise (before allocating) when ``bytes_needed`` more bytes exceed the device's memory."""
        check_fits(self.info, self.bytes_allocated + bytes_needed, what)

    def tensor(self, rows: int, width: int, dtype: str = "f32", name: str = "") -> Tensor:
        np_dtype = {"f32": np.float32, "i32": np.int32}[dtype]
        self.check_fits(rows * width * 4, f"buffer {name or '?'} [{rows}, {width}]")
        if rows * width * 4 > self.info.max_storage_buffer_range:      # activations are never split
            raise ValueError(f"buffer {name or '?'} [{rows}, {width}] needs {rows * width * 4 / 2**20:.1f} MiB, more "
                             f"than one shader binding may address on '{self.device_name}' "
                             f"(maxStorageBufferRange {self.info.max_storage_buffer_range / 2**20:.1f} MiB): lower n_ctx or n_batch")
        t = self.mgr.tensor_t(np.zeros(rows * width, np_dtype))
        self.mgr.sequence().eval(kp.OpTensorSyncDevice([t]))      # device memory starts undefined
        if dtype == "i32":
            self._mirror[id(t)] = t              # see write(); the dict keeps t alive, so its id stays unique
        self.bytes_allocated += rows * width * 4
        return Tensor(rows, width, dtype, name, t)

    def weight(self, name: str, ggml_type: int, shape: Sequence[int], raw: np.ndarray) -> Weight:
        width = int(shape[0])
        rows = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        ggml_type = int(ggml_type)
        if self.matvec != "v1" and ggml_type in SPLIT_LAYOUTS and len(shape) > 1:
            return self._weight_split(name, ggml_type, rows, width, raw)
        if ggml_type not in LAYOUTS:
            supported = ", ".join(T(t).name for t in LAYOUTS)
            raise ValueError(f"tensor {name!r}: type {T(ggml_type).name} is not supported by the Vulkan "
                             f"backend (supported: {supported})")
        if len(shape) == 1 and ggml_type != T.F32:       # norms, biases: f32, read as plain floats
            raw = np.asarray(gguf_dequantize(np.asarray(raw), T(ggml_type)), np.float32).reshape(-1)
            ggml_type = int(T.F32)
        lay = LAYOUTS[ggml_type]
        if width % lay.qk and ggml_type not in (T.F32, T.F16):
            raise ValueError(f"tensor {name!r}: width {width} is not a multiple of {T(ggml_type).name}'s block")
        words = repack(raw, ggml_type, rows, width)       # uint32 [rows, row_words]
        row_bytes = words.shape[1] * 4
        self.check_fits(words.nbytes, f"weight {name!r}")
        rows_per_chunk = max(1, self.max_buffer_bytes // row_bytes)
        vw = VulkanWeight(lay, words.shape[1] // lay.words)
        for lo in range(0, rows, rows_per_chunk):
            hi = min(rows, lo + rows_per_chunk)
            vw.chunks.append((self._upload(words[lo:hi]), lo, hi))
        self.bytes_allocated += words.nbytes
        return Weight(rows, width, ggml_type, name, vw)

    def _weight_split(self, name: str, ggml_type: int, rows: int, width: int, raw: np.ndarray) -> Weight:
        """Upload in a split layout (repack_split; v3's tile layout where it applies), one header per row chunk."""
        lay = self._split_layout(ggml_type, width)
        if width % lay.qk:
            raise ValueError(f"tensor {name!r}: width {width} is not a multiple of {T(ggml_type).name}'s block")
        row_bytes = split_bytes_per_row(ggml_type, width)
        blocks = np.asarray(raw, dtype=np.uint8).reshape(rows, row_bytes)
        self.check_fits(blocks.nbytes, f"weight {name!r}")
        # room for the header and the odd scale's padding word
        rows_per_chunk = max(1, (self.max_buffer_bytes - 4 * SPLIT_HEADER_WORDS - 4) // row_bytes)
        vw = VulkanWeight(lay, width // lay.qk)
        for lo in range(0, rows, rows_per_chunk):
            hi = min(rows, lo + rows_per_chunk)
            vw.chunks.append((self._upload_split(lay, blocks[lo:hi], ggml_type, hi - lo, width), lo, hi))
        vw.raw = blocks
        self.bytes_allocated += blocks.nbytes
        return Weight(rows, width, ggml_type, name, vw)

    def _split_layout(self, ggml_type: int, width: int) -> Layout:
        if self.matvec == "v3" and ggml_type in TILE_LAYOUTS and width % TILE_WEIGHTS == 0:
            return TILE_LAYOUTS[ggml_type]
        return SPLIT_LAYOUTS[ggml_type]

    def _upload_split(self, lay: Layout, blocks: np.ndarray, ggml_type: int, rows: int, width: int) -> "kp.Tensor":
        """One chunk of GGUF blocks (``rows`` rows) on the device in layout ``lay``: the split layout from the
        host (repack_split); the tile layout permuted from it by the GPU (shaders/tile_repack.comp, the same
        permutation as repack_tile, which took an 8B model's load from ~11 s to ~33 s done on the host)."""
        words = repack_split(blocks, ggml_type, rows, width)
        src = self._upload(words)
        if lay not in TILE_LAYOUTS.values():
            return src
        n_blocks = rows * (width // lay.qk)         # a thread per output uvec4: 32 quants + 4 scales per tile
        dst = self._written_by("tile_repack", src, words.size, push_constants(n_blocks), 36 * n_blocks // 32)
        src.destroy()
        return dst

    def _upload(self, words: np.ndarray) -> "kp.Tensor":
        """A device-local buffer holding ``words``, copied by the GPU from a temporary host buffer."""
        flat = np.ascontiguousarray(words).reshape(-1)
        staging = self.mgr.tensor_t(flat, kp.TensorTypes.host)
        dev = self._written_by("upload_words", staging, flat.size, push_constants(flat.size), -(-flat.size // 4))
        staging.destroy()
        return dev

    def _written_by(self, shader: str, src: "kp.Tensor", n_words: int, push: np.ndarray, threads: int) -> "kp.Tensor":
        """A new device-local buffer of ``n_words`` words, written from ``src`` by ``shader`` (an upload pass, not
        an op: bindings src, dst; 64 threads a workgroup, ``threads`` in all) run at once.  A shader, not
        kp.OpTensorCopy: kp makes device-local ('storage') tensors without the transfer usage flags a copy needs
        (the validation layer reports such copies as invalid usage), see shaders/upload_words.comp."""
        dst = self.mgr.tensor_t(np.zeros(n_words, np.uint32), kp.TensorTypes.storage)
        groups = _groups(threads, 64)
        algo = self.mgr.algorithm([src, dst], self._spirv(shader),
                                  [min(groups, MAX_GROUPS_X), _groups(groups, MAX_GROUPS_X), 1], [], push)
        self.mgr.sequence().eval(kp.OpAlgoDispatch(algo))
        algo.destroy()
        return dst

    # Host copies.  Every kp tensor of type 'device' has a host-visible staging copy (t.handle.data()).
    # * Mirrored tensors (all i32 ones: token ids, sampled tokens, the penalty history, sequence
    #   starts: small, written or read by the host every step) keep that copy authoritative between
    #   submissions: each program / eager dispatch that reads one starts by copying it to the device, each
    #   that writes one ends by copying it back (in the same submission).  So write() and read() of a
    #   mirrored tensor are plain memory accesses, with no submission: one decode chunk is one eval.
    # * Other (f32) tensors: ``_stale`` holds those a dispatch may have written since their host copy
    #   was last synced; only a partial write() of a stale tensor has to read the device copy first.
    def _mirrored(self, t: "kp.Tensor") -> bool:
        return id(t) in self._mirror

    def write(self, t: Tensor, values: np.ndarray, row: int = 0) -> None:
        values = np.asarray(values, dtype=np.float32 if t.dtype == "f32" else np.int32).reshape(-1)
        h = t.handle
        whole = row == 0 and values.size == t.rows * t.width
        if not whole and id(h) in self._stale:      # keep the rest: the device's copy is newer
            self.mgr.sequence().eval(kp.OpTensorSyncLocal([h]))
            self._stale.discard(id(h))
        h.data()[row * t.width: row * t.width + values.size] = values
        if not self._mirrored(h):                    # mirrored: the next submission that reads it copies it
            self.mgr.sequence().eval(kp.OpTensorSyncDevice([h]))

    def read(self, t: Tensor, rows: Optional[int] = None) -> np.ndarray:
        rows = t.rows if rows is None else rows
        h = t.handle
        if not self._mirrored(h):                    # a mirrored tensor's host copy is already current
            self.mgr.sequence().eval(kp.OpTensorSyncLocal([h]))
            self._stale.discard(id(h))
        return np.array(h.data()[: rows * t.width]).reshape(rows, t.width)

    # ---------------------------------------------------------------- programs
    @contextmanager
    def record(self, resume: bool = False) -> Iterator[Program]:
        if resume and not self.global_barriers:
            raise RuntimeError("a resume program needs kp's global barriers (kp built by tools/setup.sh)")
        prog = VulkanProgram()
        self._recording = prog
        t0 = time.perf_counter()
        try:
            yield prog
            self._release_held_stack()          # a q/k/v dispatch that no rope_qkv followed (matmul_stack)
        finally:
            self._held_stack = None
            self._recording = None
        # one submission: host copies in, the dispatches, host copies out (see write()); when profiling, kp
        # latches a GPU timestamp at the start and after each recorded op (timings())
        prog.timed, prog.resume = self.profile, resume
        prog.seq = self.mgr.sequence(0, len(prog.ops) + 2 + resume) if prog.timed else self.mgr.sequence()
        if resume:
            # the device state (step, ids, history) is the previous program's: only the sampling buffer (the
            # uniforms of this program's slots) comes from the host, once everything before is done with it
            prog.seq.record(self._upload_barrier)
            prog.seq.record(kp.OpTensorSyncDevice([self._samp_t]))
        else:
            prog.seq.record(kp.OpTensorSyncDevice([self._step_t, self._samp_t, *prog.inputs.values()]))
        if self.global_barriers:
            kp.set_dispatch_barriers(False)     # the program carries its own (see _dispatch)
        try:
            for op in prog.ops:
                prog.seq.record(op)
        finally:
            if self.global_barriers:
                kp.set_dispatch_barriers(True)
        prog.seq.record(kp.OpTensorSyncLocal([self._step_t, *prog.outputs.values()]))
        prog.ops = []
        prog.record_s = time.perf_counter() - t0

    def run(self, program: Program) -> None:
        program.seq.eval()
        self._stale.update(program.writes)

    def start(self, program: Program) -> None:
        program.seq.eval_async()
        self._stale.update(program.writes)

    def finish(self, program: Program) -> None:
        program.seq.eval_await()

    def timings(self, program: Program) -> list[dict]:
        """GPU time of each recorded op in ``program``'s last run (``profile`` must have been on when the
        program was recorded: VulkanOps(profile=True), GPT4ALL_PROFILE=1 or ``ops.profile = True`` before
        its first use): a list of {'op': shader name or 'barrier' or
        'copy', 'what': the weight or buffer it works on, 'bytes': weight bytes it reads (matmuls), 'us'}.
        Each op's time runs from the previous op's end to its own (timestamps at ALL_COMMANDS after every
        op), so a dispatch's entry includes its launch and the wait at the barrier before it."""
        if not program.timed:
            raise RuntimeError("timings(): the program was recorded without GPU timestamps (turn the backend's "
                               "profile on before recording it)")
        ts = program.seq.get_timestamps()
        labels = [*([("barrier", "before the upload", 0)] if program.resume else []), ("copy", "to device", 0),
                  *program.labels, ("copy", "to host", 0)]
        if len(ts) != len(labels) + 1:
            raise RuntimeError(f"{len(ts)} timestamps for {len(labels)} recorded ops")
        period_us = self.info.timestamp_period / 1000.0
        return [{"op": op, "what": what, "bytes": nbytes, "us": (ts[i + 1] - ts[i]) * period_us}
                for i, (op, what, nbytes) in enumerate(labels)]

    def _spirv(self, name: str) -> bytes:
        if name not in self._spv:
            path = self.spv_dir / f"{name}.spv"
            if not path.exists():           # an A/B set built with --only holds just its variants
                path = SPV_DIR / f"{name}.spv"
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: run `python tools/compile_shaders.py`")
            self._spv[name] = path.read_bytes()
        return self._spv[name]

    def _algorithm(self, shader: str, tensors: list, groups: list, n_push: int,
                   spec: tuple = ()) -> "kp.Algorithm":
        """One kp Algorithm (pipeline + bound buffers) per (shader, buffers, workgroups, push-constant
        count), reused by every dispatch that matches: a k-step decode program dispatches the same
        pipelines k times with only the push constants (given per dispatch) differing, so recording
        it costs no pipeline builds after the first step.  The entry keeps the tensors alive, so the
        ids in its key cannot be reused by new tensors.  ``spec``: the shader's specialization constants
        (32-bit ints, passed like push constants)."""
        key = (shader, tuple(id(t) for t in tensors), tuple(groups), n_push, spec)
        hit = self._algos.get(key)
        if hit is None:
            algo = self.mgr.algorithm(tensors, self._spirv(shader), groups, push_constants(*spec) if spec else [],
                                      np.zeros(n_push, np.float32))
            hit = self._algos[key] = (algo, tensors)
        return hit[0]

    def _row_groups(self, capacity: int) -> int:
        """Workgroups launched along the row dimension; each strides over the active rows (FOR_ROWS in
        shaders/common.glsl).  On a CPU device a few (ROW_GROUPS), so a short prompt in a large-capacity
        program leaves few of them idle (idle workgroups cost time on lavapipe); on a GPU one per row:
        idle ones exit at once there, while 8 left a 128-row prompt batch's attention and norms on a
        few compute units (H100, Llama-3-8B shape: attention 354 and rms_norm 72 us per prompt token)."""
        return max(1, min(capacity, ROW_GROUPS if self.info.type == "cpu" else GPU_ROW_GROUPS))

    def _k_split(self, tiles: int, row_tiles: int, K: int) -> int:
        """Parts K is split into for a tiled batched matmul of tiles x row_tiles workgroups: on the coopmat
        GEMM enough for GEMM_TARGET_GROUPS workgroups, each part at least GEMM_MIN_SPLIT_STEPS steps; 1 on
        the f32 one (GPT4ALL_GEMM_SPLIT = N fixes it for both, 1 turns it off)."""
        if self.gemm_split is not None:
            return max(1, min(self.gemm_split, -(-K // 32)))
        if not self.gemm.startswith("coopmat"):
            return 1            # the f32 tiled GEMM lost with it (H100, 8B prompt: 751 -> 451 tok/s)
        want = -(-GEMM_TARGET_GROUPS // max(1, tiles * row_tiles))
        return max(1, min(want, -(-K // 32) // GEMM_MIN_SPLIT_STEPS))

    def _dispatch(self, shader: str, tensors: list, push: np.ndarray, groups: tuple, writes: list,
                  spec: tuple = (), what: str = "", nbytes: int = 0) -> None:
        """Record one dispatch of ``shader`` (binding 0 = the step buffer, then ``tensors``; ``writes``
        are the ones it writes), or run it now when no program is being recorded.  ``what`` and
        ``nbytes`` (the weight it reads and how many bytes of it) label the dispatch in timings()."""
        self._release_held_stack()              # recorded ops keep their order (see matmul_stack)
        gx, gy, gz = (list(groups) + [1, 1])[:3]
        if self._normed is not None and {id(t) for t in writes} & set(self._normed[:2]):
            self._normed = None                  # the pre-normed copy (or its source) is overwritten
        algo = self._algorithm(shader, [self._step_t, *tensors], [int(gx), int(gy), int(gz)], len(push), spec)
        dispatch = kp.OpAlgoDispatch(algo, push)
        # mirrored tensors go in even when only written: rows this dispatch leaves alone must keep the
        # host's values when the whole buffer is copied back
        ins = {id(t): t for t in tensors if self._mirrored(t)}
        outs = {id(t): t for t in writes if self._mirrored(t)}
        prog = self._recording
        if prog is None:
            self.mgr.sequence().record(kp.OpTensorSyncDevice([self._step_t, self._samp_t, *ins.values()])) \
                .record(kp.OpTensorSyncLocal([self._barrier_t])) \
                .record(dispatch) \
                .record(kp.OpTensorSyncLocal([self._step_t, *outs.values()])).eval()
            self._stale.update(id(t) for t in writes if not self._mirrored(t))
            return
        # A barrier only where this dispatch touches a buffer written since the last one (read after
        # write, write after write) or writes one read since (write after read): independent
        # dispatches (q/k/v, gate/up) may then overlap on a GPU.
        used = {id(t) for t in tensors} | {id(self._step_t)}
        written = {id(t) for t in writes}
        if prog.first or used & prog.dirty or written & prog.reads:
            prog.ops.append(self._barrier_op or kp.OpTensorSyncLocal([self._barrier_t]))   # module docstring
            prog.dirty, prog.reads, prog.first = set(), set(), False
            prog.n_barriers += 1
            prog.labels.append(("barrier", "", 0))
        prog.ops.append(dispatch)
        prog.labels.append((shader, what, nbytes))
        prog.reads |= used
        prog.dirty |= written
        prog.inputs.update(ins)
        prog.outputs.update(outs)
        prog.writes.update({id(t): t for t in writes if not self._mirrored(t)})
        prog.algorithms.append(algo)
        prog.n_dispatches += 1

    @staticmethod
    def _f32_buffer(w: Optional[Weight]):
        """The buffer of a 1-D (f32) weight used as plain floats, or None."""
        if w is None:
            return None
        if w.ggml_type != T.F32 or w.rows != 1:
            raise ValueError(f"weight {w.name!r} must be 1-D f32 here (got {T(w.ggml_type).name} [{w.rows}, {w.width}])")
        return w.handle.chunks[0][0]

    # ---------------------------------------------------------------- ops
    def get_rows(self, out: Tensor, table: Weight, ids: Tensor) -> None:
        vw: VulkanWeight = table.handle
        cap = min(out.rows, ids.rows)
        for buf, lo, hi in vw.chunks:
            self._dispatch(f"get_rows_{vw.layout.shader}", [buf, ids.handle, out.handle],
                           push_constants(table.width, vw.nb, lo, hi, cap),
                           (_groups(_groups(table.width, 8), WG), self._row_groups(cap)), [out.handle])

    def rms_norm(self, out: Tensor, x: Tensor, weight: Optional[Weight], eps: float, group: int = 0) -> None:
        group = group or x.width
        wbuf = self._f32_buffer(weight)
        self._dispatch("rms_norm" + (self._sg if self.norm == "v2" else ""), [x.handle, out.handle, wbuf or self._dummy],
                       push_constants(x.width, group, float(eps), int(wbuf is not None), min(x.rows, out.rows)),
                       (x.width // group, self._row_groups(min(x.rows, out.rows))), [out.handle])

    def add_rms_norm(self, x: Tensor, delta: Tensor, out: Tensor, weight: Optional[Weight], eps: float) -> None:
        if self.norm == "v1":                   # two dispatches (see __init__: norm)
            return super().add_rms_norm(x, delta, out, weight, eps)
        # rms_norm.comp -DADD: one dispatch writes both the residual stream x and out
        wbuf = self._f32_buffer(weight)
        cap = min(x.rows, delta.rows, out.rows)
        self._dispatch("add_rms_norm" + self._sg, [x.handle, out.handle, wbuf or self._dummy, delta.handle],
                       push_constants(x.width, x.width, float(eps), int(wbuf is not None), cap),
                       (1, self._row_groups(cap)), [x.handle, out.handle])

    def layer_norm(self, out: Tensor, x: Tensor, weight: Optional[Weight], bias: Optional[Weight],
                   eps: float) -> None:
        wbuf, bbuf = self._f32_buffer(weight), self._f32_buffer(bias)
        cap = min(x.rows, out.rows)
        self._dispatch("layer_norm", [x.handle, out.handle, wbuf or self._dummy, bbuf or self._dummy],
                       push_constants(x.width, float(eps), int(wbuf is not None), int(bbuf is not None), cap),
                       (self._row_groups(cap),), [out.handle])

    def matmul(self, out: Tensor, w: Weight, x: Tensor, bias: Optional[Weight] = None,
               w_row0: int = 0, out_col0: int = 0, n_out: int = 0, *,
               norm: Optional[Weight] = None, eps: float = 0.0, accumulate: bool = False) -> None:
        vw: VulkanWeight = w.handle
        cap = min(x.rows, out.rows)
        vec = cap == 1 and vw.layout.split       # the v2 mat-vec (needs a split layout): folds the norm in
        if norm is not None and not vec:         # the other kernels read a normed copy of x
            x, norm = self._pre_normed(x, norm, eps), None
        self._matmul(out, w, x, bias, w_row0, out_col0, n_out or (w.rows - w_row0), norm, eps, accumulate)

    def matmul_glu(self, out: Tensor, w_gate: Weight, w_up: Weight, x: Tensor, kind: str, *,
                   norm: Optional[Weight] = None, eps: float = 0.0) -> None:
        if kind not in ("silu", "gelu"):
            raise ValueError(f"glu kind must be 'silu' or 'gelu', not {kind!r}")
        stacked = self._stack([w_gate, w_up]) if w_gate.rows == w_up.rows else None
        one_row = min(x.rows, out.rows) == 1
        # decode: both dot products of a row in one workgroup (the mat-vec folds the norm in); batches on the GEMMs
        # built for it: one tensor-core GEMM over the stack, of a normed copy of x
        if stacked is not None and (one_row or self.gemm_glu):
            if norm is not None and not one_row:
                x, norm = self._pre_normed(x, norm, eps), None
            self._matmul(out, stacked, x, None, 0, 0, w_gate.rows, norm, eps, False, glu=(kind, w_gate.rows))
            return
        # batches on the other GEMMs, or weights that cannot be stacked: the default's three ops (once stacked,
        # w_gate and w_up are row windows of the stack, so these read it too)
        super().matmul_glu(out, w_gate, w_up, x, kind, norm=norm, eps=eps)

    def matmul_stack(self, outs: Sequence[Tensor], weights: Sequence[Weight], x: Tensor,
                     biases: Optional[Sequence[Optional[Weight]]] = None, *,
                     norm: Optional[Weight] = None, eps: float = 0.0) -> None:
        one_row = min(x.rows, *(o.rows for o in outs)) == 1
        stacked = (self._stack(weights) if one_row and len(weights) in (2, 3) and not any(biases or ())
                   and len({id(o.handle) for o in outs}) == len(outs) else None)
        if stacked is None:                      # batches, biases, weights that cannot stack: one matmul each
            return super().matmul_stack(outs, weights, x, biases, norm=norm, eps=eps)
        # decode: one dispatch over the stack, each row written to its own weight's output (matmul_vec -DSTACK)
        ends = np.cumsum([w.rows for w in weights])
        stack = (outs[1], outs[2] if len(outs) > 2 else None, int(ends[0]), int(ends[1]))

        def record(rope: Optional[tuple] = None) -> None:
            self._matmul(outs[0], stacked, x, None, 0, 0, stacked.rows, norm, eps, False, stack=stack, rope=rope)
        if self._recording is not None and self.rope_epilogue and len(outs) == 3:
            # q, k, v: a decoder layer calls rope_qkv on them next, which the mat-vec can do in its epilogue (one
            # dispatch and one barrier fewer per layer).  Recorded dispatches are kp objects that cannot be
            # rewritten, so this one is held back instead: rope_qkv on exactly these outputs records it as the
            # fused variant (_rope_epilogue_fits); any other dispatch, or the end of record(), records it as it is
            # first, so the program's order never changes.  Eager calls (no program) run at once.
            self._release_held_stack()          # one held at a time: an earlier one goes first
            self._held_stack = (record, tuple(id(o.handle) for o in outs), tuple(int(e) for e in ends))
            return
        record()

    def _release_held_stack(self, rope: Optional[tuple] = None) -> None:
        """Record the q/k/v dispatch matmul_stack held back: with rope_qkv in its epilogue when rope_qkv takes it
        (``rope``: _matmul's), else unfused (nothing took it)."""
        if self._held_stack is not None:
            record = self._held_stack[0]
            self._held_stack = None              # before recording it: its own _dispatch calls come back here
            record(rope)

    def _rope_epilogue_fits(self, q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, n_head: int,
                            n_kv_head: int, head_dim: int, n_rot: int, neox: bool) -> bool:
        """Whether rope_qkv can be done in the epilogue of the q/k/v mat-vec held back by matmul_stack (see
        there): it produced exactly these q, k, v (one row, stacked weights q | k | v, their rows as wide as the
        heads say), and each rotated pair of rows (2i, 2i + 1) of a head is finished by one workgroup pass, which
        holds when NR (rows per pass, passes starting at multiples of NR) is even and the pairs are adjacent
        (neox=False: llama's GGUF layout).  Otherwise rope_qkv is its own dispatch, after the held one."""
        held = self._held_stack
        if held is None or held[1] != (id(q.handle), id(k.handle), id(v.handle)):
            return False
        qw, kw = n_head * head_dim, n_kv_head * head_dim
        return (not neox and self._matvec_nr(held[2][2], stack=True) % 2 == 0 and head_dim % 2 == 0
                and n_rot % 2 == 0 and 0 < n_rot <= head_dim and held[2] == (qw, qw + kw, qw + 2 * kw)
                and (q.width, k.width, v.width, k_cache.width, v_cache.width) == (qw, kw, kw, kw, kw))

    def _matmul(self, out: Tensor, w: Weight, x: Tensor, bias: Optional[Weight], w_row0: int, out_col0: int,
                n_out: int, norm: Optional[Weight], eps: float, accumulate: bool,
                glu: Optional[tuple] = None, stack: Optional[tuple] = None, rope: Optional[tuple] = None) -> None:
        """Record the dispatches of one matmul (one per weight chunk the row window meets); ``glu`` =
        (kind, up_row_off): the one-pass matmul_glu over a stacked gate-up weight; ``stack`` = (out1, out2
        or None, out1_row, out2_row): matmul_stack's one pass over stacked weights (mat-vec only, one chunk);
        with ``rope`` = (k_cache, v_cache, freq_factors buffer or None, head_dim, n_rot, freq_base, freq_scale)
        also rope_qkv in its epilogue (matmul_vec.comp -DROPE; _rope_epilogue_fits says when)."""
        vw: VulkanWeight = w.handle
        bbuf = self._f32_buffer(bias)
        gbuf = self._f32_buffer(norm)
        cap = min(x.rows, out.rows)
        batch = cap > 1
        vec = not batch and vw.layout.split      # the v2 mat-vec (needs a split layout)
        tiled = batch and self.gemm != "rows"   # a tiled GEMM (GEMM_TILES): bm x bn tiles, no _sg variant
        mk = self.matvec_kernel
        if tiled:
            kernel, nr, bn = GEMM_TILES[self.gemm]
            if glu:                              # matmul_tiled.comp -DGLU: half a tile's slab rows are up rows
                kernel, nr = kernel + "glu_", nr // 2
        else:
            kernel = ("batch_" if batch else "vec_glu_" if glu else "vec_stack_rope_" if rope
                      else "vec_stack_" if stack else "vec_" if vec else "")
            nr = MATMUL_NR_BATCH if batch else self._matvec_nr(n_out, stack=bool(stack)) if vec else MATMUL_NR
        int_dot = vec and self.integer_dot and vw.layout in TILE_LAYOUTS.values()
        shader = f"matmul_{kernel}{vw.layout.shader}{'_idot' if int_dot else ''}{'' if tiled else self._sg}"
        # workgroups along the x rows: the tiled GEMM launches one per bn rows of the capacity (those
        # past the step's n_tokens exit at once); matmul.comp -DBATCH a few that loop over its NT-row tiles
        row_groups = (_groups(cap, bn) if tiled else min(_groups(cap, MATMUL_NT), MATMUL_TILE_GROUPS)
                      if batch else 1)
        wg = mk.wg
        if vec and vw.layout in TILE_LAYOUTS.values() and self.matvec_fit:
            wg = min(wg, TILE_THREADS * (w.width // TILE_WEIGHTS))     # no team of threads without a tile to take
        spec = (wg, nr, int(self.matvec_lanes)) if vec else ()         # matmul_vec.comp's specialization constants
        flags = (1 if bbuf is not None else 0) | (2 if accumulate else 0) | (4 if gbuf is not None else 0)
        act, up_row_off = ({"silu": 0, "gelu": 1}[glu[0]], glu[1]) if glu else (0, 0)
        tensors = [x.handle, out.handle, bbuf or self._dummy] + ([gbuf or self._dummy] if vec else [])
        writes = [out.handle]
        out1_row = out2_row = 0
        if stack:                                # the stack's other outputs (a 2-weight stack binds a dummy)
            out1, out2, out1_row, out2_row = stack
            out2_row = out2_row if out2 is not None else n_out
            tensors += [out1.handle, out2.handle if out2 is not None else self._dummy]
            writes += [t for t in tensors[-2:] if t is not self._dummy]
        rope_push = ()
        if rope:                                 # the caches q/k/v's epilogue writes, and the rope's parameters
            k_cache, v_cache, ff, head_dim, n_rot, freq_base, freq_scale = rope
            tensors += [k_cache.handle, v_cache.handle, ff or self._dummy]
            writes += [k_cache.handle, v_cache.handle]
            rope_push = (head_dim, n_rot, float(freq_base), float(freq_scale), int(ff is not None))
        for buf, lo, hi in vw.chunks:                    # the row window meets each chunk in [a, b)
            a, b = max(lo, w_row0), min(hi, w_row0 + n_out)
            if a >= b:
                continue
            n = b - a
            rows_read = 2 * n if glu else n          # the GLU kernel reads the up rows too
            k_split = self._k_split(_groups(n, nr), row_groups, w.width) if tiled and not glu else 1
            push = push_constants(w.width, vw.nb, a - lo, n, out_col0 + (a - w_row0), x.width, out.width, flags, a,
                                  cap, float(eps), act, up_row_off, out1_row, out2_row, k_split, *rope_push)
            # the tiled GEMM's binding 5: a split K's partial sums, which matmul_split_sum then adds into out
            part = self._scratch_for(k_split * cap * n, "gemm_split") if k_split > 1 else self._dummy
            self._dispatch(shader, [buf, *tensors, *([part] if tiled else [])], push,
                           (*self._matmul_groups(n, nr), row_groups * k_split), [part] if k_split > 1 else writes,
                           spec, what=w.name, nbytes=rows_read * split_bytes_per_row(w.ggml_type, w.width))
            if k_split > 1:
                self._dispatch("matmul_split_sum", [part, out.handle, bbuf or self._dummy], push,
                               (_groups(n, WG), self._row_groups(cap)), [out.handle], what=w.name)

    def _pre_normed(self, x: Tensor, norm: Weight, eps: float) -> Tensor:
        """rms_norm(x) * norm in a scratch buffer, for the kernels that cannot fold the norm in.  The
        q, k and v matmuls of a prompt share one copy: it is reused until x or the copy is written."""
        h = self.scratch(x.rows, x.width, "pre_norm")
        self._release_held_stack()              # its writes must reach _normed (in _dispatch) before the check
        key = (id(x.handle), id(h.handle), id(norm), float(eps), self._recording)
        if self._normed != key or self._recording is None:
            self.rms_norm(h, x, norm, eps)
            self._normed = key
        return h

    def _stack(self, weights: Sequence[Weight]) -> Optional[Weight]:
        """The weights' rows one after the other as one weight (gate then up for matmul_glu's one pass;
        q, k, v for matmul_stack's), uploaded once; None when they cannot be stacked (layouts, types,
        widths, several chunks, too big).  Afterwards each weight is a row window of the stack (a chunk
        with row_lo = -its first row there, see _matmul) and its own buffer is freed unless a recorded
        dispatch still binds it: memory does not grow."""
        key = tuple(id(w.handle) for w in weights)
        if key in self._stacks:
            return self._stacks[key][0]
        first, vws = weights[0], [w.handle for w in weights]
        if not (all(vw.layout.split and vw.layout == vws[0].layout and vw.raw is not None and len(vw.chunks) == 1
                    for vw in vws)
                and all((w.ggml_type, w.width) == (first.ggml_type, first.width) for w in weights)
                and sum(vw.raw.nbytes for vw in vws) + 4 * SPLIT_HEADER_WORDS + 4 <= self.max_buffer_bytes):
            return None
        rows = sum(w.rows for w in weights)
        raw = np.concatenate([vw.raw for vw in vws])                          # [rows, row bytes]
        buf = self._upload_split(vws[0].layout, raw, first.ggml_type, rows, first.width)
        stacked = Weight(rows, first.width, first.ggml_type, "+".join(w.name for w in weights),
                         VulkanWeight(vws[0].layout, vws[0].nb, [(buf, 0, rows)]))
        bound = {i for k in self._algos for i in k[1]}                           # buffers some dispatch binds
        row0 = 0
        for w, vw in zip(weights, vws):
            old = vw.chunks[0][0]
            vw.chunks = [(buf, -row0, rows - row0)]
            row0 += w.rows
            if id(old) not in bound:
                old.destroy()
                self.bytes_allocated -= vw.raw.nbytes
        self.bytes_allocated += raw.nbytes
        # the entry holds the weights' handles too: while it exists their ids cannot be reused by new weights,
        # which would otherwise find this stack under their key (an op harness case on the H100 got another
        # case's stacked weights that way, intermittently: 1e6 errors)
        self._stacks[key] = (stacked, vws)
        return stacked

    def _matvec_nr(self, n_out: int, stack: bool = False) -> int:
        """Weight rows per workgroup pass of the mat-vec (matmul_vec.comp's NR) for a matrix of n_out rows: the
        kernel's NR, halved (kept even, as the rope epilogue needs) when that leaves fewer than MATVEC_MIN_GROUPS
        workgroups, so that a small matrix still spreads over the GPU.  On the H100 (v3:4x128) halving made the
        1B shape's o, down and q/k/v mat-vecs (512-768 workgroups at NR 4) 10-20% faster and every larger one
        slower.  A q/k/v ``stack`` takes 1.5 x NR rows (6 of 4: still even) where that still leaves
        MATVEC_MIN_GROUPS workgroups: with the integer-dot mat-vec the 8B shape's 6144-row stack in 1024
        workgroups instead of 1536 made generation ~1% faster on the H100 (stop 26; o and down lost with 2 or 8
        rows, gate-up with 2; gate-up at 3 was within 0.5% and is not taken).  GPT4ALL_MATVEC_FIT=0 turns both
        off.  Not on a CPU device: there the workgroups are few anyway (_matmul_groups) and each loops over its
        groups, so half the rows a pass only meant loading x twice as often (lavapipe, SmolLM2 Q4_0 decode: 4.1
        tok/s with it, 5.4 without)."""
        nr = self.matvec_kernel.nr
        if not (self.matvec_fit and self.info.type != "cpu" and nr % 4 == 0):
            return nr
        if n_out < MATVEC_MIN_GROUPS * nr:
            return nr // 2
        if stack and n_out >= MATVEC_MIN_GROUPS * (nr + nr // 2):
            return nr + nr // 2
        return nr

    def _matmul_groups(self, n_out: int, nr: int) -> tuple[int, int]:
        """Workgroups (x, y) for n_out weight rows, NR per group.  A GPU gets one workgroup per
        group; a CPU Vulkan device runs workgroups as functions on a few cores, where each costs
        microseconds of set-up, so it gets at most CPU_MATMUL_GROUPS that loop over the groups."""
        g = _groups(n_out, nr)
        if self.info.type == "cpu":
            g = min(g, CPU_MATMUL_GROUPS)
        return min(g, MAX_GROUPS_X), _groups(g, MAX_GROUPS_X)

    def rope(self, x: Tensor, n_head: int, head_dim: int, n_rot: int, freq_base: float,
             neox: bool, freq_scale: float = 1.0, freq_factors: Optional[Weight] = None,
             positions: Optional[Tensor] = None, cache: Optional[Tensor] = None) -> None:
        ff = self._f32_buffer(freq_factors)
        if positions is not None and (positions.dtype != "i32" or positions.width != 1):
            raise ValueError(f"rope: positions must be i32 [rows, 1], got {positions.dtype} "
                             f"[{positions.rows}, {positions.width}]")
        if cache is not None and positions is not None:
            raise ValueError("rope: cache and positions cannot be combined")
        cap = x.rows if positions is None else min(x.rows, positions.rows)
        n_pairs = head_dim // 2 if cache is not None else n_rot // 2          # threads per head (rope.comp)
        self._dispatch("rope", [x.handle, ff or self._dummy,
                                positions.handle if positions is not None else self._dummy,
                                cache.handle if cache is not None else self._dummy],
                       push_constants(x.width, n_head, head_dim, n_rot, float(freq_base), float(freq_scale),
                                      int(neox), int(ff is not None), cap, int(positions is not None),
                                      int(cache is not None), 0),
                       (_groups(n_head * n_pairs, WG), self._row_groups(cap)),
                       [cache.handle if cache is not None else x.handle])

    def rope_qkv(self, q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, n_head: int,
                 n_kv_head: int, head_dim: int, n_rot: int, freq_base: float, neox: bool,
                 freq_scale: float = 1.0, freq_factors: Optional[Weight] = None) -> None:
        ff = self._f32_buffer(freq_factors)
        if self._rope_epilogue_fits(q, k, v, k_cache, v_cache, n_head, n_kv_head, head_dim, n_rot, neox):
            # decode: the q/k/v mat-vec matmul_stack held back does this in its epilogue (matmul_vec.comp -DROPE)
            self._release_held_stack(rope=(k_cache, v_cache, ff, head_dim, n_rot, freq_base, freq_scale))
            return
        # one dispatch (rope.comp -DQKV): q's pairs rotate in place, k's go rotated to the cache, v's are copied
        cap = min(q.rows, k.rows, v.rows)
        if k.width != v.width or k.width % 2:
            raise ValueError(f"rope_qkv: k [{k.rows}, {k.width}] and v [{v.rows}, {v.width}] must be as wide, and even")
        threads = n_head * (n_rot // 2) + n_kv_head * (head_dim // 2) + v.width // 2
        self._dispatch("rope_qkv", [k.handle, ff or self._dummy, self._dummy, k_cache.handle, q.handle, v.handle,
                                    v_cache.handle],
                       push_constants(k.width, n_kv_head, head_dim, n_rot, float(freq_base), float(freq_scale),
                                      int(neox), int(ff is not None), cap, 0, 1, n_head),
                       (_groups(threads, WG), self._row_groups(cap)), [k_cache.handle, q.handle, v_cache.handle])

    def store_kv(self, cache: Tensor, src: Tensor) -> None:
        self._dispatch("store_kv", [cache.handle, src.handle],
                       push_constants(src.width, src.rows, cache.rows),
                       (_groups(src.width, WG), self._row_groups(src.rows)), [cache.handle])

    def attention(self, out: Tensor, q: Tensor, k_cache: Tensor, v_cache: Tensor,
                  n_head: int, n_kv_head: int, head_dim: int, scale: float,
                  causal: bool = True, window: int = 0, softcap: float = 0.0,
                  seq_ids: Optional[Tensor] = None) -> None:
        if head_dim > 512:
            raise ValueError(f"attention: head_dim {head_dim} > 512 (MAX_HEAD_DIM of shaders/attention.comp)")
        cap = min(q.rows, out.rows)
        # flash-decoding split of the keys over workgroups: a decode step's single query row per
        # head would otherwise give a GPU one workgroup per head walking the whole cache
        n_split = self.attention_splits if self.attention_splits is not None else (
            1 if self.info.type == "cpu" or cap > 1 else ATTENTION_SPLITS)
        if not 1 <= n_split <= ATTENTION_MAX_SPLITS:
            raise ValueError(f"attention: {n_split} key slices (GPT4ALL_ATTENTION_SPLITS), not 1..{ATTENTION_MAX_SPLITS}")
        part = self._dummy
        if n_split > 1:
            # one scratch buffer per size, shared by every layer and step (the barriers order its
            # uses), so a k-step decode program reuses the same attention pipelines
            part = self._scratch_for(cap * n_head * n_split * (2 + head_dim), "attention parts")
        buffers = [q.handle, k_cache.handle, v_cache.handle, out.handle,
                   seq_ids.handle if seq_ids is not None else self._dummy, part]
        push = push_constants(n_head, n_kv_head, head_dim, float(scale), int(causal), int(window),
                              float(softcap), int(seq_ids is not None), cap, n_split)
        if n_split > 1 and head_dim % 4 == 0 and head_dim <= ATTENTION_DECODE_MAX_DIM:
            # attention_decode.comp: one workgroup per (KV head, block of <= ATTENTION_DECODE_HEADS of its
            # query heads, slice), so K and V are read once for the block; same buffers, push constants, part.
            # Its key rows are split over ATTENTION_DECODE_LANES lanes, summed by subgroup shuffles where
            # subgroups hold that many
            blocks = -(-(n_head // n_kv_head) // ATTENTION_DECODE_HEADS)
            groups = (n_kv_head * blocks, self._row_groups(cap), n_split)
            lanes = ATTENTION_DECODE_LANES
            sg = "_sg" if self.subgroups and self.info.subgroup_shuffle and self.info.subgroup_size >= lanes else ""
            vec4s_per_lane = -(-head_dim // (4 * lanes))
            # 256 threads where the device allows (twice the keys in flight per step), 128 for head_dim > 128
            # (its shared arrays: vec4s_per_lane x threads vec4s)
            wg = 256 if vec4s_per_lane <= 4 and self.info.max_workgroup_invocations >= 256 else 128
            self._dispatch("attention_decode" + sg, buffers, push, groups, [part], spec=(wg, vec4s_per_lane))
        elif n_split == 1 and cap > 1 and (kernel := self._prompt_attention_kernel(head_dim)) is not None:
            # a workgroup per (grp query heads of one KV group, block of query rows): its `slots` query slots are those
            # heads x slots / grp rows, so each K / V tile it loads serves grp heads
            shader, slots = kernel
            grp = math.gcd(slots, n_head // n_kv_head) if self.attention_prompt_gqa else 1
            groups = (n_head // grp, min(self._row_groups(cap), -(-cap // (slots // grp))), 1)
            self._dispatch(shader, buffers[:5], np.concatenate([push, push_constants(grp)]), groups, [out.handle])
        else:
            self._dispatch("attention" + self._sg, buffers, push, (n_head, self._row_groups(cap), n_split),
                           [part if n_split > 1 else out.handle])
        if n_split > 1:                 # the slices, merged by a second dispatch
            self._dispatch("attention_merge", [part, out.handle], push_constants(n_head, head_dim, n_split, cap),
                           (n_head, self._row_groups(cap)), [out.handle])

    def _no_coopmat(self, setting: str) -> ValueError:
        """The error for a setting that asks for cooperative matrices on a device (or kp) without usable ones."""
        return ValueError(f"{setting}: '{self.info.name}' has no f16 cooperative matrices of shape {COOPMAT_SHAPE} with "
                          f"32-wide subgroups (it offers {self.info.coopmat_shapes or 'none'}, subgroup "
                          f"{self.info.subgroup_size}), or kp lacks tools/kp_patch.py's device features")

    def _prompt_attention_kernel(self, head_dim: int) -> Optional[tuple[str, int]]:
        """The tiled kernel for a batch's attention and its query slots per workgroup: attention_prompt_cm.comp on
        tensor cores (GPT4ALL_ATTENTION_PROMPT=coopmat; head_dim 64 or 128, its shared arrays within the device's),
        else attention_prompt.comp (f32; head_dim % 4 == 0, <= 256); None for attention.comp (or 'rows')."""
        if self.attention_prompt == "coopmat" and head_dim in ATTENTION_PROMPT_CM_DIMS \
                and _attention_cm_shared_bytes(head_dim) <= self.info.max_shared_memory:
            return f"attention_prompt_cm_d{head_dim}", ATTENTION_PROMPT_CM_SLOTS
        if self.attention_prompt != "rows" and head_dim % 4 == 0 and head_dim <= ATTENTION_PROMPT_MAX_DIM:
            return "attention_prompt", 16 if head_dim <= 128 else 8
        return None

    def _rowwise(self, shader: str, tensors: list, width: int, cap: int, *extra) -> None:
        """An element-wise op whose last buffer is its output."""
        self._dispatch(shader, tensors, push_constants(width, cap, *extra), (_groups(width, WG), self._row_groups(cap)),
                       [tensors[-1]])

    def add(self, out: Tensor, a: Tensor, b: Tensor) -> None:
        self._rowwise("add", [a.handle, b.handle, out.handle], out.width, min(a.rows, b.rows, out.rows))

    def scale(self, out: Tensor, x: Tensor, s: float) -> None:
        self._rowwise("scale", [x.handle, out.handle], out.width, min(x.rows, out.rows), float(s))

    def _weight_row_op(self, op: str, out: Tensor, a: Tensor, w: Weight) -> None:
        vw: VulkanWeight = w.handle
        cap = min(a.rows, out.rows)
        self._dispatch(f"{op}_weight_{vw.layout.shader}", [vw.chunks[0][0], a.handle, out.handle],
                       push_constants(out.width, cap), (_groups(_groups(out.width, 8), WG), self._row_groups(cap)),
                       [out.handle])

    def add_weight(self, out: Tensor, a: Tensor, w: Weight) -> None:
        self._weight_row_op("add", out, a, w)

    def mul_weight(self, out: Tensor, x: Tensor, w: Weight) -> None:
        self._weight_row_op("mul", out, x, w)

    def glu(self, out: Tensor, gate: Tensor, up: Tensor, kind: str) -> None:
        if kind not in ("silu", "gelu"):
            raise ValueError(f"glu kind must be 'silu' or 'gelu', not {kind!r}")
        self._rowwise(f"glu_{kind}", [gate.handle, up.handle, out.handle], out.width,
                      min(gate.rows, up.rows, out.rows))

    def gelu(self, out: Tensor, x: Tensor) -> None:
        self._rowwise("gelu", [x.handle, out.handle], out.width, min(x.rows, out.rows))

    def softmax(self, out: Tensor, x: Tensor) -> None:
        cap = min(x.rows, out.rows)
        self._dispatch("softmax", [x.handle, out.handle], push_constants(x.width, cap), (self._row_groups(cap),),
                       [out.handle])

    def copy_rows(self, out: Tensor, x: Tensor, src_row: int = -1, n_rows: int = 1) -> None:
        self._dispatch("copy_rows", [x.handle, out.handle], push_constants(x.width, src_row, n_rows),
                       (_groups(x.width, WG), n_rows), [out.handle])

    def mean_pool(self, out: Tensor, x: Tensor, seq_starts: Tensor, n_seqs: int) -> None:
        self._dispatch("mean_pool", [x.handle, seq_starts.handle, out.handle], push_constants(x.width, n_seqs),
                       (_groups(x.width, WG), n_seqs), [out.handle])

    def l2_normalize(self, out: Tensor, x: Tensor, n_rows: int) -> None:
        self._dispatch("l2_normalize", [x.handle, out.handle], push_constants(x.width, n_rows), (n_rows,),
                       [out.handle])

    def _scratch_for(self, n: int, use: str = "logits") -> "kp.Tensor":
        """A device-only f32 buffer of ``n`` words for ``use``, shared by every dispatch that asks for the same."""
        if (use, n) not in self._scratch:
            self._scratch[use, n] = self.mgr.tensor_t(np.zeros(n, np.float32), kp.TensorTypes.storage)
        return self._scratch[use, n]

    def sample(self, out_token: Tensor, logits: Tensor, history: Tensor, slot: int = 0) -> None:
        nv = logits.width
        scratch = self._scratch_for(nv)
        sk = self.sample_kernel
        if sk.version == "v1":
            self._dispatch("sample", [self._samp_t, logits.handle, history.handle, scratch, out_token.handle],
                           push_constants(nv, slot), (1,), [scratch, out_token.handle], spec=(self.sample_wg,))
            return
        # v2: each of `groups` workgroups penalises its slice of the logits and leaves its arg-max or top-k
        # candidates in `parts` (scratch: the penalised slice, for a top-k beyond the budget); one workgroup
        # finishes.  Only the merge binds out_token, so a k-step program's slices reuse the one-step pipeline
        sl, wg = sk.slicing(nv, self.info)
        groups = _groups(nv, sl)
        parts = self._scratch_for(2 * groups * (1 + sk.cands), "sample parts")   # layout: sample_partial.comp
        self._dispatch("sample_partial", [self._samp_t, logits.handle, history.handle, scratch, parts],
                       push_constants(nv, sl, sk.cands), (groups,), [scratch, parts], spec=(wg,),
                       what=f"{groups}x{sl}")
        self._dispatch("sample_merge", [self._samp_t, scratch, parts, out_token.handle],
                       push_constants(nv, slot, sl, sk.cands), (1,), [out_token.handle], spec=(self.sample_wg,))

    def advance(self, ids: Tensor, tokens: Tensor, history: Tensor, slot: int = 0) -> None:
        self._dispatch("advance", [tokens.handle, ids.handle, history.handle],
                       push_constants(slot, history.rows), (1,), [self._step_t, ids.handle, history.handle])
