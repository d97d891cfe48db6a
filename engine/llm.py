"""The engine API: load a GGUF file, feed it tokens, get logits, sample, generate, embed.

    llm = engine.load("SmolLM2-135M-Instruct.Q4_0.gguf")          # NumPy on the CPU
    llm = engine.load(path, device="gpu")                        # a Vulkan device (Kompute)
    logits = llm.eval(ids)                                       # f32 [n_vocab] of the last id
    for t in llm.generate(ids, SamplingParams(temp=0), 48): ...

It is backend-agnostic: the model file records its forward pass with ``ops`` calls and this
module only moves token ids and sampling parameters in and token ids / logits out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from .gguf_file import GGUFFile
from .models import EMBEDDING_ARCHITECTURES, model_class
from .models.base import Buffers
from .ops import MAX_DECODE_STEPS, Ops, Program
from .sampling import SamplingParams, Sampler, sample_token


def _open_ops(device: Optional[str]) -> Ops:
    if device is None or device == "cpu":
        from .backends.numpy_ops import NumpyOps
        return NumpyOps()
    from .backends.vulkan_device import open_device     # raises ValueError naming the devices
    return open_device(device)


def _tokenizer(metadata: dict):
    """The tokenizer engineer's engine.tokenizer.from_gguf, or None while it is not installed."""
    try:
        from .tokenizer import from_gguf
    except ImportError:
        return None
    return from_gguf(metadata)


def load(path, *, device: Optional[str] = None, n_ctx: int = 2048, n_threads: Optional[int] = None,
         n_batch: int = 128, verbose: bool = False) -> "LLM":
    """Open ``path`` and build its model on ``device`` (None / 'cpu': NumPy)."""
    return LLM(path, device=device, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, verbose=verbose)



def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids two token sequences share (the part of a KV cache a new prompt can reuse)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n

@dataclass
class _Chunk:
    """A decode chunk that was started: its program and buffers, its slots, and where it leaves the generation
    if every id it samples is handed out (ids handed out, tokens cached)."""
    prog: Program
    b: Buffers                  # the program's buffers (b.tokens: the sampled ids)
    first: int                  # slots first .. first + steps - 1 (rows of b.tokens)
    steps: int
    produced: int
    cached: int


class LLM:
    def __init__(self, path, *, device: Optional[str] = None, n_ctx: int = 2048,
                 n_threads: Optional[int] = None, n_batch: int = 128, verbose: bool = False):
        self.verbose = verbose
        self._thread_limit = None
        if n_threads is not None:
            self.set_threads(n_threads)
        self.file = GGUFFile(path)
        self.path, self.arch, self.name = self.file.path, self.file.arch, self.file.name
        cls = model_class(self.arch)               # ValueError for an unknown architecture
        self.file.check_types()                    # ValueError naming a tensor of unknown type
        self.metadata = self.file.metadata
        self.chat_template: Optional[str] = self.metadata.get("tokenizer.chat_template")
        self.is_embedding = self.arch in EMBEDDING_ARCHITECTURES
        self.n_ctx_train = int(self.file.get(".context_length", n_ctx))
        self.n_ctx, self.n_batch = int(n_ctx), max(1, int(n_batch))
        self.n_embd = int(self.file.require(".embedding_length"))
        self.n_vocab = self.file.n_vocab
        self.tokenizer = _tokenizer(self.metadata)

        self.ops = _open_ops(device)
        self.backend: str = self.ops.name
        self.device: Optional[str] = self.ops.device_name
        self.model = cls(self.file, self.ops, self.n_ctx, self.n_batch)
        # decode steps recorded per program: 1 on the CPU (nothing to batch), more on a GPU,
        # where each submission costs a round trip
        self.decode_steps = int(getattr(self.ops, "decode_steps", 1))

        self.tokens: list[int] = []
        self._logits: Optional[np.ndarray] = None
        self._pending: Optional[_Chunk] = None      # a decode chunk started ahead (_decode)
        self._sampler: Optional[Sampler] = None
        self._sampler_seed: Optional[int] = None
        meta_eog = [self.metadata.get(k) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")]
        self._meta_eog = {int(t) for t in meta_eog if t is not None}

    # ---------------------------------------------------------------- settings and state
    def set_threads(self, n: int) -> None:
        """Limit NumPy's BLAS (and OpenMP) thread pools to ``n`` threads."""
        from threadpoolctl import threadpool_limits
        if self._thread_limit is not None:
            self._thread_limit.restore_original_limits()
        self._thread_limit = threadpool_limits(limits=int(n))

    def reset(self) -> None:
        self.tokens = []
        self._logits = None

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` cached tokens; later cache rows are simply overwritten later."""
        if n < len(self.tokens):
            self.tokens = self.tokens[:max(0, n)]
            self._logits = None

    def is_eog(self, token: int) -> bool:
        if self.tokenizer is not None:
            return bool(self.tokenizer.is_eog(token))
        return token in self._meta_eog

    def _check_decoder(self, what: str) -> None:
        if self.is_embedding:
            raise ValueError(f"{what}: {self.path} is an embedding model ({self.arch})")

    # ---------------------------------------------------------------- evaluation
    def eval(self, tokens: Sequence[int], n_batch: Optional[int] = None) -> np.ndarray:
        """Append ``tokens`` to the cache in batches; the logits of the last one, f32 [n_vocab]."""
        self._check_decoder("eval")
        self._settle()
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("eval needs at least one token")
        if len(self.tokens) + len(tokens) > self.n_ctx:
            raise ValueError(f"context full: {len(self.tokens)} cached + {len(tokens)} new tokens "
                             f"> n_ctx {self.n_ctx}")
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise ValueError(f"token id {bad[0]} out of range [0, {self.n_vocab})")
        step = min(n_batch or self.n_batch, self.n_batch)
        b = None
        for start in range(0, len(tokens), step):
            chunk = tokens[start:start + step]
            cap = 1 if len(chunk) == 1 else self.n_batch
            b = self.model.eval_batch(chunk, len(self.tokens), cap)
            self.tokens.extend(chunk)
        self._logits = self.ops.read(b.logits)[0]
        return self._logits

    def _sampler_for(self, seed: Optional[int]) -> Sampler:
        if self._sampler is None or seed is not None and seed != self._sampler_seed:
            self._sampler, self._sampler_seed = Sampler(seed), seed
        return self._sampler

    def sample(self, params: SamplingParams) -> int:
        """One token from the last eval's logits (history = self.tokens), llama.cpp's chain."""
        if self._logits is None:
            raise ValueError("sample needs logits: call eval first")
        u = self._sampler_for(params.seed).uniforms(1)[0]
        return sample_token(self._logits, np.asarray(self.tokens, dtype=np.int32), params.temp,
                            params.top_k, params.top_p, params.min_p, params.repeat_penalty,
                            self._repeat_window(params), u)

    def _repeat_window(self, params: SamplingParams) -> int:
        """repeat_last_n, with llama.cpp's -1 meaning the whole context."""
        return self.n_ctx if params.repeat_last_n < 0 else int(params.repeat_last_n)

    def generate(self, prompt_tokens: Sequence[int], params: SamplingParams,
                 max_tokens: int) -> Iterator[int]:
        """Reuse the cached prefix, eval the rest of the prompt, then yield sampled ids (see module doc)."""
        self._check_decoder("generate")
        self._settle()
        prompt = [int(t) for t in prompt_tokens]
        if not prompt:
            raise ValueError("generate needs at least one prompt token")
        if len(prompt) > self.n_ctx:
            raise ValueError(f"prompt of {len(prompt)} tokens exceeds n_ctx {self.n_ctx}")
        # longest common prefix with the cache, but always re-evaluate at least the last token
        n_keep = common_prefix(self.tokens, prompt[:-1])
        self.truncate(n_keep)
        if len(prompt) - n_keep > 1:
            self.eval(prompt[n_keep:-1])
        return self._decode(prompt[-1], params, max_tokens, Sampler(params.seed))

    def _decode(self, cur: int, params: SamplingParams, max_tokens: int, sampler: Sampler) -> Iterator[int]:
        """Sampled ids, decoded in chunks of up to decode_steps tokens per program (sample and advance run on the
        device, which feeds each token back itself).  The first chunk starts from the host's state (self.tokens,
        cur, the penalty's history); on a backend whose programs overlap (a GPU), each later chunk is a
        ``resume`` program started before the host waits for the one before it, so the device goes straight on
        from chunk to chunk while the host hands out tokens; elsewhere every chunk starts from the host's state."""
        ops = self.ops
        self._logits = None
        last_n = self._repeat_window(params)
        produced = 0                            # ids handed out
        chunk = self._start_chunk(cur, params, last_n, sampler, max_tokens, produced)
        try:
            while chunk is not None:
                # the next chunk, before this one ends: it assumes this one hands out all of its ids (an end of
                # generation makes it wasted work, waited for in _settle and discarded)
                if ops.overlaps_programs:
                    self._pending = self._resume_chunk(chunk, sampler, max_tokens)
                ops.finish(chunk.prog)
                sampled = ops.read(chunk.b.tokens)[chunk.first:chunk.first + chunk.steps, 0]
                # stopping early (end of generation, max_tokens, the caller closing this generator) leaves
                # self.tokens holding exactly the ids consumed: the K/V rows of discarded later steps (and of a
                # chunk started ahead) lie past len(self.tokens) and are overwritten by the next eval, and the
                # next chunk from the host's state rewrites the history and step buffers from self.tokens
                for t in sampled:
                    t = int(t)
                    self.tokens.append(cur)         # cur's K/V are in the cache now
                    cur = t
                    if self.is_eog(t):
                        return
                    produced += 1
                    yield t
                    if produced >= max_tokens:
                        return
                if ops.overlaps_programs:
                    chunk, self._pending = self._pending, None
                else:
                    chunk = self._start_chunk(cur, params, last_n, sampler, max_tokens, produced)
        finally:
            self._settle()

    def _chunk_steps(self, max_tokens: int, produced: int, cached: int) -> int:
        """Decode steps of the next chunk (0: none is due): at most decode_steps, what max_tokens and n_ctx leave,
        and a power of two, so a run uses at most log2(decode_steps) + 1 recorded programs of each kind."""
        steps = min(self.decode_steps, max_tokens - produced, self.n_ctx - cached)
        return 1 << (steps.bit_length() - 1) if steps > 0 else 0

    def _start_chunk(self, cur: int, params: SamplingParams, last_n: int, sampler: Sampler, max_tokens: int,
                     produced: int) -> Optional[_Chunk]:
        """Start a chunk from the host's state (None if none is due)."""
        ops = self.ops
        steps = self._chunk_steps(max_tokens, produced, len(self.tokens))
        if not steps:
            return None
        prog, b = self.model.program(1, decode_steps=steps)
        # the penalty looks at the newest repeat_last_n ids: the cache's tokens plus the input
        history = (self.tokens + [cur])[-max(last_n, 1):]
        ops.write(b.history, np.asarray(history, dtype=np.int32).reshape(-1, 1))
        ops.set_sampling(params.temp, params.top_k, params.top_p, params.min_p, params.repeat_penalty, last_n,
                         uniforms=sampler.uniforms(steps), n_history=len(history))
        ops.write(b.ids, np.array([[cur]], dtype=np.int32))
        ops.set_step(1, len(self.tokens))
        # on Vulkan the writes above touch host memory only and the run copies them to the device and
        # b.tokens back: one submission per chunk, and reading b.tokens submits nothing
        ops.start(prog)
        return _Chunk(prog, b, 0, steps, produced + steps, len(self.tokens) + steps)

    def _resume_chunk(self, prev: _Chunk, sampler: Sampler, max_tokens: int) -> Optional[_Chunk]:
        """Start the chunk after ``prev``, which may still run, from the state it leaves on the device (None if
        none is due).  Its slots are the other set (MAX_DECODE_STEPS.. after 0.., and back), so the host writes
        its uniforms while ``prev`` may still read its own."""
        steps = self._chunk_steps(max_tokens, prev.produced, prev.cached)
        if not steps:
            return None
        first = MAX_DECODE_STEPS if prev.first == 0 else 0
        prog, b = self.model.program(1, decode_steps=steps, first_slot=first, resume=True)
        self.ops.set_uniforms(sampler.uniforms(steps), first)
        self.ops.start(prog)
        return _Chunk(prog, b, first, steps, prev.produced + steps, prev.cached + steps)

    def _settle(self) -> None:
        """Wait for a chunk started ahead that nobody will read (after a stop, or a generator left open)."""
        if self._pending is not None:
            self.ops.finish(self._pending.prog)
            self._pending = None

    # ---------------------------------------------------------------- embeddings
    def embed(self, batch: list[list[int]]) -> np.ndarray:
        if not self.is_embedding:
            raise ValueError(f"embed: {self.path} is not an embedding model ({self.arch})")
        return self.model.embed(batch)

    def close(self) -> None:
        if self.ops is not None:
            self._settle()
        if self._thread_limit is not None:
            self._thread_limit.restore_original_limits()
            self._thread_limit = None
        self.model = None
        self.ops = None
        self.file.close()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
