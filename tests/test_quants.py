"""engine.quants against gguf-py's reference dequantisers (an independent implementation).

Three sources of blocks:
- every tensor of the test models (the real data the engine reads);
- small tensors quantised by gguf.quants.quantize where gguf-py can quantise that type;
- random bytes as blocks otherwise (every bit pattern of the integer fields is exercised; the
  f16 scales are made finite so the comparison is exact).
"""
import warnings

import gguf
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

from engine import quants

ALL_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]

# byte offsets of the f16 fields in each block type (see engine/quants.py's layout comments)
F16_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
              T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def random_blocks(ggml_type, n_rows, n_blocks, rng):
    """Random bytes laid out as [n_rows, n_blocks * block_bytes] with finite f16 scales."""
    _, block_bytes = GGML_QUANT_SIZES[ggml_type]
    raw = rng.integers(0, 256, size=(n_rows, n_blocks, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[ggml_type]:
        scale = rng.uniform(-0.1, 0.1, size=(n_rows, n_blocks)).astype(np.float16)
        raw[:, :, off:off + 2] = scale.view(np.uint8).reshape(n_rows, n_blocks, 2)
    return raw.reshape(n_rows, n_blocks * block_bytes)


def reference(raw, ggml_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gguf.quants.dequantize(raw, ggml_type)


@pytest.mark.parametrize("ggml_type", [t for t in ALL_TYPES if t in F16_FIELDS], ids=lambda t: t.name)
def test_random_blocks_equal_gguf(ggml_type):
    rng = np.random.default_rng(int(ggml_type))
    raw = random_blocks(ggml_type, n_rows=5, n_blocks=3, rng=rng)
    expected = reference(raw, ggml_type)
    got = quants.dequantize(raw, ggml_type)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("ggml_type", ALL_TYPES, ids=lambda t: t.name)
def test_quantised_by_gguf_roundtrip(ggml_type):
    """Values quantised by gguf-py (where it can) dequantise to what gguf-py says, and near the input."""
    rng = np.random.default_rng(1)
    block_size, _ = GGML_QUANT_SIZES[ggml_type]
    x = rng.standard_normal((4, 2 * max(block_size, 32))).astype(np.float32)
    try:
        raw = gguf.quants.quantize(x, ggml_type)
    except (NotImplementedError, gguf.quants.QuantError):
        raw = random_blocks(ggml_type, 4, 2, rng) if ggml_type in F16_FIELDS else None
        if raw is None:
            raise
        x = None
    if ggml_type == T.BF16:
        raw = np.ascontiguousarray(raw).view(np.uint8)      # as GGUFReader returns BF16: bytes
    expected = reference(raw, ggml_type)
    got = quants.dequantize(raw, ggml_type)
    np.testing.assert_array_equal(got, expected)
    if x is not None:
        # a loose sanity bound: even 2-bit blocks stay within ~1 of N(0, 1) inputs
        assert np.abs(got - x).max() < 1.5


def test_bf16_is_top_half_of_f32():
    x = np.array([[1.0, -2.5, 3.140625, 0.0]], dtype=np.float32)
    raw = (x.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    np.testing.assert_array_equal(quants.dequantize(raw, T.BF16), x)


@pytest.mark.parametrize("key", ["smollm2-q4_1", "gemma3-q4_k_m", "smollm2-q4_0", "smollm2-q8_0", "smollm2-f16"])
def test_every_tensor_of_test_models(model_path, key):
    reader = gguf.GGUFReader(model_path(key))
    for t in reader.tensors:
        expected = reference(t.data, t.tensor_type)
        got = quants.dequantize(t.data, t.tensor_type)
        assert got.shape == expected.shape, t.name
        np.testing.assert_array_equal(got, expected, err_msg=t.name)


@pytest.mark.parametrize("ggml_type", [T.F16, T.Q8_0, T.Q4_K, T.Q6_K], ids=lambda t: t.name)
def test_row_range_and_take_rows(ggml_type):
    rng = np.random.default_rng(2)
    if ggml_type == T.F16:
        raw = rng.standard_normal((9, 512)).astype(np.float16)
    else:
        raw = random_blocks(ggml_type, 9, 2, rng)
    full = quants.dequantize(raw, ggml_type)
    np.testing.assert_array_equal(quants.dequantize_rows(raw, ggml_type, 3, 4), full[3:7])
    ids = np.array([8, 0, 8, 5])
    np.testing.assert_array_equal(quants.take_rows(raw, ggml_type, ids), full[ids])


def test_unsupported_type_is_named():
    with pytest.raises(ValueError, match="IQ2_XXS"):
        quants.dequantize(np.zeros((1, 66), np.uint8), T.IQ2_XXS)
