"""Pre-tokenizers: how byte-level BPE text is cut into words before any merging.

A BPE vocabulary never merges across the boundaries a pre-tokenizer draws (between words,
before digits, around punctuation), so getting these splits right is half of matching
llama.cpp. The GGUF key ``tokenizer.ggml.pre`` names the pre-tokenizer; llama.cpp
(src/llama-vocab.cpp, ``llm_tokenizer_bpe``) maps each name to a *list* of regular
expressions, and src/unicode.cpp (``unicode_regex_split``) applies them one after another:

* the first expression runs over the whole text; every match becomes a piece, and so does
  every stretch of text between matches (nothing is ever dropped);
* each later expression runs over each piece separately (its look-aheads cannot see past the
  piece) and splits it further the same way.

So ``["\\p{N}", gpt2]`` (starcoder, smollm, ...) first isolates every digit, then cuts the rest
with the GPT-2 expression: "abc123" -> "abc", "1", "2", "3".

The expressions below are the ones llama.cpp uses, copied as data (several are llama.cpp's
adaptations of the upstream Hugging Face regex, e.g. ``(?i:'s|...)`` spelled out case by case).
llama.cpp runs them through std::regex on a "collapsed" text in which every non-ASCII code point
is replaced by one byte standing for its Unicode category; the `regex` package understands
``\\p{L}``/``\\p{N}`` directly, so we run them on the real text. Two ECMAScript details differ
from Python and are translated: ``$`` (end of input only in ECMAScript) becomes ``\\Z``.
llama.cpp's category tables were generated with this same `regex` package
(scripts/gen-unicode-data.py), so ``\\p{L}``, ``\\p{N}`` and ``\\s`` agree code point by code point.
"""
from __future__ import annotations

import functools

import regex

# The GPT-2 expression (llama.cpp also has a hand-written fast path for exactly this string).
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"

# Llama 3's expression with the case-insensitive contractions spelled out (llama.cpp PR 6920).
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen2: as Llama 3 but one digit per piece.
QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# DeepSeek LLM: explicit Latin/Greek/Cyrillic/... letter ranges, CJK runs, digit runs.
DEEPSEEK_LLM = [
    "[\r\n]",
    # Cased letters as explicit ranges; \u escapes because several endpoints (U+1F7D, U+212A, ...)
    # are canonical singletons that an editor or copy may silently NFC-normalise into other code points.
    (
        "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-"
        "\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
        "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-"
        "\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57"
        "\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-"
        "\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-"
        "\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184"
        "\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-"
        "\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f"
        "\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
        "\U0001e900-\U0001e943]+"),
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
]

DEEPSEEK_CODER = [
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}",
]

# Tekken (Mistral Nemo): upper-case runs then lower-case runs; llama.cpp spells
# [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] as "a letter that is not a-z" (its collapsed text has no case).
TEKKEN = (r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
          r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
          r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# tokenizer.ggml.pre -> the expressions llama.cpp applies, in order.
_STARCODER = [r"\p{N}", GPT2]
_BLOOM = [" ?[^(\\s|.,!?…。，、।۔،)]+"]
PRE_TOKENIZERS: dict[str, list[str]] = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
    "llama3": [LLAMA3], "llama-v3": [LLAMA3], "llama-bpe": [LLAMA3], "falcon3": [LLAMA3],
    "dbrx": [LLAMA3], "smaug-bpe": [LLAMA3], "chatglm-bpe": [LLAMA3],
    "deepseek-llm": DEEPSEEK_LLM,
    "deepseek-coder": DEEPSEEK_CODER,
    "deepseek-v3": [r"\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
                    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
                    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
    "starcoder": _STARCODER, "refact": _STARCODER, "command-r": _STARCODER, "smollm": _STARCODER,
    "codeshell": _STARCODER, "exaone": _STARCODER, "minerva-7b": _STARCODER,
    "gpt-2": [GPT2], "phi-2": [GPT2], "jina-es": [GPT2], "jina-de": [GPT2], "gigachat": [GPT2],
    "jina-v1-en": [GPT2], "jina-v2-es": [GPT2], "jina-v2-de": [GPT2], "jina-v2-code": [GPT2],
    "roberta-bpe": [GPT2], "mpt": [GPT2], "olmo": [GPT2], "jais": [GPT2],
    "qwen2": [QWEN2], "stablelm2": [QWEN2], "megrez": [QWEN2],
    "poro-chat": _BLOOM, "bloom": _BLOOM, "gpt3-finnish": _BLOOM,
    "viking": [_BLOOM[0], r"\p{N}"],
    "tekken": [TEKKEN],
    "chameleon": ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
                  r"\p{N}", r"[\p{P}!-/:-@\[-`{-~]", GPT2],
}

# Pre-tokenizer names whose words skip BPE merging when the whole word is already a token
# ("ignore_merges"), and those that add BOS unless the GGUF says otherwise; read by bpe.py/vocab.py.
IGNORE_MERGES = {"llama3", "llama-v3", "llama-bpe", "falcon3", "tekken"}
ADD_BOS_DEFAULT = {"llama3", "llama-v3", "llama-bpe", "falcon3", "tekken", "chameleon"}


def _to_python_regex(expr: str) -> str:
    """ECMAScript -> `regex` syntax: a bare ``$`` means end of input, which Python spells ``\\Z``."""
    out, i, inside = [], 0, False
    while i < len(expr):
        c = expr[i]
        if c == "\\":
            out.append(expr[i:i + 2])
            i += 2
            continue
        if c == "[":
            inside = True
        elif c == "]":
            inside = False
        elif c == "$" and not inside:
            c = r"\Z"
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=None)
def _compiled(name: str) -> tuple:
    if name not in PRE_TOKENIZERS:
        raise ValueError(f"unknown pre-tokenizer {name!r} (known: {', '.join(sorted(PRE_TOKENIZERS))})")
    return tuple(regex.compile(_to_python_regex(e)) for e in PRE_TOKENIZERS[name])


def split(text: str, name: str) -> list[str]:
    """Cut ``text`` into pre-tokenizer pieces as llama.cpp's unicode_regex_split does."""
    pieces = [text] if text else []
    for expr in _compiled(name):
        out = []
        for piece in pieces:
            start = 0
            for m in expr.finditer(piece):
                if m.start() > start:          # text between matches is a piece of its own
                    out.append(piece[start:m.start()])
                if m.end() > m.start():
                    out.append(m.group())
                start = m.end()
            if start < len(piece):
                out.append(piece[start:])
        pieces = out
    return pieces
