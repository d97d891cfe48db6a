"""Read only the key/value metadata of a GGUF file, quickly.

A tokenizer needs nothing but metadata (``tokenizer.ggml.*``), yet gemma3's vocabulary is
262,144 strings, and ``gguf.GGUFReader`` builds a Python object per field part for each of
them (about 10 s). This reader walks the key/value section once with ``struct`` and turns
numeric arrays into lists through NumPy, which takes a fraction of a second. It is used by
the tokenizer tests and tools/make_tokenizer_refs.py to build a tokenizer without loading a
model; the engine itself hands ``from_gguf`` the metadata dict of ``engine.load``.

GGUF layout (little-endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv
records of (string key, u32 value type, value). A string is a u64 byte length + UTF-8 bytes;
an array is u32 element type, u64 count, then the elements.
"""
from __future__ import annotations

import mmap
import struct

import numpy as np

# GGUF value type -> (struct format, NumPy dtype) for the fixed-size scalar types.
_SCALARS = {
    0: ("<B", np.uint8), 1: ("<b", np.int8), 2: ("<H", np.uint16), 3: ("<h", np.int16),
    4: ("<I", np.uint32), 5: ("<i", np.int32), 6: ("<f", np.float32), 7: ("<?", np.bool_),
    10: ("<Q", np.uint64), 11: ("<q", np.int64), 12: ("<d", np.float64),
}
_STRING, _ARRAY = 8, 9


def read_metadata(path, prefix: str = "") -> dict[str, object]:
    """Every key/value whose key starts with ``prefix`` -> plain Python value (str/int/float/bool/list)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file (magic {bytes(buf[:4])!r})")
        _version, _n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        pos = 24
        out: dict[str, object] = {}

        def read_str(p):
            (n,) = struct.unpack_from("<Q", buf, p)
            return buf[p + 8:p + 8 + n].decode("utf-8", errors="replace"), p + 8 + n

        def read_value(vtype, p, keep):
            if vtype == _STRING:
                return read_str(p)
            if vtype in _SCALARS:
                fmt, _ = _SCALARS[vtype]
                return struct.unpack_from(fmt, buf, p)[0], p + struct.calcsize(fmt)
            if vtype == _ARRAY:
                etype, n = struct.unpack_from("<IQ", buf, p)
                p += 12
                if etype in _SCALARS:
                    dtype = _SCALARS[etype][1]
                    nbytes = n * np.dtype(dtype).itemsize
                    vals = np.frombuffer(buf, dtype=dtype, count=n, offset=p).tolist() if keep else None
                    return vals, p + nbytes
                if etype == _STRING:
                    items = []
                    unpack, mv = struct.unpack_from, buf
                    for _ in range(n):
                        (ln,) = unpack("<Q", mv, p)
                        if keep:
                            items.append(mv[p + 8:p + 8 + ln].decode("utf-8", errors="replace"))
                        p += 8 + ln
                    return (items if keep else None), p
                # arrays of arrays are legal GGUF but unused by any tokenizer key
                items = []
                for _ in range(n):
                    v, p = read_value(etype, p, keep)
                    items.append(v)
                return items, p
            raise ValueError(f"{path}: unknown GGUF value type {vtype} at byte {p}")

        for _ in range(n_kv):
            key, pos = read_str(pos)
            (vtype,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            keep = key.startswith(prefix)
            value, pos = read_value(vtype, pos, keep)
            if keep:
                out[key] = value
        return out
