"""The KV cache: every layer's keys and values for every position seen so far.

Attention at position p needs the keys and values of positions 0..p.  Rather than recompute
them, each layer stores its K and V rows as they are produced (``ops.store_kv`` writes row
``pos + t``), so decoding one token costs one new row per layer, not a whole re-run.

    k[layer]   [n_ctx, n_head_kv * head_dim]   row p = the key of position p (after rope)
    v[layer]   [n_ctx, n_head_kv * head_dim]   row p = the value of position p

The cache is sized by n_ctx once; ``LLM.tokens`` says how many rows are valid.  Truncating the
cache (prefix reuse) is only bookkeeping: rows past the new length are overwritten later.
"""
from __future__ import annotations

from .ops import Ops, Tensor


class KVCache:
    def __init__(self, ops: Ops, n_layer: int, n_ctx: int, width: int | list[int]):
        widths = width if isinstance(width, list) else [width] * n_layer
        self.n_ctx = n_ctx
        self.k: list[Tensor] = [ops.tensor(n_ctx, w, name=f"cache_k.{i}") for i, w in enumerate(widths)]
        self.v: list[Tensor] = [ops.tensor(n_ctx, w, name=f"cache_v.{i}") for i, w in enumerate(widths)]

    @property
    def n_bytes(self) -> int:
        return sum(4 * t.rows * t.width for t in self.k + self.v)
