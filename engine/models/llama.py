"""Llama-family decoder (llama, mistral, qwen2): the forward pass top to bottom.

    x = token_embd[ids]                                   # [n, n_embd]
    for each layer:
        h = rms_norm(x) * attn_norm
        q, k, v = h @ Wq (+bq), h @ Wk (+bk), h @ Wv (+bv)   # qwen2 has the biases
        rope(q), rope(k)                                  # position-dependent rotation
        cache[k, v] at positions pos..pos+n
        x += attention(q, cache) @ Wo                     # grouped-query attention (GQA)
        h = rms_norm(x) * ffn_norm
        x += (silu(h @ Wgate) * (h @ Wup)) @ Wdown        # SwiGLU feed-forward
    logits = rms_norm(x[last]) * output_norm @ Wout       # Wout = token_embd when tied (SmolLM2)

The code below is that, in fewer ops: each RMSNorm is folded into the matmuls that read it
(``matmul(..., norm=w)``), each residual add into the matmul that ends the branch
(``accumulate=True``), q, k and v are one ``matmul_stack``, the two FFN matmuls and the gate's
activation are one ``matmul_glu``, and one ``rope_qkv`` rotates q and k and writes K and V into the
cache.  Same arithmetic (engine/ops.py defines each fused op as the ops it replaces); on a GPU, decode
time is mostly the count of dispatches, and this pass has 7 per layer where the sketch above has 13.

Rope: llama and mistral GGUFs pair dims (2i, 2i+1) (the converter permutes Q/K for that);
qwen2 pairs (i, i + d/2) ("neox").  Llama 3's long-context scaling arrives as the tensor
``rope_freqs.weight`` (one divisor per frequency) and is passed to rope as freq_factors.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

from ..gguf_file import GGUFFile, LlamaHParams
from .base import Buffers, DecoderModel

NEOX_ROPE = {"qwen2"}       # architectures whose rope pairs (i, i + n_rot/2)


class Llama(DecoderModel):
    @classmethod
    def hparams(cls, f: GGUFFile) -> LlamaHParams:
        return f.decoder_hparams(LlamaHParams)

    def load_weights(self) -> None:
        hp = self.hp
        d, ff, kvw, qw = hp.n_embd, hp.n_ff, hp.kv_width, hp.n_head * hp.head_dim
        self.token_embd = self.weight("token_embd.weight", (d, hp.n_vocab))
        self.output_norm = self.weight("output_norm.weight", (d,))
        # tied embeddings (SmolLM2, small Qwen2): no output.weight, the LM head is token_embd
        self.output = self.optional_weight("output.weight", (d, hp.n_vocab)) or self.token_embd
        self.rope_freqs = self.optional_weight("rope_freqs.weight", (hp.n_rot // 2,))
        self.blk = []
        for i in range(hp.n_layer):
            p = f"blk.{i}."
            self.blk.append(SimpleNamespace(
                attn_norm=self.weight(p + "attn_norm.weight", (d,)),
                attn_q=self.weight(p + "attn_q.weight", (d, qw)),
                attn_k=self.weight(p + "attn_k.weight", (d, kvw)),
                attn_v=self.weight(p + "attn_v.weight", (d, kvw)),
                attn_q_bias=self.optional_weight(p + "attn_q.bias", (qw,)),
                attn_k_bias=self.optional_weight(p + "attn_k.bias", (kvw,)),
                attn_v_bias=self.optional_weight(p + "attn_v.bias", (kvw,)),
                attn_output=self.weight(p + "attn_output.weight", (qw, d)),
                ffn_norm=self.weight(p + "ffn_norm.weight", (d,)),
                ffn_gate=self.weight(p + "ffn_gate.weight", (d, ff)),
                ffn_up=self.weight(p + "ffn_up.weight", (d, ff)),
                ffn_down=self.weight(p + "ffn_down.weight", (ff, d)),
            ))

    def buffers(self, cap: int) -> Buffers:
        hp, t = self.hp, self.ops.tensor
        return Buffers(
            cap=cap,
            ids=t(cap, 1, "i32", "ids"),                          # [cap, 1]
            x=t(cap, hp.n_embd, name="x"),                        # [cap, n_embd]  residual stream
            q=t(cap, hp.n_head * hp.head_dim, name="q"),          # [cap, n_head * head_dim]
            k=t(cap, hp.kv_width, name="k"),                      # [cap, n_head_kv * head_dim]
            v=t(cap, hp.kv_width, name="v"),                      # [cap, n_head_kv * head_dim]
            attn=t(cap, hp.n_head * hp.head_dim, name="attn"),    # [cap, n_head * head_dim]
            gate=t(cap, hp.n_ff, name="gate"),                    # [cap, n_ff]    silu(h @ Wgate) * (h @ Wup)
            last=t(1, hp.n_embd, name="last"),                    # [1, n_embd]   the last real row
            logits=t(1, hp.n_vocab, name="logits"),               # [1, n_vocab]
        )

    def forward(self, b: Buffers) -> None:
        ops, hp = self.ops, self.hp
        neox = hp.arch in NEOX_ROPE
        rope = dict(n_rot=hp.n_rot, freq_base=hp.rope_freq_base, neox=neox,
                    freq_scale=hp.rope_freq_scale, freq_factors=self.rope_freqs)
        eps = hp.norm_eps
        ops.get_rows(b.x, self.token_embd, b.ids)
        for i, blk in enumerate(self.blk):
            # attention: q, k, v = (rms_norm(x) * attn_norm) @ Wq, Wk, Wv (+ biases)
            ops.matmul_stack([b.q, b.k, b.v], [blk.attn_q, blk.attn_k, blk.attn_v], b.x,
                             [blk.attn_q_bias, blk.attn_k_bias, blk.attn_v_bias], norm=blk.attn_norm, eps=eps)
            # rope(q); rope(k) -> k cache[pos..]; v -> v cache[pos..]
            ops.rope_qkv(b.q, b.k, b.v, self.kv.k[i], self.kv.v[i], hp.n_head, hp.n_head_kv, hp.head_dim, **rope)
            ops.attention(b.attn, b.q, self.kv.k[i], self.kv.v[i], hp.n_head, hp.n_head_kv,
                          hp.head_dim, scale=1.0 / math.sqrt(hp.head_dim))
            ops.matmul(b.x, blk.attn_output, b.attn, accumulate=True)             # x += attn @ Wo
            # feed-forward (SwiGLU): x += (silu(h @ Wgate) * (h @ Wup)) @ Wdown, h = rms_norm(x) * ffn_norm
            ops.matmul_glu(b.gate, blk.ffn_gate, blk.ffn_up, b.x, "silu", norm=blk.ffn_norm, eps=eps)
            ops.matmul(b.x, blk.ffn_down, b.gate, accumulate=True)
        # only the last row needs logits
        ops.matmul(b.logits, self.output, self.last_row(b), norm=self.output_norm, eps=eps)
