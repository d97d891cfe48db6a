r"""WordPiece (``tokenizer.ggml.model`` = 'bert'), as llama.cpp's WPM tokenizer does it.

Normalisation, per code point (llama.cpp ``llm_tokenizer_wpm_session::preprocess``):
  * accents: each code point is replaced by the *first* code point of its NFD decomposition
    (so "é" becomes "e", and a Hangul syllable its leading consonant), and combining marks
    (``\p{M}``, e.g. a separately written U+0301 or Devanagari vowel signs) are dropped;
  * whitespace (``\\s``) ends a word; NUL, U+FFFD and control/format code points (``\\p{C}``)
    are dropped;
  * everything is lower-cased (first code point of ``str.lower``);
  * punctuation, ASCII symbols and CJK ideographs become one-character words of their own.

Each word is then matched greedily, longest token first, from left to right. The GGUF writes
word-initial pieces with a "▁" prefix and continuation pieces bare (what HF writes "##ing"); a
vocabulary still in the HF "##" convention is read too. A word that cannot be covered completely
becomes a single [UNK].
"""
from __future__ import annotations

import functools
import unicodedata

import regex

_CATEGORY = regex.compile(r"(\s)|(\p{C}|\p{M})|(\p{P})|(\p{S})")


def _is_chinese(cpt: int) -> bool:
    # The CJK blocks BERT's tokenizer splits on (0x2B920 rather than 0x2B820, as HF's Rust code has it).
    return (0x4E00 <= cpt <= 0x9FFF or 0x3400 <= cpt <= 0x4DBF or 0x20000 <= cpt <= 0x2A6DF
            or 0x2A700 <= cpt <= 0x2B73F or 0x2B740 <= cpt <= 0x2B81F or 0x2B920 <= cpt <= 0x2CEAF
            or 0xF900 <= cpt <= 0xFAFF or 0x2F800 <= cpt <= 0x2FA1F)


@functools.lru_cache(maxsize=65536)
def _classify(ch: str) -> tuple[str, str]:
    """One input character -> (kind, normalised text); kind is 'space', 'drop', 'alone' or 'word'."""
    base = unicodedata.normalize("NFD", ch)[0]
    m = _CATEGORY.match(base)
    if m and m.group(1):
        return "space", ""
    cpt = ord(base)
    if cpt == 0 or cpt == 0xFFFD or (m and m.group(2)):
        return "drop", ""
    low = base.lower()[0]
    if (m and m.group(3)) or (cpt < 0x7F and m and m.group(4)) or _is_chinese(cpt):
        return "alone", low
    return "word", low


def split_words(text: str) -> list[str]:
    words, cur = [], []
    for ch in text:
        kind, s = _classify(ch)
        if kind == "word":
            cur.append(s)
        elif kind == "drop":
            continue
        else:
            if cur:
                words.append("".join(cur))
                cur = []
            if kind == "alone":
                words.append(s)
    if cur:
        words.append("".join(cur))
    return words


class WordPieceEncoder:
    def __init__(self, token_to_id: dict, unk_id: int):
        self._t2i = token_to_id
        self._unk = unk_id
        # llama.cpp's GGUF convention marks word starts with "▁"; HF's marks continuations with "##"
        self._hf_style = not any(t.startswith("▁") for t in token_to_id) and \
            any(t.startswith("##") for t in token_to_id)
        self._max_len = max((len(t) for t in token_to_id), default=1)
        self._cache: dict[str, list[int]] = {}

    def _word(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        t2i, ids, i = self._t2i, [], 0
        if not self._hf_style:
            word = "▁" + word                    # the phantom space of a word start
        n = len(word)
        while i < n:
            prefix = "##" if (self._hf_style and i > 0) else ""
            for j in range(min(n, i + self._max_len), i, -1):   # longest match first
                tok = t2i.get(prefix + word[i:j])
                if tok is not None:
                    ids.append(tok)
                    i = j
                    break
            else:
                ids = [self._unk]                # the word cannot be covered: one [UNK]
                break
        if not ids:
            ids = [self._unk]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for w in split_words(text):
            out.extend(self._word(w))
        return out
