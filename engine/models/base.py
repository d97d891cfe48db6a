"""What every decoder model shares: weight upload, the KV cache, and recorded forward passes.

A model family (llama.py, gemma3.py, phi3.py) subclasses ``DecoderModel`` and writes three things:

    hparams(f)         its typed hyperparameters from the GGUF file
    load_weights()     ops.weight for every tensor, named after the GGUF names
    forward(b)         the forward pass as ops calls, from b.ids [cap, 1] to b.logits [1, n_vocab]

``DecoderModel`` records ``forward`` into Programs (one per batch capacity: n_batch for prompts,
1 for decoding), and runs them.  It never looks at activations itself, so the same model code
runs on every backend.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional, Sequence

import numpy as np

from ..gguf_file import DecoderHParams, GGUFFile
from ..kv_cache import KVCache
from ..ops import Ops, Program, Tensor, Weight


class Buffers(SimpleNamespace):
    """A forward pass's activation buffers for one batch capacity (attributes set by the model)."""
    cap: int
    ids: Tensor       # i32 [cap, 1]   token ids of this batch
    logits: Tensor    # f32 [1, n_vocab]   logits of the batch's last row


class DecoderModel:
    def __init__(self, f: GGUFFile, ops: Ops, n_ctx: int, n_batch: int):
        self.f, self.ops = f, ops
        self.hp: DecoderHParams = self.hparams(f)
        self.n_ctx, self.n_batch = n_ctx, n_batch
        self.n_vocab = self.hp.n_vocab
        self.load_weights()
        self.kv = KVCache(ops, self.hp.n_layer, n_ctx, self.hp.kv_width)
        self._programs: dict[tuple, tuple[Program, Buffers]] = {}
        self._buffers: dict[int, Buffers] = {}      # per capacity, shared by its programs

    # ---------------------------------------------------------------- to be written per family
    @classmethod
    def hparams(cls, f: GGUFFile) -> DecoderHParams:
        raise NotImplementedError

    def load_weights(self) -> None:
        raise NotImplementedError

    def buffers(self, cap: int) -> Buffers:
        raise NotImplementedError

    def forward(self, b: Buffers) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers for families
    def weight(self, name: str, shape: Sequence[int]) -> Weight:
        """Upload GGUF tensor ``name`` (its shape checked, GGUF order ne0 first)."""
        t = self.f.tensor(name, shape)
        return self.ops.weight(name, int(t.tensor_type), tuple(shape), t.data)

    def optional_weight(self, name: str, shape: Sequence[int]) -> Optional[Weight]:
        return self.weight(name, shape) if self.f.has(name) else None

    def last_row(self, b: Buffers) -> Tensor:
        """The residual stream's last real row, the only one that needs logits: b.x itself in a one-row program
        (decode: no copy, one dispatch and barrier fewer per token on a GPU), else copied into b.last."""
        if b.cap == 1:
            return b.x
        self.ops.copy_rows(b.last, b.x, src_row=-1)
        return b.last

    # ---------------------------------------------------------------- programs
    def program(self, cap: int, decode_steps: int = 0, first_slot: int = 0,
                resume: bool = False) -> tuple[Program, Buffers]:
        """The recorded forward pass for batches of up to ``cap`` rows, made once and cached.

        decode_steps = k > 0 (cap 1): k x (forward, sample(slot=s), advance(slot=s)) in one program, slots
        s = first_slot .. first_slot + k - 1, so a GPU backend decodes k tokens per submission; b.tokens
        [first_slot + k, 1] gets the ids in those rows.  ``resume``: the program carries on from the device
        state the previous decode program left (Ops.record); engine/llm.py starts it while that one runs,
        with first_slot set so that the two use different uniforms and token rows.
        """
        key = (cap, decode_steps, first_slot, resume)
        if key not in self._programs:
            # programs of one capacity share its activation buffers (they run one at a time), so the
            # decode programs for several k cost no extra memory, and their dispatches bind the same
            # buffers (a GPU backend then reuses one pipeline per op for all of them)
            if cap not in self._buffers:
                self._buffers[cap] = self.buffers(cap)
            b = Buffers(**vars(self._buffers[cap]))
            if decode_steps:
                if not hasattr(self._buffers[cap], "history"):
                    self._buffers[cap].history = self.ops.tensor(self.n_ctx, 1, "i32", name="history")  # [n_ctx, 1]
                b.history = self._buffers[cap].history
                b.tokens = self.ops.tensor(first_slot + decode_steps, 1, "i32", name="sampled")   # [slots, 1]
            with self.ops.record(resume=resume) as prog:
                for slot in range(first_slot, first_slot + max(decode_steps, 1)):
                    self.forward(b)
                    if decode_steps:
                        self.ops.sample(b.tokens, b.logits, b.history, slot=slot)
                        self.ops.advance(b.ids, b.tokens, b.history, slot=slot)
            self._programs[key] = (prog, b)
        return self._programs[key]

    def eval_batch(self, ids: Sequence[int], pos: int, cap: int) -> Buffers:
        """Run the forward pass on ``ids`` (len <= cap) at positions pos..; K/V go into the cache."""
        prog, b = self.program(cap)
        self.ops.write(b.ids, np.asarray(ids, dtype=np.int32).reshape(-1, 1))
        self.ops.set_step(len(ids), pos)
        self.ops.run(prog)
        return b
