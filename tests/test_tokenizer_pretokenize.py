"""Pre-tokenizer regexes: llama.cpp's adapted expressions against the upstream Hugging Face ones.

llama.cpp rewrites some tokenizer.json regexes (case-insensitive contractions spelled out, Tekken's
\\p{Lu}/\\p{Ll} classes as "letter that is not a-z/A-Z") and splits by applying a list of expressions
one after another. Here each single-expression pre-tokenizer must cut tricky strings exactly as the
original upstream regex does with `regex.findall`; the multi-expression ones are checked against
hand-derived cuts. (tests/test_tokenizer.py checks every table entry against llama.cpp itself.)
"""
import json
from pathlib import Path

import pytest
import regex

from engine.tokenizer import pretokenize

TRICKY = [
    "Hello world", "  leading and trailing  ", "I'LL DON'T we'Re it's", "12345 678", "a\n\n b\r\n\tc",
    "naïve CAFÉ ÀbcDEF camelCaseWORDSHere", "x=1;y+=2//3", "日本語 テキスト", "emoji 😀👍🏽 ok", "end   ",
    "multi\n\n\nline\n", "tab\tsep", "  \n  ", "ǅungla ǈj", "e\u0301 a\u0308",
]
TRICKY += json.loads((Path(__file__).parent / "data" / "tokenizer" / "corpus.json").read_text(encoding="utf-8"))

# Upstream regexes as written in the models' tokenizer.json (the comments in llama-vocab.cpp).
UPSTREAM = {
    "gpt-2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "tekken": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


@pytest.mark.parametrize("pre", ["gpt-2", "mpt", "olmo", "llama-bpe", "llama3", "qwen2"])
def test_single_regex_pretokenizers_match_upstream_regex(pre):
    upstream = regex.compile(UPSTREAM["llama-bpe" if pre == "llama3" else
                                       "gpt-2" if pre in ("mpt", "olmo") else pre])
    for text in TRICKY:
        # every character is covered by some upstream match, so findall gives the full cut
        assert pretokenize.split(text, pre) == upstream.findall(text), (pre, text)


def test_tekken_matches_upstream_on_ascii_and_caseless_scripts():
    """llama.cpp's Tekken rewrite treats every non-ASCII letter as both cases; on ASCII text and
    caseless scripts it cuts exactly like the upstream expression."""
    upstream = regex.compile(UPSTREAM["tekken"])
    for text in ["camelCaseWORDSHere", "HTTPServer x2 ABCdef", "I'm  here\n\n/path/to", "日本語 テキスト 123",
                 "don't STOP-me now!!\n"]:
        assert pretokenize.split(text, "tekken") == upstream.findall(text), text


def test_digit_isolating_pretokenizers():
    """starcoder/smollm/refact/command-r: every digit alone, then the GPT-2 cut."""
    for pre in ("starcoder", "smollm", "refact", "command-r"):
        assert pretokenize.split("abc123 x45", pre) == ["abc", "1", "2", "3", " x", "4", "5"]
        assert pretokenize.split("I'll go", pre) == ["I", "'ll", " go"]


def test_multi_regex_pretokenizers():
    # default: punctuation runs first, then GPT-2, then digit runs, then groups of three digits
    # (the text between two matches stays a piece: "1234" -> "123", "4")
    assert pretokenize.split("Hi, there!! 1234", "default") == ["Hi", ",", " there", "!!", " ", "123", "4"]
    # falcon: like default plus backticks, digits grouped by three afterwards
    assert pretokenize.split("a`b 123456", "falcon") == ["a", "`", "b", " ", "123", "456"]
    # deepseek-coder: newlines alone, letters with one leading space, each digit alone
    assert pretokenize.split("ab cd\n12", "deepseek-coder") == ["ab", " cd", "\n", "1", "2"]
    # deepseek-llm: trailing whitespace kept as its own piece, CJK runs split from Latin
    assert pretokenize.split("abc中文def  ", "deepseek-llm") == ["abc", "中文", "def", "  "]
    # bloom-style: everything up to whitespace or sentence punctuation
    assert pretokenize.split("hello, world.", "bloom") == ["hello", ",", " world", "."]


def test_every_table_entry_compiles_and_covers_the_text():
    for pre in pretokenize.PRE_TOKENIZERS:
        for text in TRICKY:
            assert "".join(pretokenize.split(text, pre)) == text, (pre, text)


def test_unknown_pretokenizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pre-tokenizer 'nope'"):
        pretokenize.split("x", "nope")
