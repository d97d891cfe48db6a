"""Phi-3 decoder: llama's graph with fused weights.

    x = token_embd[ids]
    for each layer:
        h = rms_norm(x) * attn_norm
        qkv = h @ Wqkv             one fused matrix [n_embd -> n_embd + 2 * kv_width]: rows
                                   [0, q) are Q, [q, q + kv) K, [q + kv, q + 2kv) V; the matmul's row
                                   window reads each part straight into its own buffer, no copy
        rope(q), rope(k)           "neox" pairs (i, i + n_rot/2); long-context files carry per-frequency
                                   divisors (rope_factors_short / rope_factors_long) and LongRoPE's
                                   attention factor m, which scales the rotated dims of q and k
        x += attention(q, cache) @ Wo          (full causal attention: llama.cpp ignores phi3's window)
        h = rms_norm(x) * ffn_norm
        gate_up = h @ Wup          fused [n_embd -> 2 * n_ff]: rows [0, n_ff) gate, [n_ff, 2 n_ff) up
        x += (silu(gate) * up) @ Wdown
    logits = rms_norm(x[last]) * output_norm @ Wout
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from gguf import GGMLQuantizationType

from ..gguf_file import GGUFFile, Phi3HParams
from .base import Buffers, DecoderModel


class Phi3(DecoderModel):
    @classmethod
    def hparams(cls, f: GGUFFile) -> Phi3HParams:
        # phi3 files often say attention.sliding_window (Phi-3-mini-4k: 2047), but llama.cpp disables
        # sliding-window attention for phi3 (it reads the key, warns, and sets no window: its converter
        # cannot say which layers would use it; llama.cpp PR 13676), so we attend to the whole context
        # too and give the same logits as llama.cpp on prompts longer than the window.
        return f.decoder_hparams(Phi3HParams, sliding_window=0)

    def load_weights(self) -> None:
        hp = self.hp
        d, ff, qw, kvw = hp.n_embd, hp.n_ff, hp.n_head * hp.head_dim, hp.kv_width
        self.token_embd = self.weight("token_embd.weight", (d, hp.n_vocab))
        self.output_norm = self.weight("output_norm.weight", (d,))
        self.output = self.optional_weight("output.weight", (d, hp.n_vocab)) or self.token_embd
        # LongRoPE (128k-context files): short factors while the context fits the original training
        # length, long ones beyond it; like llama.cpp, decided once by n_ctx, not per position
        n_orig = int(self.f.get(".rope.scaling.original_context_length", hp.n_ctx_train))
        factors = "rope_factors_long.weight" if self.n_ctx > n_orig else "rope_factors_short.weight"
        self.rope_factors = self.optional_weight(factors, (hp.n_rot // 2,))
        self.load_rope_attn_factor()
        self.blk = []
        for i in range(hp.n_layer):
            p = f"blk.{i}."
            blk = SimpleNamespace(
                attn_norm=self.weight(p + "attn_norm.weight", (d,)),
                attn_qkv=self.optional_weight(p + "attn_qkv.weight", (d, qw + 2 * kvw)),
                attn_output=self.weight(p + "attn_output.weight", (qw, d)),
                ffn_norm=self.weight(p + "ffn_norm.weight", (d,)),
                ffn_up=self.weight(p + "ffn_up.weight", (d, 2 * ff)),
                ffn_down=self.weight(p + "ffn_down.weight", (ff, d)),
            )
            if blk.attn_qkv is None:      # some conversions store Q, K, V separately
                blk.attn_q = self.weight(p + "attn_q.weight", (d, qw))
                blk.attn_k = self.weight(p + "attn_k.weight", (d, kvw))
                blk.attn_v = self.weight(p + "attn_v.weight", (d, kvw))
            self.blk.append(blk)

    def load_rope_attn_factor(self) -> None:
        """LongRoPE's attention factor m: llama.cpp multiplies the cos and sin of every rotation by it
        (ggml_rope_ext's attn_factor), with either factor table, so the rotated dims of q and k grow by m.

        m comes from rope.scaling.attn_factor, which convert_hf_to_gguf.py writes for LongRoPE models as
        sqrt(1 + ln(context_length / original_context_length) / ln(original_context_length)); a file
        without the key gets m = 1, as in llama.cpp (it never derives m itself).
        Our rope op has no amplitude, so m is applied around it:
        - n_rot == head_dim: every score q.k grows by m^2, so attention's scale takes the m^2 (free);
        - n_rot < head_dim (Phi-4-mini rotates 3/4 of each head): only the rotated dims grow, which no
          scale on the scores reproduces; q and k are multiplied after rope by a row that holds m on the
          rotated dims of each head and 1 on the others (self.rope_mscale_q / _k).
        """
        hp = self.hp
        self.rope_attn_factor = float(self.f.get(".rope.scaling.attn_factor", 1.0) or 1.0)
        self.rope_mscale_q = self.rope_mscale_k = None
        if self.rope_attn_factor != 1.0 and hp.n_rot < hp.head_dim:
            per_head = np.ones(hp.head_dim, np.float32)                          # [head_dim]
            per_head[:hp.n_rot] = self.rope_attn_factor
            q_row = np.tile(per_head, hp.n_head)                                 # [n_head * head_dim]
            k_row = np.tile(per_head, hp.n_head_kv)                              # [kv_width]
            self.rope_mscale_q = self.ops.weight("rope_mscale_q", int(GGMLQuantizationType.F32),
                                                 (q_row.size,), q_row)
            self.rope_mscale_k = self.ops.weight("rope_mscale_k", int(GGMLQuantizationType.F32),
                                                 (k_row.size,), k_row)

    def attention_scale(self) -> float:
        """1/sqrt(head_dim), times m^2 when the whole head is rotated (see load_rope_attn_factor)."""
        scale = 1.0 / math.sqrt(self.hp.head_dim)
        if self.rope_mscale_q is None:
            scale *= self.rope_attn_factor ** 2
        return scale

    def buffers(self, cap: int) -> Buffers:
        hp, t = self.hp, self.ops.tensor
        return Buffers(
            cap=cap,
            ids=t(cap, 1, "i32", "ids"),                          # [cap, 1]
            x=t(cap, hp.n_embd, name="x"),                        # [cap, n_embd]  residual stream
            h=t(cap, hp.n_embd, name="h"),                        # [cap, n_embd]
            q=t(cap, hp.n_head * hp.head_dim, name="q"),          # [cap, n_head * head_dim]
            k=t(cap, hp.kv_width, name="k"),                      # [cap, kv_width]
            v=t(cap, hp.kv_width, name="v"),                      # [cap, kv_width]
            attn=t(cap, hp.n_head * hp.head_dim, name="attn"),    # [cap, n_head * head_dim]
            gate=t(cap, hp.n_ff, name="gate"),                    # [cap, n_ff]
            up=t(cap, hp.n_ff, name="up"),                        # [cap, n_ff]
            last=t(1, hp.n_embd, name="last"),                    # [1, n_embd]
            logits=t(1, hp.n_vocab, name="logits"),               # [1, n_vocab]
        )

    def forward(self, b: Buffers) -> None:
        ops, hp = self.ops, self.hp
        qw, kvw, ff = hp.n_head * hp.head_dim, hp.kv_width, hp.n_ff
        rope = dict(n_rot=hp.n_rot, freq_base=hp.rope_freq_base, neox=True,
                    freq_scale=hp.rope_freq_scale, freq_factors=self.rope_factors)
        ops.get_rows(b.x, self.token_embd, b.ids)
        # residual adds fused with the norm after them (one GPU dispatch each), as in llama.py
        ops.rms_norm(b.h, b.x, self.blk[0].attn_norm, hp.norm_eps)
        for i, blk in enumerate(self.blk):
            if blk.attn_qkv is not None:     # split the fused QKV by row windows
                ops.matmul(b.q, blk.attn_qkv, b.h, w_row0=0, n_out=qw)
                ops.matmul(b.k, blk.attn_qkv, b.h, w_row0=qw, n_out=kvw)
                ops.matmul(b.v, blk.attn_qkv, b.h, w_row0=qw + kvw, n_out=kvw)
            else:
                ops.matmul(b.q, blk.attn_q, b.h)
                ops.matmul(b.k, blk.attn_k, b.h)
                ops.matmul(b.v, blk.attn_v, b.h)
            ops.rope(b.q, hp.n_head, hp.head_dim, **rope)
            ops.rope(b.k, hp.n_head_kv, hp.head_dim, **rope)
            if self.rope_mscale_q is not None:      # partial rotation: m on the rotated dims only
                ops.mul_weight(b.q, b.q, self.rope_mscale_q)
                ops.mul_weight(b.k, b.k, self.rope_mscale_k)
            ops.store_kv(self.kv.k[i], b.k)
            ops.store_kv(self.kv.v[i], b.v)
            ops.attention(b.attn, b.q, self.kv.k[i], self.kv.v[i], hp.n_head, hp.n_head_kv,
                          hp.head_dim, scale=self.attention_scale())
            ops.matmul(b.h, blk.attn_output, b.attn)
            ops.add_rms_norm(b.x, b.h, b.h, blk.ffn_norm, hp.norm_eps)     # x += h; h = rms_norm(x) * ffn_norm
            ops.matmul(b.gate, blk.ffn_up, b.h, w_row0=0, n_out=ff)       # fused gate-up: gate half
            ops.matmul(b.up, blk.ffn_up, b.h, w_row0=ff, n_out=ff)        # up half
            ops.glu(b.gate, b.gate, b.up, "silu")
            ops.matmul(b.h, blk.ffn_down, b.gate)
            if i + 1 < len(self.blk):       # x += h; h = rms_norm(x) * the next layer's attn_norm
                ops.add_rms_norm(b.x, b.h, b.h, self.blk[i + 1].attn_norm, hp.norm_eps)
            else:                           # the output norm below needs the last row only
                ops.add(b.x, b.x, b.h)
        last = self.last_row(b)                 # (normed in place: a decode step's next get_rows rewrites x)
        ops.rms_norm(last, last, self.output_norm, hp.norm_eps)
        ops.matmul(b.logits, self.output, last)
