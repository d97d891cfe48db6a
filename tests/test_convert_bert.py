"""tools/convert_bert.py: Hugging Face BERT -> GGUF in llama.cpp's layout.

Checked against independent readers: gguf-py's GGUFReader and dequantisers for the file's contents,
the `safetensors` package for the source weights, and upstream gpt4all 2.8.2 / llama-cpp-python
(the oracle venv) for "a real llama.cpp loads it and embeds the same as the sentence-transformers
recipe" (tests/embed_reference.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest

from embed_reference import cosine, minilm_hf_dir, reference

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import convert_bert  # noqa: E402

ORACLE_PYTHON = os.environ.get("GPT4ALL_ORACLE_PYTHON", "/opt/oracle/bin/python")
T = gguf.GGMLQuantizationType


@pytest.fixture(scope="module")
def hf_dir():
    return minilm_hf_dir()


@pytest.fixture(scope="module")
def source_weights(hf_dir):
    from safetensors.numpy import load_file
    return load_file(str(hf_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def converted(hf_dir, tmp_path_factory):
    """out_type -> path of the converted file (each made once for this module)."""
    out = tmp_path_factory.mktemp("bert")
    return {t: convert_bert.convert(hf_dir, out / f"all-MiniLM-L6-v2.{t.upper()}.gguf", t)
            for t in ("f32", "f16", "q8_0", "q4_0")}


def fields(reader: gguf.GGUFReader) -> dict:
    return {k: f.contents() for k, f in reader.fields.items()}


def expected_tensor_names(n_layer: int) -> set[str]:
    per_block = ["attn_q", "attn_k", "attn_v", "attn_output", "attn_output_norm",
                 "ffn_up", "ffn_down", "layer_output_norm"]
    names = {"token_embd.weight", "position_embd.weight", "token_types.weight",
             "token_embd_norm.weight", "token_embd_norm.bias"}
    for i in range(n_layer):
        for t in per_block:
            names |= {f"blk.{i}.{t}.weight", f"blk.{i}.{t}.bias"}
    # every name must also be one gguf-py lists for the BERT architecture
    known = {gguf.TENSOR_NAMES[t].format(bid=i) for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.BERT]
             for i in range(n_layer)}
    assert {n.rsplit(".", 1)[0] for n in names} <= known
    return names


def test_metadata_follows_llama_cpp_bert_layout(converted, hf_dir):
    cfg = json.loads((hf_dir / "config.json").read_text())
    kv = fields(gguf.GGUFReader(converted["f16"]))
    assert kv["general.architecture"] == "bert"
    assert kv["general.name"] == "all-MiniLM-L6-v2"       # upstream's prefix table is keyed by it
    assert kv["bert.context_length"] == cfg["max_position_embeddings"] == 512
    assert kv["bert.embedding_length"] == cfg["hidden_size"] == 384
    assert kv["bert.feed_forward_length"] == cfg["intermediate_size"] == 1536
    assert kv["bert.block_count"] == cfg["num_hidden_layers"] == 6
    assert kv["bert.attention.head_count"] == cfg["num_attention_heads"] == 12
    assert kv["bert.attention.layer_norm_epsilon"] == pytest.approx(1e-12)
    assert kv["bert.attention.causal"] is False
    assert kv["bert.pooling_type"] == int(gguf.PoolingType.MEAN)
    assert kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_F16)
    assert kv["tokenizer.ggml.model"] == "bert"
    ids = {k: kv[f"tokenizer.ggml.{k}_token_id"] for k in
           ("bos", "eos", "unknown", "seperator", "padding", "mask", "cls")}
    assert ids == {"bos": 101, "eos": 102, "unknown": 100, "seperator": 102, "padding": 0, "mask": 103,
                   "cls": 101}


def test_vocab_is_phantom_space_wordpiece(converted, hf_dir):
    kv = fields(gguf.GGUFReader(converted["f32"]))
    vocab = json.loads((hf_dir / "tokenizer.json").read_text())["model"]["vocab"]
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert len(tokens) == len(vocab) == 30522
    for text, i in (("[CLS]", 101), ("[unused0]", 1), ("the", 1996), ("##ing", 2075), ("!", 999)):
        assert vocab[text] == i
    assert tokens[101] == "[CLS]" and tokens[1] == "[unused0]"
    assert tokens[1996] == "\u2581the"          # word start: marked with U+2581
    assert tokens[2075] == "ing"                # continuation: '##' dropped
    assert tokens[999] == "\u2581!"
    assert types[101] == gguf.TokenType.CONTROL and types[0] == gguf.TokenType.CONTROL
    assert types[1996] == gguf.TokenType.NORMAL


@pytest.mark.parametrize("out_type,big,tol", [("f32", T.F32, 0.0), ("f16", T.F16, 1e-3),
                                              ("q8_0", T.Q8_0, 2e-2), ("q4_0", T.Q4_0, 0.2)])
def test_tensors_names_types_and_values(converted, source_weights, out_type, big, tol):
    reader = gguf.GGUFReader(converted[out_type])
    got = {t.name: t for t in reader.tensors}
    assert set(got) == expected_tensor_names(6)
    hf = {"token_embd.weight": "embeddings.word_embeddings.weight",
          "position_embd.weight": "embeddings.position_embeddings.weight",
          "token_types.weight": "embeddings.token_type_embeddings.weight",
          "blk.3.attn_q.weight": "encoder.layer.3.attention.self.query.weight",
          "blk.3.attn_q.bias": "encoder.layer.3.attention.self.query.bias",
          "blk.5.ffn_down.weight": "encoder.layer.5.output.dense.weight",
          "blk.0.attn_output_norm.weight": "encoder.layer.0.attention.output.LayerNorm.weight"}
    for name, t in got.items():
        small = len(t.shape) == 1 or name.endswith("_norm.weight") or name.endswith(".bias") \
            or name.startswith(("position_embd", "token_types"))
        assert t.tensor_type == (T.F32 if small else big), name
    for name, src in hf.items():
        t = got[name]
        want = source_weights[src].astype(np.float32)
        have = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
        # relative to the tensor's scale: quantisation error is per block of 32
        err = np.abs(have - want).max() / np.abs(want).max()
        assert err <= tol, (name, err)
        if tol == 0.0:
            assert np.array_equal(have, want), name


def test_zip_source_and_cli(hf_dir, tmp_path):
    zpath = tmp_path / "model.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        for f in hf_dir.rglob("*"):
            if f.is_file():
                zf.write(f, f.relative_to(hf_dir))
    out = tmp_path / "x.gguf"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "convert_bert.py"), str(zpath), str(out),
                        "--outtype", "q8_0", "--name", "all-MiniLM-L6-v2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    kv = fields(gguf.GGUFReader(out))
    assert kv["general.name"] == "all-MiniLM-L6-v2"
    assert kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q8_0)


def test_rejects_unknown_output_type(hf_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown output type"):
        convert_bert.convert(hf_dir, tmp_path / "x.gguf", "q5_k")


_ORACLE_EMBED = r"""
import json, os, sys
path, texts = sys.argv[1], json.loads(sys.argv[2])
from gpt4all import Embed4All
e = Embed4All(os.path.basename(path), model_path=os.path.dirname(path), allow_download=False, device='cpu')
up = e.embed(texts)
from llama_cpp import Llama
m = Llama(path, embedding=True, verbose=False)
lc = [m.embed(t) for t in texts]
print(json.dumps({"gpt4all": up, "llama_cpp": lc}))
"""


@pytest.mark.parametrize("out_type,min_cos", [("f16", 0.9999), ("q8_0", 0.999)])
def test_upstream_gpt4all_and_llama_cpp_load_it(converted, out_type, min_cos):
    """Upstream gpt4all 2.8.2 and llama-cpp-python load the file and embed like the NumPy recipe."""
    assert Path(ORACLE_PYTHON).exists(), f"oracle venv missing: {ORACLE_PYTHON} (see tools/setup.sh)"
    texts = ["The quick brown fox jumps over the lazy dog.", "GGUF files keep BERT's WordPiece vocab."]
    # -I: isolated mode, so the working directory (this repo, with its own `gpt4all`) is not on sys.path
    r = subprocess.run([ORACLE_PYTHON, "-I", "-c", _ORACLE_EMBED, str(converted[out_type]), json.dumps(texts)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    ref = reference()
    for i, text in enumerate(texts):
        want = ref.embed(text)
        assert cosine(res["gpt4all"][i], want) >= min_cos
        assert cosine(res["llama_cpp"][i], want) >= min_cos
