"""Token sampling with llama.cpp's semantics (the sampler chain GPT4All's SDK drives).

The chain, applied to one row of logits [n_vocab]:

    repeat penalty  every distinct token among the last ``repeat_last_n`` of the history has its
                    logit divided by ``repeat_penalty`` when positive, multiplied when not
                    (llama.cpp counts a token once however often it repeats)
    greedy          if temp <= 0 or top_k == 1: the (first) arg-max, nothing else matters
    top-k           keep the k largest logits (k <= 0 or k >= n_vocab: keep all)
    top-p           softmax of the survivors; keep the smallest prefix (by falling probability)
                    whose cumulative probability reaches top_p (at least one token)
    min-p           keep tokens whose probability is >= min_p * the largest probability
    temperature     divide the survivors' logits by temp
    draw            softmax, then the first token whose cumulative probability exceeds ``uniform``
                    (a number in [0, 1) the caller draws from its seeded generator)

The NumPy backend's ``sample`` op calls ``sample_token``; GPU backends implement the same chain
in a shader and are tested against this function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class SamplingParams:
    """The SDK's sampling knobs (defaults as GPT4All.generate's)."""
    temp: float = 0.7
    top_k: int = 40
    top_p: float = 0.4
    min_p: float = 0.0
    repeat_penalty: float = 1.18
    repeat_last_n: int = 64
    seed: Optional[int] = None     # None: fresh randomness; same seed -> same draws

    @property
    def greedy(self) -> bool:
        return self.temp <= 0 or self.top_k == 1


def apply_repeat_penalty(logits: np.ndarray, history: np.ndarray, repeat_penalty: float,
                         repeat_last_n: int) -> np.ndarray:
    """A penalised copy of ``logits`` (f32 [n_vocab]); ``history`` is the token ids, oldest first."""
    logits = np.array(logits, dtype=np.float32, copy=True)
    if repeat_penalty == 1.0 or repeat_last_n <= 0 or len(history) == 0:
        return logits
    recent = np.unique(np.asarray(history[-repeat_last_n:], dtype=np.int64))
    recent = recent[(recent >= 0) & (recent < logits.shape[0])]
    values = logits[recent]
    logits[recent] = np.where(values > 0, values / np.float32(repeat_penalty),
                              values * np.float32(repeat_penalty))
    return logits


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def sample_token(logits: np.ndarray, history: np.ndarray, temp: float, top_k: int, top_p: float,
                 min_p: float, repeat_penalty: float, repeat_last_n: int, uniform: float) -> int:
    """One token id from ``logits`` (f32 [n_vocab]) by the chain in the module docstring."""
    logits = apply_repeat_penalty(logits, history, repeat_penalty, repeat_last_n)
    n_vocab = logits.shape[0]
    if temp <= 0 or top_k == 1:
        return int(np.argmax(logits))

    # top-k: candidate ids sorted by falling logit (a stable sort keeps lower ids first on ties)
    k = n_vocab if top_k <= 0 or top_k >= n_vocab else int(top_k)
    if k < n_vocab:
        part = np.argpartition(-logits, k - 1)[:k]
        ids = part[np.argsort(-logits[part], kind="stable")]
    else:
        ids = np.argsort(-logits, kind="stable")
    cand = logits[ids].astype(np.float64)                  # [k], falling

    # top-p on the (temperature 1) probabilities of the survivors
    if top_p < 1.0:
        cum = np.cumsum(_softmax(cand))
        keep = int(np.searchsorted(cum, top_p, side="left")) + 1   # first index where cum >= top_p
        keep = min(max(keep, 1), len(ids))
        ids, cand = ids[:keep], cand[:keep]

    # min-p relative to the most probable survivor (p_i >= min_p * p_max  <=>  l_i >= l_max + log(min_p))
    if min_p > 0.0:
        keep_mask = cand >= cand[0] + np.log(min_p)
        keep_mask[0] = True
        ids, cand = ids[keep_mask], cand[keep_mask]

    probs = _softmax(cand / temp)
    cum = np.cumsum(probs)
    choice = int(np.searchsorted(cum, uniform, side="right"))     # first cum > uniform
    return int(ids[min(choice, len(ids) - 1)])


class Sampler:
    """Draws the per-step uniforms from a seeded generator (seed None -> OS entropy)."""

    def __init__(self, seed: Optional[int] = None):
        self.rng = np.random.default_rng(seed)

    def uniforms(self, n: int) -> list[float]:
        return [float(u) for u in self.rng.random(n)]
