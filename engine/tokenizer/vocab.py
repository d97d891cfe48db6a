"""The Tokenizer: a GGUF vocabulary, its special tokens, and text <-> token ids.

What is common to every algorithm lives here, following llama.cpp's ``llama_vocab``:

* token attributes from ``tokenizer.ggml.token_type`` (normal, unknown, control, user-defined,
  unused, byte);
* special token ids (BOS, EOS, EOT, UNK, SEP, ...), from the GGUF keys or llama.cpp's defaults,
  and the set of end-of-generation tokens (EOS, EOT and tokens such as "<|im_end|>",
  "<end_of_turn>", found by their text as llama.cpp does);
* splitting the text around special tokens written in it (``parse_special``): longest token
  first; user-defined tokens (Gemma's "\\n\\n", runs of spaces, HTML tags) are always split out,
  control tokens only when asked;
* adding BOS/EOS (CLS/SEP for BERT) as the GGUF's add_bos_token/add_eos_token say;
* token -> bytes, for decoding and streaming.

The algorithm that turns a plain-text fragment into ids is spm.py, bpe.py or wordpiece.py.
Lookup tables are built on first use, so constructing a Tokenizer is cheap.
"""
from __future__ import annotations

import functools

from . import bpe, pretokenize, spm, wordpiece
from .streaming import Streamer

# Token attributes are bit flags, as in llama.cpp (a token can be user-defined *and* control).
UNKNOWN, UNUSED, NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 2, 4, 8, 16, 32
# tokenizer.ggml.token_type value (gguf-py's TokenType) -> attribute; anything else is "undefined" (0)
_TYPE_TO_ATTR = {1: NORMAL, 2: UNKNOWN, 3: CONTROL, 4: USER_DEFINED, 5: UNUSED, 6: BYTE}

# Texts llama.cpp (the version in llama-cpp-python 0.3.36) treats as end of generation; tokens
# found by these texts are made control tokens, whatever the file says.
EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
             "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
             "<|end_of_text|>", "<end_of_utterance>")
EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
             "<EOT>", "_<EOT>", "[EOT]", "<end_of_utterance>")
FIM_TEXTS = {  # fill-in-the-middle tokens whose pad/repo/sep count as end of generation
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}

# llama.cpp's defaults per tokenizer model before the GGUF keys override them
_DEFAULT_IDS = {
    "llama": dict(bos=1, eos=2, unk=0),
    "bert": dict(bos=101, unk=100, sep=102, pad=0, mask=103),
    "gpt2": dict(bos=11, eos=11),
}
_ID_KEYS = {
    "bos": "bos_token_id", "eos": "eos_token_id", "eot": "eot_token_id", "eom": "eom_token_id",
    "unk": "unknown_token_id", "sep": "seperator_token_id", "pad": "padding_token_id",
    "mask": "mask_token_id", "fim_pad": "fim_pad_token_id", "fim_rep": "fim_rep_token_id",
    "fim_sep": "fim_sep_token_id",
}
_ASCII_SPACE = " \t\n\v\f\r"


class Tokenizer:
    def __init__(self, metadata: dict):
        def key(name, default=None):
            return metadata.get("tokenizer.ggml." + name, default)

        self.model: str = key("model")
        if self.model not in ("llama", "gpt2", "bert"):
            raise ValueError(f"unsupported tokenizer model {self.model!r} (supported: llama, gpt2, bert)")
        self.pre: str = key("pre") or "default"
        self.tokens: list[str] = list(key("tokens"))
        self.n_vocab = len(self.tokens)
        # empty token texts would collide in the lookup; llama.cpp renames them the same way
        for i, t in enumerate(self.tokens):
            if not t:
                self.tokens[i] = f"[EMPTY_{i}]"
        types = key("token_type")
        self.attrs: list[int] = ([_TYPE_TO_ATTR.get(int(t), 0) for t in types] if types is not None
                                 else [NORMAL] * self.n_vocab)
        scores = key("scores")
        self.scores = list(scores) if scores is not None else [0.0] * self.n_vocab
        self._merges = key("merges")

        ids = {name: None for name in _ID_KEYS}
        ids.update(_DEFAULT_IDS[self.model])
        for name, k in _ID_KEYS.items():
            v = key(k)
            if v is not None and 0 <= int(v) < self.n_vocab:
                ids[name] = int(v)

        # BOS/EOS/space-prefix defaults per model, then the GGUF's own flags
        self.add_bos = {"llama": True, "bert": True, "gpt2": self.pre in pretokenize.ADD_BOS_DEFAULT}[self.model]
        self.add_eos = False
        self.add_space_prefix = self.model == "llama"
        for attr, k in (("add_bos", "add_bos_token"), ("add_eos", "add_eos_token"),
                        ("add_space_prefix", "add_space_prefix")):
            if key(k) is not None:
                setattr(self, attr, bool(key(k)))

        # Find EOT/FIM tokens by their text when the file does not name them; the tokens found
        # (and every EOG-looking one) are treated as control tokens, as llama.cpp does.
        by_text = {t: i for i, t in enumerate(self.tokens) if t[:1] in "<[_"}
        def find(texts):
            # llama.cpp takes the first hit of an unordered_map walk; we take the lowest id,
            # which agrees with it on the test models (SmolLM2: <|endoftext|> before <|im_end|>)
            found = [by_text[t] for t in texts if t in by_text]
            return min(found) if found else None
        if ids["eot"] is None:
            ids["eot"] = find(EOT_TEXTS)
        if ids["eom"] is None:
            ids["eom"] = find(("<|eom_id|>",))
        for name, texts in FIM_TEXTS.items():
            if ids[name] is None:
                ids[name] = find(texts)
        for n in ("eot", "eom", "fim_pad", "fim_rep", "fim_sep"):
            if ids[n] is not None and key(_ID_KEYS[n]) is None:
                self.attrs[ids[n]] |= CONTROL
        eog = {ids[n] for n in ("fim_pad", "fim_rep", "fim_sep") if ids[n] is not None}
        for t in EOG_TEXTS:
            if t in by_text:
                eog.add(by_text[t])
                self.attrs[by_text[t]] |= CONTROL
        for t in ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"):   # gpt-oss: always printed
            if t in by_text:
                self.attrs[by_text[t]] = USER_DEFINED
        eog |= {ids[n] for n in ("eos", "eot", "eom") if ids[n] is not None}
        texts = {self.tokens[i]: i for i in eog}
        # o200k_harmony / solar-open: "<|end|>" ends a message, not the generation
        if "<|end|>" in texts and (("<|return|>" in texts and ("<|call|>" in texts or "<|calls|>" in texts))
                                   or (("<|call|>" in texts or "<|calls|>" in texts) and "<|flush|>" in texts)):
            eog.discard(texts["<|end|>"])
            self.attrs[texts["<|end|>"]] = USER_DEFINED
        self._eog = frozenset(eog)

        self.bos_id, self.eos_id, self.eot_id = ids["bos"], ids["eos"], ids["eot"]
        self.unk_id, self.sep_id, self.pad_id = ids["unk"], ids["sep"], ids["pad"]

        # Phi-3's special tokens swallow the whitespace after them (llama.cpp sets this by model name).
        self._lstrip, self._rstrip = set(), set()
        name = str(metadata.get("general.name", "")).lower()
        if any(s in self.pre for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) and "<mask>" in by_text:
            self._lstrip.add(by_text["<mask>"])
        elif "phi-3" in name or "phi3" in name:
            self._rstrip = {i for i, a in enumerate(self.attrs) if a & (CONTROL | USER_DEFINED | UNKNOWN)}
            self._rstrip.add(by_text.get("</s>", -1))
            self._rstrip -= {by_text.get(t, -1) for t in ("<unk>", "<s>", "<|endoftext|>")}

    # ---- lookup tables, built on first use -------------------------------------------------
    @functools.cached_property
    def token_to_id(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @functools.cached_property
    def _specials(self) -> list[tuple[str, int, bool]]:
        """(text, id, is_control_or_unknown) of tokens split out of raw text, longest (in bytes) first."""
        ids = [i for i, a in enumerate(self.attrs) if a & (CONTROL | USER_DEFINED | UNKNOWN)]
        ids.sort(key=lambda i: (-len(self.tokens[i].encode("utf-8")), i))
        return [(self.tokens[i], i, bool(self.attrs[i] & (CONTROL | UNKNOWN))) for i in ids]

    @functools.cached_property
    def _encoder(self):
        if self.model == "gpt2":
            if self._merges is None:
                raise ValueError("BPE tokenizer without tokenizer.ggml.merges")
            return bpe.BpeEncoder(self.token_to_id, self._merges, self.pre,
                                  ignore_merges=self.pre in pretokenize.IGNORE_MERGES)
        if self.model == "bert":
            return wordpiece.WordPieceEncoder(self.token_to_id, self.unk_id)
        return None     # SPM is a function of the whole fragment, see _encode_fragment

    def _byte_token(self, b: int) -> int:
        """SPM byte fallback: the <0xXX> token (or, failing that, the byte as a one-character token)."""
        t2i = self.token_to_id
        tok = t2i.get(f"<0x{b:02X}>")
        if tok is None:
            tok = t2i[chr(b)]
        return tok

    # ---- encoding --------------------------------------------------------------------------
    def _partition(self, text: str, parse_special: bool) -> list:
        """Split text into raw-text fragments (str) and special token ids (int), as llama.cpp's
        tokenizer_st_partition: each special token in turn, longest first, every occurrence."""
        frags: list = [text]
        for tok_text, tid, is_ctrl in self._specials:
            if is_ctrl and not parse_special:
                continue
            if tok_text not in text:      # cheap pre-check over the whole text
                continue
            out = []
            for frag in frags:
                if isinstance(frag, int) or tok_text not in frag:
                    out.append(frag)
                    continue
                while True:
                    pos = frag.find(tok_text)
                    if pos < 0:
                        if frag:
                            out.append(frag)
                        break
                    left, frag = frag[:pos], frag[pos + len(tok_text):]
                    if tid in self._lstrip:
                        left = left.rstrip(_ASCII_SPACE)
                    if tid in self._rstrip:
                        frag = frag.lstrip(_ASCII_SPACE)
                    if left:
                        out.append(left)
                    out.append(tid)
            frags = out
        return frags

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids for ``text``. add_special: BOS/EOS as the GGUF says (CLS/SEP for BERT);
        parse_special: control tokens written in the text (e.g. "<|im_start|>") become their ids."""
        frags = self._partition(text, parse_special) if text else []
        out: list[int] = []
        if self.model == "bert":
            if add_special:
                out.append(self.bos_id)          # [CLS]
            for f in frags:
                out.extend([f] if isinstance(f, int) else self._encoder.encode(f))
            if add_special:
                out.append(self.sep_id)          # [SEP]
            return out
        if add_special and self.add_bos:
            out.append(self.bos_id)
        if self.model == "llama":
            prev_special = True                  # a space prefix goes on text at the start or after a special token
            t2i, scores = self.token_to_id, self.scores
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                    prev_special = True
                else:
                    out.extend(spm.encode(spm.escape_spaces(f, self.add_space_prefix and prev_special),
                                          t2i, scores, self._byte_token))
                    prev_special = False
        else:
            enc = self._encoder
            for f in frags:
                out.extend([f] if isinstance(f, int) else enc.encode(f))
        if add_special and self.add_eos:
            out.append(self.eos_id)
        return out

    # ---- decoding --------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes token ``token_id`` stands for (llama.cpp's token_to_piece, special=True)."""
        piece = self._pieces[token_id]
        if piece is None:
            piece = self._pieces[token_id] = self._make_piece(token_id)
        return piece

    @functools.cached_property
    def _pieces(self) -> list:
        return [None] * self.n_vocab           # filled on demand by token_bytes

    def _make_piece(self, token_id: int) -> bytes:
        text, attr = self.tokens[token_id], self.attrs[token_id]
        if attr & (CONTROL | UNKNOWN | USER_DEFINED):
            return text.encode("utf-8")
        if attr & NORMAL:
            return self._normal_piece(text)
        if attr & BYTE and self.model in ("llama", "bert"):
            return bytes([int(text[3:5], 16)])
        return b""                                # unused/undefined tokens print nothing

    def _normal_piece(self, text: str) -> bytes:
        if self.model == "gpt2":
            u2b = bpe.unicode_to_byte()
            out = bytearray()
            for ch in text:
                b = u2b.get(ch)
                if b is not None:
                    out.append(b)
                else:                             # not in GPT-2's alphabet: llama.cpp writes a marker
                    out += b"[UNK_BYTE_0x" + ch.encode("utf-8").hex().encode() + text.encode("utf-8") + b"]"
            return bytes(out)
        if self.model == "bert" and self._encoder._hf_style:
            return text[2:].encode("utf-8") if text.startswith("##") else b" " + text.encode("utf-8")
        return text.replace("▁", " ").encode("utf-8")

    def _piece_no_special(self, token_id: int) -> bytes:
        return b"" if self.attrs[token_id] & (CONTROL | UNKNOWN) else self.token_bytes(token_id)

    def decode(self, ids, special: bool = True) -> str:
        """Text of ``ids``: the tokens' bytes joined, decoded as UTF-8 (invalid bytes -> U+FFFD).
        special=False leaves out control tokens such as BOS, EOS and <|im_end|>."""
        piece = self.token_bytes if special else self._piece_no_special
        return b"".join(piece(int(i)) for i in ids).decode("utf-8", errors="replace")

    def streamer(self, special: bool = True) -> Streamer:
        """A Streamer: .push(id) -> newly completed text, .flush() -> the rest; see streaming.py."""
        return Streamer(self, special)

    # ---- token classes ---------------------------------------------------------------------
    def is_eog(self, token_id: int) -> bool:
        """End of generation: EOS, EOT, <|im_end|>, <end_of_turn>, ..."""
        return token_id in self._eog

    def is_control(self, token_id: int) -> bool:
        return 0 <= token_id < self.n_vocab and bool(self.attrs[token_id] & CONTROL)

    @property
    def eog_ids(self) -> frozenset:
        return self._eog

    def __repr__(self) -> str:
        return f"Tokenizer({self.model}/{self.pre}, n_vocab={self.n_vocab}, bos={self.bos_id}, eos={self.eos_id})"
