"""GPT4All and Embed4All: the SDK's public classes, on this project's engine (engine.load -> engine.LLM).

The surface follows the GPT4All Python SDK (docs in ../shared/seeds/, upstream's behaviour in
../shared/reference/upstream-gpt4all.md): both SDK 3's ``chat_session(system_message, chat_template)`` with Jinja
templates and SDK 2.8's ``chat_session(system_prompt, prompt_template)`` with ``{0}`` templates work.  Beyond
upstream, answering its users' most common requests: ``generate(stop=[...])``; chat templates read from the GGUF
file for sideloaded models; no network access for a model file that is already on disk; downloads that resume.

The pieces live in their own modules: catalogue.py (models3.json, finding/downloading a model), download.py,
templates.py (Jinja and ``{0}`` templates), session.py (conversation -> prompt tokens), generation.py (tokens ->
text pieces, stop strings), and gpt4all/_embed.py (the embedding semantics behind Embed4All.embed).
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Literal, TypedDict

from . import catalogue, download
from .catalogue import ConfigType
from .generation import text_pieces
from .session import ChatSession
from .templates import DEFAULT_PROMPT_TEMPLATE, LegacyTemplate, is_legacy_template

# Where models are looked for and downloaded when no model_path is given.  Read when a model is retrieved, so
# `gpt4all.gpt4all.DEFAULT_MODEL_DIRECTORY = ...` (as the docs show) takes effect for the next model.
DEFAULT_MODEL_DIRECTORY = Path.home() / ".cache" / "gpt4all"

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2.gguf2.f16.gguf"
MAX_PROMPT_BATCH = 128   # upstream's LLMODEL_MAX_PROMPT_BATCH: a larger n_batch is clamped to this

ResponseCallbackType = Callable[[int, str], bool]
MessageType = dict   # {"role": str, "content": str}


def empty_response_callback(token_id: int, response: str) -> bool:
    return True


class CancellationError(Exception):
    """Raised by Embed4All.embed when its ``cancel_cb`` asks to cancel."""


class EmbedResult(TypedDict):
    """What Embed4All.embed(..., return_dict=True) returns."""
    embeddings: Any          # list[float] for one text, list[list[float]] for a list of texts
    n_prompt_tokens: int


def _engine_device(device: str | None) -> str | None:
    """The SDK's device string as engine.load takes it; CUDA and Metal are named and refused clearly."""
    if device is None or device == "cpu":
        return None
    name = device.lower()
    for backend in ("cuda", "metal"):
        if name == backend or name.startswith(backend + ":"):
            raise ValueError(f"device={device!r}: the {backend.upper()} backend is not in this build; use 'cpu' or "
                             f"a Vulkan device ('gpu', 'kompute', 'amd', 'nvidia', 'intel' or one of "
                             f"GPT4All.list_gpus())")
    return device


class LLModel:
    """``GPT4All.model``: the loaded engine model behind a small, upstream-shaped handle.

    Clients such as LangChain call ``set_thread_count`` on it; everything else is on ``llm`` (engine.LLM).
    """

    def __init__(self, llm, n_threads: int | None):
        self._llm = llm
        self._n_threads = n_threads if n_threads is not None else min(4, os.cpu_count() or 1)

    @property
    def llm(self):
        if self._llm is None:
            raise ValueError("Attempted operation on a closed LLModel")
        return self._llm

    def set_thread_count(self, n_threads: int) -> None:
        self.llm.set_threads(int(n_threads))
        self._n_threads = int(n_threads)

    def thread_count(self) -> int:
        return self._n_threads

    @property
    def backend(self) -> str:
        return self.llm.backend

    @property
    def device(self) -> str | None:
        return self.llm.device

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None


class GPT4All:
    """Load a GGUF model, generate text with it, and chat with it."""

    def __init__(self, model_name: str, model_path: str | os.PathLike[str] | None = None, *,
                 model_type: str | None = None, allow_download: bool = True, n_threads: int | None = None,
                 device: str | None = None, n_ctx: int = 2048, ngl: int = 100, verbose: bool = False):
        """
        model_name: a catalogue file name or any GGUF file name in ``model_path`` ('.gguf' optional).
        model_path: the directory holding (or to download) the file; default ``DEFAULT_MODEL_DIRECTORY``.
            (Upstream makes it keyword-only; its own docs pass it positionally, so both work here.)
        model_type: descriptive only, kept as ``self.model_type``.
        allow_download: fetch the file if it is missing; a file already present never needs the network.
        n_threads: CPU threads for the NumPy backend's BLAS.
        device: 'cpu' (default), 'gpu'/'kompute' (best Vulkan GPU), 'amd'/'nvidia'/'intel' (by vendor), or a
            name from ``list_gpus()``.
        n_ctx: context window in tokens (at least 8).  ngl: accepted for compatibility; the whole model runs on
            the chosen device.
        """
        import engine   # late: `import gpt4all` stays cheap (and the CLI can print usage without NumPy work)

        self.model_type = model_type
        self._session: ChatSession | None = None
        self._pieces: Iterator | None = None    # the generation in progress (a streaming one may be paused)
        engine_device = _engine_device(device)
        self.config: ConfigType = self.retrieve_model(model_name, model_path=model_path,
                                                      allow_download=allow_download, verbose=verbose)
        llm = engine.load(self.config["path"], device=engine_device, n_ctx=max(8, int(n_ctx)), n_threads=n_threads,
                          n_batch=MAX_PROMPT_BATCH, verbose=verbose)
        self.model = LLModel(llm, n_threads)
        if llm.n_ctx > llm.n_ctx_train and not llm.is_embedding:   # (encoders use n_ctx as their batch)
            warnings.warn(f"n_ctx={llm.n_ctx} is larger than the {llm.n_ctx_train} tokens this model was trained "
                          "on; expect poor results past that length", stacklevel=2)

    # -------------------------------------------------------------------------------------------- lifetime
    def __enter__(self) -> "GPT4All":
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the model; later calls raise ValueError."""
        self.model.close()

    @property
    def backend(self) -> Literal["cpu", "kompute", "cuda", "metal"]:
        """Where the forward pass really runs: 'cpu' or 'kompute' in this build."""
        return self.model.backend

    @property
    def device(self) -> str | None:
        """The GPU's name, or None on the CPU."""
        return self.model.device

    # ------------------------------------------------------------------------------------- model catalogue
    @staticmethod
    def list_models() -> list[ConfigType]:
        """The online model list (models3.json), or the copy bundled with this package when offline."""
        return catalogue.list_models()

    @classmethod
    def retrieve_model(cls, model_name: str, model_path: str | os.PathLike[str] | None = None,
                       allow_download: bool = True, verbose: bool = False) -> ConfigType:
        """Find the model file (downloading it if missing and allowed) and return its config dict."""
        if model_path is None:
            model_path = Path(DEFAULT_MODEL_DIRECTORY)   # the module global, read now
            try:
                model_path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RuntimeError("Failed to create model download directory") from e
        return catalogue.retrieve_model(model_name, model_path, allow_download=allow_download, verbose=verbose)

    @staticmethod
    def download_model(model_filename: str, model_path: str | os.PathLike[str], verbose: bool = True,
                       url: str | None = None, expected_size: int | None = None,
                       expected_md5: str | None = None) -> str | os.PathLike[str]:
        """Download a model file (resumable, size- and MD5-checked); return its path."""
        return download.download_model(model_filename, model_path, verbose=verbose, url=url,
                                       expected_size=expected_size, expected_md5=expected_md5)

    @staticmethod
    def list_gpus() -> list[str]:
        """Vulkan GPUs this build can use, as 'kompute:<name>' (pass the name, or the whole string, as device)."""
        try:
            from engine.backends import vulkan_device
        except ImportError as e:
            raise ValueError(f"Unable to retrieve available GPU devices: the Vulkan backend is unavailable ({e})") \
                from e
        return [f"kompute:{gpu.name}" for gpu in vulkan_device.list_gpus()]

    # ------------------------------------------------------------------------------------------ generation
    def generate(self, prompt: str, *, max_tokens: int = 200, temp: float = 0.7, top_k: int = 40,
                 top_p: float = 0.4, min_p: float = 0.0, repeat_penalty: float = 1.18, repeat_last_n: int = 64,
                 n_batch: int = 8, n_predict: int | None = None, streaming: bool = False,
                 callback: ResponseCallbackType = empty_response_callback, stop: Iterable[str] | None = None,
                 seed: int | None = None) -> Any:
        """Continue ``prompt`` (outside a chat session) or answer it (inside one).

        Returns the whole reply, or with ``streaming=True`` a generator of text pieces.  ``callback(token_id,
        text)`` sees every piece; returning False stops generation (that piece still ends up in the returned
        string, but is not yielded when streaming - as upstream).  ``n_predict`` overrides ``max_tokens``;
        ``n_batch`` is clamped to 128; ``temp=0`` is greedy.  Beyond upstream: ``stop``, strings that end the
        reply and are never emitted, and ``seed`` for reproducible sampling.
        """
        import engine.sampling

        llm = self.model.llm
        if getattr(llm, "is_embedding", False):
            raise RuntimeError(f"prompt error: Not a text completion model: {llm.name}")
        n_predict = max_tokens if n_predict is None else n_predict
        n_batch = max(1, min(int(n_batch), MAX_PROMPT_BATCH))
        params = engine.sampling.SamplingParams(temp=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                                                repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                                                seed=seed)

        if self._session is not None:
            self._session.messages.append({"role": "user", "content": prompt})
            try:
                tokens = self._session.prompt_tokens(llm.tokenizer, llm.n_ctx)
            except BaseException:
                self._session.messages.pop()     # a refused message does not become part of the conversation
                raise
            reply: MessageType = {"role": "assistant", "content": ""}
            self._session.messages.append(reply)
        else:
            tokens = llm.tokenizer.encode(prompt, add_special=True, parse_special=False)
            limit = llm.n_ctx - 4
            if len(tokens) > limit:
                raise ValueError(f"Your message was too long and could not be processed ({len(tokens)} > {limit}).")
            reply = {"role": "assistant", "content": ""}
        if not tokens:
            raise ValueError("Prompt tokenized to zero tokens.")

        # one model, one KV cache: a streaming generation the caller left unfinished must not resume later and
        # write into the cache this call is about to use
        if self._pieces is not None:
            self._pieces.close()
        pieces = self._pieces = text_pieces(llm, tokens, params, n_predict, n_batch, stop or ())
        if streaming:
            return self._stream(pieces, callback, reply)
        for token_id, text in pieces:
            reply["content"] += text
            if not callback(token_id, text):
                pieces.close()
                break
        return reply["content"]

    @staticmethod
    def _stream(pieces: Iterator[tuple[int, str]], callback: ResponseCallbackType,
                reply: MessageType) -> Iterator[str]:
        # a generator: nothing is evaluated until the caller asks for the first piece
        try:
            for token_id, text in pieces:
                reply["content"] += text
                if not callback(token_id, text):
                    return
                yield text
        finally:
            pieces.close()

    # ------------------------------------------------------------------------------------------- chat
    @contextmanager
    def chat_session(self, system_message: str | Literal[False] | None = None, chat_template: str | None = None,
                     *, system_prompt: str | None = None, prompt_template: str | None = None):
        """Hold a conversation: each generate() call is a turn, formatted by the chat template.

        SDK 3 form: ``system_message`` (None: the model's default, False: none) and a Jinja ``chat_template``
        (None: the catalogue's, else the one inside the GGUF file).  SDK 2.8 form: ``system_prompt`` and a
        ``prompt_template`` with ``{0}`` for the user's message (also accepted positionally, as the 2.8 docs do).
        """
        if prompt_template is None and chat_template is not None and is_legacy_template(chat_template):
            prompt_template, chat_template = chat_template, None          # chat_session(system, '... {0} ...')
        jinja = None if prompt_template is not None else self._jinja_template(chat_template)

        if jinja is not None:
            system = system_message if system_message is not None else system_prompt
            if system is None:
                system = self.config.get("systemMessage", False)
            messages = [] if system is False else [{"role": "system", "content": system}]
            session = ChatSession(messages, jinja_template=jinja)
        else:
            if prompt_template is None:
                prompt_template = self.config.get("promptTemplate")
                if prompt_template is None:
                    warnings.warn("This model has no chat template: using the Alpaca-style "
                                  f"{DEFAULT_PROMPT_TEMPLATE!r}; pass chat_template= or prompt_template=.",
                                  DeprecationWarning, stacklevel=3)
                    prompt_template = DEFAULT_PROMPT_TEMPLATE
            system = system_prompt if system_prompt is not None else system_message
            if system is None:
                system = self.config.get("systemPrompt", "") or ""
            session = ChatSession([{"role": "system", "content": system or ""}],
                                  legacy_template=LegacyTemplate.parse(prompt_template))

        self._session = session
        try:
            yield self
        finally:
            self._session = None

    def _jinja_template(self, chat_template: str | None) -> str | None:
        """The Jinja template a session uses, or None to fall back to the ``{0}`` form."""
        if chat_template is not None:
            return chat_template
        if "chatTemplate" in self.config:               # a catalogue model
            if self.config["chatTemplate"] is None:
                raise ValueError(f"The model {self.config.get('name', self.config['filename'])!r} does not "
                                 "support chat.")
            return self.config["chatTemplate"]
        return self.model.llm.chat_template             # beyond upstream: the GGUF's own template (or None)

    @property
    def current_chat_session(self) -> list[MessageType] | None:
        """The conversation so far (a copy), or None outside a chat session."""
        return None if self._session is None else [dict(m) for m in self._session.messages]

    @current_chat_session.setter
    def current_chat_session(self, history: list[MessageType]) -> None:
        if self._session is None:
            raise ValueError("current_chat_session may only be set when there is an active chat session")
        self._session.messages[:] = [dict(m) for m in history]


class Embed4All:
    """Turn text into embedding vectors with an embedding model (BERT / nomic-bert GGUF)."""

    MIN_DIMENSIONALITY = 64

    def __init__(self, model_name: str | None = None, *, n_threads: int | None = None, device: str | None = None,
                 **kwargs: Any):
        """``kwargs`` go to GPT4All (model_path, allow_download, n_ctx, ...)."""
        self.gpt4all = GPT4All(model_name or DEFAULT_EMBED_MODEL, n_threads=n_threads, device=device, **kwargs)

    def __enter__(self) -> "Embed4All":
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.gpt4all.close()

    def embed(self, text: str | list[str], *, prefix: str | None = None, dimensionality: int | None = None,
              long_text_mode: str = "mean", return_dict: bool = False, atlas: bool = False,
              cancel_cb: Callable[[list[int], str], bool] | None = None) -> Any:
        """One embedding (``text`` a str) or a list of them (``text`` a list); see gpt4all/_embed.py.

        With ``return_dict`` the result is ``{"embeddings": ..., "n_prompt_tokens": int}``.
        """
        from . import _embed

        if text is None or len(text) == 0:
            raise ValueError("text must not be None or empty")
        if long_text_mode not in ("mean", "truncate"):
            raise ValueError(f"Long text mode must be one of 'mean' or 'truncate', got {long_text_mode!r}")
        if dimensionality is not None:
            if dimensionality <= 0:
                raise ValueError(f"Dimensionality must be None or a positive integer, got {dimensionality}")
            if dimensionality < self.MIN_DIMENSIONALITY:
                warnings.warn(f"Dimensionality {dimensionality} is less than the suggested minimum of "
                              f"{self.MIN_DIMENSIONALITY}. Performance may be degraded.", stacklevel=2)
        llm = self.gpt4all.model.llm
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        result = _embed.embed(llm, texts, prefix=prefix, dimensionality=dimensionality,
                              long_text_mode=long_text_mode, return_dict=return_dict, atlas=atlas,
                              cancel_cb=cancel_cb)
        if not single:
            return result
        if return_dict:
            return {**result, "embeddings": result["embeddings"][0]}
        return result[0]
