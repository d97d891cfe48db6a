"""Opening a GGUF file: metadata as plain Python values, tensors memory-mapped, typed hyperparameters.

A GGUF file is a header of key/value metadata (``llama.block_count = 30``, the tokenizer's
vocabulary, the chat template, ...) followed by tensors, each a name, a type and a shape.
gguf.GGUFReader maps the file into memory; a tensor's ``data`` is a NumPy view of the mapped
bytes, so nothing is read from disk until it is touched.

    f = GGUFFile(path)
    f.arch                 'llama'
    f.metadata             {'llama.block_count': 30, ...}   every key, plain str/int/float/list
    f.hparams              LlamaHParams(n_layer=30, n_embd=576, ...)  (decoder architectures)
    f.tensor('blk.0.attn_q.weight', shape=(576, 576))   the ReaderTensor, shape checked (GGUF order)

Errors name what is wrong: the missing file, the architecture, the tensor and its type or shape.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.gguf_reader import ReaderField

from . import quants


# ---------------------------------------------------------------------------- hyperparameters

@dataclass
class DecoderHParams:
    """What every decoder-only transformer here needs (GGUF keys are ``{arch}.<key>``)."""
    arch: str
    n_vocab: int
    n_ctx_train: int             # context_length
    n_embd: int                  # embedding_length
    n_layer: int                 # block_count
    n_head: int                  # attention.head_count
    n_head_kv: int               # attention.head_count_kv (GQA; = n_head when absent)
    n_ff: int                    # feed_forward_length
    head_dim: int                # attention.key_length, default n_embd / n_head
    n_rot: int                   # rope.dimension_count, default head_dim
    rope_freq_base: float        # rope.freq_base, default 10000
    rope_freq_scale: float       # 1 / rope.scaling.factor for linear scaling, else 1
    norm_eps: float              # attention.layer_norm_rms_epsilon

    @property
    def kv_width(self) -> int:
        """Width of one layer's K (or V) cache row: n_head_kv * head_dim."""
        return self.n_head_kv * self.head_dim


@dataclass
class LlamaHParams(DecoderHParams):
    """llama, mistral, qwen2: the same graph (qwen2 adds biases on Q, K, V)."""


@dataclass
class Gemma3HParams(DecoderHParams):
    sliding_window: int = 0          # attention.sliding_window: local layers see this many positions
    swa_period: int = 6              # every 6th layer (il % 6 == 5) is global, the others local
    rope_local_base: float = 10000.0  # local (sliding-window) layers' rope base
    attn_scale: float = 1.0          # query scale: 1/sqrt(head_dim)


@dataclass
class Phi3HParams(DecoderHParams):
    sliding_window: int = 0          # always 0: llama.cpp (and upstream) ignore phi3's attention.sliding_window


@dataclass
class BertHParams:
    """bert / nomic-bert: encoder hyperparameters (used by engine.models.bert)."""
    arch: str
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_ff: int
    norm_eps: float              # attention.layer_norm_epsilon
    pooling_type: int            # pooling_type (1 = mean, 2 = cls)
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- the file

class _ArrayField(ReaderField):
    """A metadata array whose values were decoded in one pass (see _FastArrayReader)."""

    values: list        # set right after construction (ReaderField is a NamedTuple)

    def contents(self, index_or_slice=slice(None)):
        return self.values[index_or_slice]


class _FastArrayReader(GGUFReader):
    """gguf.GGUFReader, with metadata *arrays* parsed in one pass instead of one NumPy view per element.

    The stock reader builds two NumPy views per string of an array, which for gemma3's 262,144-token
    vocabulary took 15-25 s on this machine; decoding the strings straight from the mapped bytes takes
    well under a second.  Scalars, tensors and the memory map are the stock reader's.
    """

    def _get_field_parts(self, orig_offs, raw_type):
        if GGUFValueType(raw_type) != GGUFValueType.ARRAY or self.byte_order == "S":
            return super()._get_field_parts(orig_offs, raw_type)
        raw_itype = self._get(orig_offs, np.uint32)
        alen = self._get(orig_offs + 4, np.uint64)
        itype, n, start = GGUFValueType(raw_itype[0]), int(alen[0]), orig_offs + 12
        types = [GGUFValueType.ARRAY, itype]
        nptype = self.gguf_scalar_to_np.get(itype)
        if nptype is not None:                                   # numbers: one view of all of them
            values = self._get(start, nptype, n)
            return 12 + int(values.nbytes), [raw_itype, alen, values], [2], types
        if itype != GGUFValueType.STRING:                        # nested arrays: the stock path
            return super()._get_field_parts(orig_offs, raw_type)
        mem = memoryview(self.data)                              # strings: (u64 length, utf-8 bytes)*
        pos, strings = start, []
        for _ in range(n):
            length = int.from_bytes(mem[pos:pos + 8], "little")
            strings.append(str(mem[pos + 8:pos + 8 + length], "utf-8"))
            pos += 8 + length
        self._pending_values = strings
        return pos - orig_offs, [raw_itype, alen, self.data[start:pos]], [], types

    def _push_field(self, field, skip_sum=False):
        values = getattr(self, "_pending_values", None)
        if values is not None:
            self._pending_values = None
            field = _ArrayField(field.offset, field.name, field.parts, field.data, field.types)
            field.values = values
        return super()._push_field(field, skip_sum)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (GGUFReader returns some as numpy types)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class GGUFFile:
    """A memory-mapped GGUF file; see the module docstring."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"model file not found: {self.path}")
        try:
            self.reader = _FastArrayReader(self.path, "r")
        except Exception as e:          # a truncated or non-GGUF file
            raise ValueError(f"{self.path}: not a readable GGUF file ({e})") from e
        self.metadata: dict[str, Any] = {}
        for key, fld in self.reader.fields.items():
            if key.startswith("GGUF."):
                continue
            self.metadata[key] = _plain(fld.contents())
        self.tensors = {t.name: t for t in self.reader.tensors}
        arch = self.metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise ValueError(f"{self.path}: GGUF metadata has no general.architecture")
        self.arch: str = arch
        self.name: str = str(self.metadata.get("general.name", os.path.basename(self.path)))

    # ---------------------------------------------------------------- metadata
    def get(self, key: str, default: Any = None) -> Any:
        """``{arch}.key`` when ``key`` starts with '.', else the full key."""
        full = self.arch + key if key.startswith(".") else key
        return self.metadata.get(full, default)

    def require(self, key: str) -> Any:
        full = self.arch + key if key.startswith(".") else key
        if full not in self.metadata:
            raise ValueError(f"{self.path}: missing metadata key '{full}'")
        return self.metadata[full]

    @property
    def n_vocab(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if tokens is not None:
            return len(tokens)
        return int(self.require(".vocab_size"))

    def decoder_hparams(self, cls: type = DecoderHParams, **extra: Any) -> DecoderHParams:
        n_embd = int(self.require(".embedding_length"))
        n_head = int(self.require(".attention.head_count"))
        head_dim = int(self.get(".attention.key_length", n_embd // n_head))
        scaling = self.get(".rope.scaling.type", "none")
        factor = float(self.get(".rope.scaling.factor", 1.0) or 1.0)
        return cls(
            arch=self.arch,
            n_vocab=self.n_vocab,
            n_ctx_train=int(self.get(".context_length", 2048)),
            n_embd=n_embd,
            n_layer=int(self.require(".block_count")),
            n_head=n_head,
            n_head_kv=int(self.get(".attention.head_count_kv", n_head)),
            n_ff=int(self.require(".feed_forward_length")),
            head_dim=head_dim,
            n_rot=int(self.get(".rope.dimension_count", head_dim)),
            rope_freq_base=float(self.get(".rope.freq_base", 10000.0)),
            rope_freq_scale=1.0 / factor if scaling == "linear" else 1.0,
            norm_eps=float(self.get(".attention.layer_norm_rms_epsilon", 1e-5)),
            **extra,
        )

    # ---------------------------------------------------------------- tensors
    def has(self, name: str) -> bool:
        return name in self.tensors

    def tensor(self, name: str, shape: Optional[Sequence[int]] = None):
        """The ReaderTensor ``name``; ``shape`` (GGUF order: ne0 first) is checked when given."""
        t = self.tensors.get(name)
        if t is None:
            raise ValueError(f"{self.path}: missing tensor '{name}' (architecture {self.arch})")
        quants.check_supported(int(t.tensor_type), f"{self.path}: tensor '{name}'")
        if shape is not None:
            got = tuple(int(d) for d in t.shape)
            want = tuple(int(d) for d in shape)
            # trailing 1s are insignificant in GGUF shapes
            while len(got) > len(want) and got[-1] == 1:
                got = got[:-1]
            if got != want:
                raise ValueError(f"{self.path}: tensor '{name}' has shape {list(got)}, "
                                 f"expected {list(want)} (GGUF order, ne0 first)")
        return t

    def check_types(self) -> None:
        """Raise on the first tensor whose quantisation type the engine cannot read."""
        for name, t in self.tensors.items():
            quants.check_supported(int(t.tensor_type), f"{self.path}: tensor '{name}'")

    def close(self) -> None:
        mm = getattr(self.reader, "data", None)
        # np.memmap closes when the last view goes; drop our references
        self.tensors = {}
        self.reader = None
        del mm
