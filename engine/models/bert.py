"""BERT-style sentence encoders: architectures `bert` (all-MiniLM, bge, e5) and `nomic-bert`.

An encoder, not a decoder: every token of a sequence attends to every other token of the same
sequence (no causal mask, no KV cache), and the output is one vector per sequence -- the mean of
the last hidden states (GGUF `pooling_type` 1, the only pooling these models use upstream).

    x = token_embd[id] + position_embd[pos] + token_types[0]      (bert)
    x = token_embd[id] + token_types[0], RoPE on q/k instead       (nomic-bert)
    x = LayerNorm(x)                                               token_embd_norm
    per layer (post-norm, as the original BERT):
        x = LayerNorm(x + attn_output(Attention(q, k, v)))         attn_output_norm
        x = LayerNorm(x + ffn_down(act(x)))                        layer_output_norm
            act = GELU(ffn_up x)                  (bert)
                  SiLU(ffn_gate x) * (ffn_up x)   (nomic-bert, SwiGLU)
    embedding[s] = mean of x over the rows of sequence s

Batching: several token lists are packed into one forward pass of about `pass_tokens` rows (at most
`capacity` = n_ctx), for both architectures.  Each row carries its sequence id (attention only looks
within its own sequence) and its position inside its sequence: BERT indexes its learned position
table with it, nomic-bert hands it to ops.rope as the rotation position, so every packed sequence
starts again at 0 and packing is exact.

Everything on activations is an ops call, so this file runs unchanged on the NumPy and Vulkan backends.
The pooled vectors are returned *not* normalised: upstream normalises (and, for Matryoshka models,
layer-normalises) per chunk in float64 on the host; gpt4all/_embed.py does that.
"""
from __future__ import annotations

import math
import os
from typing import Any, Optional

import numpy as np

from ..ops import Ops, Program, Weight


PASS_TOKENS = 512      # target rows per packed forward pass (env GPT4ALL_EMBED_PASS_TOKENS); see Bert.__init__


def _metadata(g: Any) -> dict:
    """GGUF key -> plain value, from the engine's loaded file or a raw gguf.GGUFReader."""
    md = getattr(g, "metadata", None)
    if md is not None:
        return md
    return {k: f.contents() for k, f in g.fields.items()}


def _tensor_table(g: Any) -> dict:
    """GGUF tensor name -> tensor record (tensor_type, shape in GGUF order, data as GGUFReader gives it)."""
    t = getattr(g, "tensors")
    return t if isinstance(t, dict) else {x.name: x for x in t}


class _Block:
    """One encoder layer's weights, attributes named after the GGUF tensors (blk.N.<name>)."""
    attn_q: Weight; attn_q_b: Optional[Weight]
    attn_k: Weight; attn_k_b: Optional[Weight]
    attn_v: Weight; attn_v_b: Optional[Weight]
    attn_qkv: Optional[Weight]
    attn_output: Weight; attn_output_b: Optional[Weight]
    attn_output_norm: Weight; attn_output_norm_b: Weight
    ffn_up: Weight; ffn_up_b: Optional[Weight]
    ffn_gate: Optional[Weight]
    ffn_down: Weight; ffn_down_b: Optional[Weight]
    layer_output_norm: Weight; layer_output_norm_b: Weight


class Bert:
    """A BERT / nomic-BERT encoder on an Ops backend.  `embed(batch)` -> pooled vectors [len(batch), n_embd]."""

    def __init__(self, gguf_model: Any, ops: Ops, n_ctx: int, n_batch: int):
        md = _metadata(gguf_model)
        self.arch = arch = md["general.architecture"]
        if arch not in ("bert", "nomic-bert"):
            raise ValueError(f"unsupported architecture {arch!r} for engine.models.bert (supported: bert, nomic-bert)")
        self.ops = ops
        self.nomic = arch == "nomic-bert"
        self.n_embd = int(md[f"{arch}.embedding_length"])
        self.n_ff = int(md[f"{arch}.feed_forward_length"])
        self.n_layer = int(md[f"{arch}.block_count"])
        self.n_head = int(md[f"{arch}.attention.head_count"])
        self.head_dim = self.n_embd // self.n_head
        self.eps = float(md[f"{arch}.attention.layer_norm_epsilon"])
        self.n_ctx_train = int(md[f"{arch}.context_length"])
        self.rope_base = float(md.get(f"{arch}.rope.freq_base", 10000.0))
        pooling = int(md.get(f"{arch}.pooling_type", 1))
        if pooling != 1:
            raise ValueError(f"{arch}: pooling_type {pooling} is not supported (only 1 = mean)")
        # Upstream runs embedding models with n_batch = n_ubatch = n_ctx: one forward pass holds up to
        # n_ctx tokens, of one or several sequences.  A sequence itself is at most n_ctx_train long.
        self.capacity = int(n_ctx)
        self.max_seq_len = min(self.n_ctx_train, self.capacity)
        # Short texts are packed into passes of about pass_tokens rows, not n_ctx: attention over a packed
        # pass costs n_rows^2 (the backends mask other sequences' keys rather than skip them), so a full
        # 2048-row pass of MiniLM spends more on masked attention than on its matmuls.  Results do not
        # depend on how sequences are grouped; a sequence longer than pass_tokens gets a pass of its own.
        self.pass_tokens = int(os.environ.get("GPT4ALL_EMBED_PASS_TOKENS", PASS_TOKENS))
        del n_batch  # the decoders' prompt batch size: not what bounds an encoder's pass

        self._load_weights(_tensor_table(gguf_model))
        self._alloc()
        self._programs: dict[int, Program] = {}   # n_seqs -> recorded forward pass (mean_pool's count is fixed)

    # ------------------------------------------------------------------ weights
    def _load_weights(self, tensors: dict) -> None:
        ops = self.ops

        def w(name: str, required: bool = True) -> Optional[Weight]:
            t = tensors.get(name)
            if t is None:
                if required:
                    raise ValueError(f"{self.arch}: missing tensor {name!r}")
                return None
            return ops.weight(name, int(t.tensor_type), [int(d) for d in t.shape], t.data)

        E = self.n_embd
        self.token_embd = w("token_embd.weight")                # [n_vocab, E]
        self.position_embd = w("position_embd.weight", required=not self.nomic)   # [n_ctx_train, E]
        self.token_types = w("token_types.weight", required=False)  # [n_types, E]; row 0 = segment A
        self.token_embd_norm = w("token_embd_norm.weight")      # [E]
        self.token_embd_norm_b = w("token_embd_norm.bias")      # [E]
        self.blk: list[_Block] = []
        for i in range(self.n_layer):
            b, p = _Block(), f"blk.{i}."
            if self.nomic:
                b.attn_qkv = w(p + "attn_qkv.weight")           # [3E, E]: q rows, then k, then v
                b.attn_q_b = b.attn_k_b = b.attn_v_b = None
            else:
                b.attn_qkv = None
                for m in ("attn_q", "attn_k", "attn_v"):        # [E, E] each, with bias [E]
                    setattr(b, m, w(p + m + ".weight"))
                    setattr(b, m + "_b", w(p + m + ".bias"))
            b.attn_output = w(p + "attn_output.weight")         # [E, E]
            b.attn_output_b = w(p + "attn_output.bias", required=not self.nomic)
            b.attn_output_norm = w(p + "attn_output_norm.weight")
            b.attn_output_norm_b = w(p + "attn_output_norm.bias")
            b.ffn_up = w(p + "ffn_up.weight")                   # [F, E]
            b.ffn_up_b = w(p + "ffn_up.bias", required=not self.nomic)
            b.ffn_gate = w(p + "ffn_gate.weight") if self.nomic else None   # [F, E]
            b.ffn_down = w(p + "ffn_down.weight")               # [E, F]
            b.ffn_down_b = w(p + "ffn_down.bias", required=not self.nomic)
            b.layer_output_norm = w(p + "layer_output_norm.weight")
            b.layer_output_norm_b = w(p + "layer_output_norm.bias")
            self.blk.append(b)
        if self.token_embd.width != E:
            raise ValueError(f"{self.arch}: token_embd.weight has rows of {self.token_embd.width}, expected {E}")

    # ------------------------------------------------------------------ buffers
    def _alloc(self) -> None:
        ops, R, E, F = self.ops, self.capacity, self.n_embd, self.n_ff
        self.max_seqs = R                                      # at most one sequence per row
        self.ids = ops.tensor(R, 1, "i32", "ids")               # token id of each row
        self.pos_ids = ops.tensor(R, 1, "i32", "pos_ids")       # position of each row inside its sequence
        self.seq_ids = ops.tensor(R, 1, "i32", "seq_ids")       # which sequence each row belongs to
        self.seq_starts = ops.tensor(self.max_seqs + 1, 1, "i32", "seq_starts")  # first row of each sequence
        self.x = ops.tensor(R, E, name="x")                     # [R, E] the residual stream
        self.tmp = ops.tensor(R, E, name="tmp")                 # [R, E] embeddings / sublayer outputs
        self.q = ops.tensor(R, E, name="q")                     # [R, n_head * head_dim]
        self.k = ops.tensor(R, E, name="k")                     # [R, E] (no cache: the batch is the context)
        self.v = ops.tensor(R, E, name="v")                     # [R, E]
        self.attn = ops.tensor(R, E, name="attn")               # [R, E] attention output before attn_output
        self.ff = ops.tensor(R, F, name="ff")                   # [R, F] up projection (and SwiGLU result)
        self.ff_act = ops.tensor(R, F, name="ff_act")           # [R, F] activation (bert) / gate (nomic)
        self.ff_glu = ops.tensor(R, F, name="ff_glu") if self.nomic else None   # [R, F] SwiGLU output
        self.pooled = ops.tensor(self.max_seqs, E, name="pooled")   # [max_seqs, E] one vector per sequence

    # ------------------------------------------------------------------ forward pass
    def _forward(self, n_seqs: int) -> None:
        """Record the whole encoder for a batch of n_seqs sequences (row count from the step buffer)."""
        ops, E, H, D = self.ops, self.n_embd, self.n_head, self.head_dim
        x, tmp = self.x, self.tmp
        ops.get_rows(x, self.token_embd, self.ids)
        if self.position_embd is not None:
            ops.get_rows(tmp, self.position_embd, self.pos_ids)
            ops.add(x, x, tmp)
        if self.token_types is not None:
            ops.add_weight(x, x, self.token_types)              # every token is in segment A (type 0)
        ops.layer_norm(x, x, self.token_embd_norm, self.token_embd_norm_b, self.eps)
        for b in self.blk:
            if self.nomic:          # fused QKV: a row window of one matrix per projection
                for j, out in enumerate((self.q, self.k, self.v)):
                    ops.matmul(out, b.attn_qkv, x, None, w_row0=j * E, n_out=E)
                # positions inside each packed sequence, not the row index (pos + t) of the batch
                ops.rope(self.q, H, D, D, self.rope_base, neox=True, positions=self.pos_ids)
                ops.rope(self.k, H, D, D, self.rope_base, neox=True, positions=self.pos_ids)
            else:
                ops.matmul(self.q, b.attn_q, x, b.attn_q_b)
                ops.matmul(self.k, b.attn_k, x, b.attn_k_b)
                ops.matmul(self.v, b.attn_v, x, b.attn_v_b)
            ops.attention(self.attn, self.q, self.k, self.v, H, H, D, 1.0 / math.sqrt(D),
                          causal=False, seq_ids=self.seq_ids)
            ops.matmul(tmp, b.attn_output, self.attn, b.attn_output_b)
            ops.add(x, x, tmp)
            ops.layer_norm(x, x, b.attn_output_norm, b.attn_output_norm_b, self.eps)
            if self.nomic:
                ops.matmul(self.ff_act, b.ffn_gate, x)
                ops.matmul(self.ff, b.ffn_up, x)
                ops.glu(self.ff_glu, self.ff_act, self.ff, "silu")   # silu(gate) * up
                ops.matmul(tmp, b.ffn_down, self.ff_glu, b.ffn_down_b)
            else:
                ops.matmul(self.ff, b.ffn_up, x, b.ffn_up_b)
                ops.gelu(self.ff_act, self.ff)
                ops.matmul(tmp, b.ffn_down, self.ff_act, b.ffn_down_b)
            ops.add(x, x, tmp)
            ops.layer_norm(x, x, b.layer_output_norm, b.layer_output_norm_b, self.eps)
        ops.mean_pool(self.pooled, x, self.seq_starts, n_seqs)

    def _program(self, n_seqs: int) -> Program:
        prog = self._programs.get(n_seqs)
        if prog is None:
            with self.ops.record() as prog:
                self._forward(n_seqs)
            self._programs[n_seqs] = prog
        return prog

    # ------------------------------------------------------------------ public
    def plan(self, lengths: list[int]) -> list[list[int]]:
        """Indices of the sequences each forward pass takes, greedily in order (a pass is closed when the
        next sequence would take it past pass_tokens rows, or past capacity)."""
        passes: list[list[int]] = []
        used, limit = 0, max(1, min(self.capacity, self.pass_tokens))
        for i, n in enumerate(lengths):
            if n > self.max_seq_len:
                raise ValueError(f"sequence {i} has {n} tokens; this model takes at most {self.max_seq_len}")
            if n == 0:
                raise ValueError(f"sequence {i} is empty")
            if not passes or used + n > limit or len(passes[-1]) == self.max_seqs:
                passes.append([])
                used = 0
            passes[-1].append(i)
            used += n
        return passes

    def embed(self, batch: list[list[int]]) -> np.ndarray:
        """Mean-pooled, un-normalised last hidden state of each token list: float32 [len(batch), n_embd]."""
        out = np.zeros((len(batch), self.n_embd), dtype=np.float32)
        for idx in self.plan([len(s) for s in batch]):
            seqs = [batch[i] for i in idx]
            lens = np.array([len(s) for s in seqs])
            n = int(lens.sum())
            starts = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)          # [n_seqs + 1]
            ids = np.concatenate([np.asarray(s, dtype=np.int32) for s in seqs])      # [n]
            pos = np.concatenate([np.arange(k, dtype=np.int32) for k in lens])       # [n]
            sid = np.repeat(np.arange(len(seqs), dtype=np.int32), lens)              # [n]
            self.ops.write(self.ids, ids[:, None])
            self.ops.write(self.pos_ids, pos[:, None])
            self.ops.write(self.seq_ids, sid[:, None])
            self.ops.write(self.seq_starts, starts[:, None])
            self.ops.set_step(n_tokens=n, pos=0)
            self.ops.run(self._program(len(seqs)))
            out[idx] = self.ops.read(self.pooled, rows=len(seqs))
        return out
