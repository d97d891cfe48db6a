"""Gemma 3 decoder: llama's skeleton with extra norms, GeGLU and sliding-window layers.

    x = token_embd[ids] * sqrt(n_embd)                    # Gemma scales the embeddings
    for each layer:
        h = rms_norm(x) * attn_norm
        q, k, v = h @ Wq, h @ Wk, h @ Wv
        q = rms_norm_per_head(q) * attn_q_norm            # q/k norms: each head's vector to unit RMS
        k = rms_norm_per_head(k) * attn_k_norm
        rope(q), rope(k)      ("neox" pairs (i, i + d/2); base 10000 on local layers, freq_base on global)
        q *= 1 / sqrt(head_dim)
        a = attention(q, cache)                           # local layers see only the last `window` positions
        x += rms_norm(a @ Wo) * post_attention_norm       # a norm *after* the attention branch too
        h = rms_norm(x) * ffn_norm
        x += rms_norm((gelu(h @ Wgate) * (h @ Wup)) @ Wdown) * post_ffw_norm    # GeGLU, post-norm
    logits = rms_norm(x[last]) * output_norm @ token_embd  # always tied

Layers are local (sliding window of attention.sliding_window positions) except every 6th one
(il % 6 == 5), which is global.  Gemma's RMS norms multiply by (1 + w); the GGUF converter has
already added the 1 to the stored weights, so they are used as they are.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

from ..gguf_file import Gemma3HParams, GGUFFile
from .base import Buffers, DecoderModel


class Gemma3(DecoderModel):
    @classmethod
    def hparams(cls, f: GGUFFile) -> Gemma3HParams:
        hp = f.decoder_hparams(Gemma3HParams, sliding_window=int(f.get(".attention.sliding_window", 0)))
        hp.attn_scale = 1.0 / math.sqrt(hp.head_dim)
        return hp

    def is_local(self, layer: int) -> bool:
        return self.hp.sliding_window > 0 and layer % self.hp.swa_period != self.hp.swa_period - 1

    def load_weights(self) -> None:
        hp = self.hp
        d, ff, hd = hp.n_embd, hp.n_ff, hp.head_dim
        qw, kvw = hp.n_head * hd, hp.kv_width
        self.token_embd = self.weight("token_embd.weight", (d, hp.n_vocab))
        self.output_norm = self.weight("output_norm.weight", (d,))
        self.output = self.optional_weight("output.weight", (d, hp.n_vocab)) or self.token_embd
        self.blk = []
        for i in range(hp.n_layer):
            p = f"blk.{i}."
            self.blk.append(SimpleNamespace(
                attn_norm=self.weight(p + "attn_norm.weight", (d,)),
                attn_q=self.weight(p + "attn_q.weight", (d, qw)),
                attn_k=self.weight(p + "attn_k.weight", (d, kvw)),
                attn_v=self.weight(p + "attn_v.weight", (d, kvw)),
                attn_q_norm=self.weight(p + "attn_q_norm.weight", (hd,)),
                attn_k_norm=self.weight(p + "attn_k_norm.weight", (hd,)),
                attn_output=self.weight(p + "attn_output.weight", (qw, d)),
                post_attention_norm=self.weight(p + "post_attention_norm.weight", (d,)),
                ffn_norm=self.weight(p + "ffn_norm.weight", (d,)),
                ffn_gate=self.weight(p + "ffn_gate.weight", (d, ff)),
                ffn_up=self.weight(p + "ffn_up.weight", (d, ff)),
                ffn_down=self.weight(p + "ffn_down.weight", (ff, d)),
                post_ffw_norm=self.weight(p + "post_ffw_norm.weight", (d,)),
            ))

    def buffers(self, cap: int) -> Buffers:
        hp, t = self.hp, self.ops.tensor
        return Buffers(
            cap=cap,
            ids=t(cap, 1, "i32", "ids"),                          # [cap, 1]
            x=t(cap, hp.n_embd, name="x"),                        # [cap, n_embd]  residual stream
            h=t(cap, hp.n_embd, name="h"),                        # [cap, n_embd]
            q=t(cap, hp.n_head * hp.head_dim, name="q"),          # [cap, n_head * head_dim]
            k=t(cap, hp.kv_width, name="k"),                      # [cap, n_head_kv * head_dim]
            v=t(cap, hp.kv_width, name="v"),                      # [cap, n_head_kv * head_dim]
            attn=t(cap, hp.n_head * hp.head_dim, name="attn"),    # [cap, n_head * head_dim]
            gate=t(cap, hp.n_ff, name="gate"),                    # [cap, n_ff]
            up=t(cap, hp.n_ff, name="up"),                        # [cap, n_ff]
            last=t(1, hp.n_embd, name="last"),                    # [1, n_embd]
            logits=t(1, hp.n_vocab, name="logits"),               # [1, n_vocab]
        )

    def forward(self, b: Buffers) -> None:
        ops, hp = self.ops, self.hp
        eps, hd = hp.norm_eps, hp.head_dim
        ops.get_rows(b.x, self.token_embd, b.ids)
        ops.scale(b.x, b.x, math.sqrt(hp.n_embd))
        for i, blk in enumerate(self.blk):
            local = self.is_local(i)
            rope = dict(n_rot=hp.n_rot, neox=True,
                        freq_base=hp.rope_local_base if local else hp.rope_freq_base,
                        freq_scale=1.0 if local else hp.rope_freq_scale)
            # attention
            ops.rms_norm(b.h, b.x, blk.attn_norm, eps)
            ops.matmul(b.q, blk.attn_q, b.h)
            ops.matmul(b.k, blk.attn_k, b.h)
            ops.matmul(b.v, blk.attn_v, b.h)
            ops.rms_norm(b.q, b.q, blk.attn_q_norm, eps, group=hd)
            ops.rms_norm(b.k, b.k, blk.attn_k_norm, eps, group=hd)
            ops.rope(b.q, hp.n_head, hd, **rope)
            ops.rope(b.k, hp.n_head_kv, hd, **rope)
            ops.scale(b.q, b.q, hp.attn_scale)
            ops.store_kv(self.kv.k[i], b.k)
            ops.store_kv(self.kv.v[i], b.v)
            ops.attention(b.attn, b.q, self.kv.k[i], self.kv.v[i], hp.n_head, hp.n_head_kv, hd,
                          scale=1.0, window=hp.sliding_window if local else 0)
            ops.matmul(b.h, blk.attn_output, b.attn)
            ops.rms_norm(b.h, b.h, blk.post_attention_norm, eps)
            ops.add(b.x, b.x, b.h)
            # feed-forward (GeGLU)
            ops.rms_norm(b.h, b.x, blk.ffn_norm, eps)
            ops.matmul(b.gate, blk.ffn_gate, b.h)
            ops.matmul(b.up, blk.ffn_up, b.h)
            ops.glu(b.gate, b.gate, b.up, "gelu")
            ops.matmul(b.h, blk.ffn_down, b.gate)
            ops.rms_norm(b.h, b.h, blk.post_ffw_norm, eps)
            ops.add(b.x, b.x, b.h)
        last = self.last_row(b)                 # (normed in place: a decode step's next get_rows rewrites x)
        ops.rms_norm(last, last, self.output_norm, eps)
        ops.matmul(b.logits, self.output, last)
