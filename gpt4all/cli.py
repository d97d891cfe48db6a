"""Chat with a model in the terminal: ``python -m gpt4all`` (or the ``gpt4all-chat`` script).

With no arguments it loads the small default model (SmolLM2-135M-Instruct, made by ``python tools/models.py``)
on the CPU and starts a chat: the reply streams as it is generated, and the model's own chat template (from its
GGUF file) formats the conversation.  ``--prompt`` answers one message and exits; when stdin is not a terminal
every line read is a message and the program ends at end of input (so ``echo hi | python -m gpt4all`` works and
a CI job without stdin finishes instead of waiting).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_models_dir() -> Path:
    """Where tools/models.py puts the project's test models (the same rule as tests/conftest.py)."""
    return Path(os.environ.get("GPT4ALL_TEST_MODELS", Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))


def _locate(model: str) -> tuple[str, Path | None, bool]:
    """(file name, directory or None for the SDK default, allow_download) for a --model argument."""
    path = Path(model).expanduser()
    if path.is_file():                                   # a path to a GGUF file: use exactly that file
        return path.name, path.parent, False
    for name in (model, model + ".gguf"):               # a file in the test-model folder
        if (test_models_dir() / name).is_file():
            return name, test_models_dir(), False
    return model, None, True                             # a catalogue name: the SDK finds or downloads it


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt4all", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"a GGUF file path, a file in the test-model folder, or a catalogue name (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="auto",
                   help="auto (default: the best real GPU through Vulkan, else the CPU), cpu, gpu, kompute, "
                        "amd, nvidia, intel or a name from --list-gpus")
    p.add_argument("--prompt", default=None, help="answer this one message, then exit")
    p.add_argument("--system", default=None, help="system message (default: the model's own)")
    p.add_argument("--max-tokens", type=int, default=200, help="longest reply in tokens (default 200)")
    p.add_argument("--temp", type=float, default=0.7, help="sampling temperature; 0 = greedy (default 0.7)")
    p.add_argument("--n-ctx", type=int, default=2048, help="context window in tokens (default 2048)")
    p.add_argument("--list-gpus", action="store_true", help="list the GPUs this build can use, then exit")
    return p


def _reply(model, message: str, args) -> None:
    for piece in model.generate(message, max_tokens=args.max_tokens, temp=args.temp, n_batch=128, streaming=True):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()


def _messages(stdin, interactive: bool):
    """The user's messages: typed at a prompt, or one per input line; ends at end of input or '/exit'."""
    while True:
        if interactive:
            try:
                line = input("> ")
            except EOFError:
                print()
                return
        else:
            line = stdin.readline()
            if not line:
                return
        line = line.strip()
        if line in ("/exit", "/quit"):
            return
        if line:
            yield line


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .gpt4all import GPT4All

    if args.list_gpus:
        for gpu in GPT4All.list_gpus():
            print(gpu)
        return 0

    name, directory, allow_download = _locate(args.model)
    if args.model == DEFAULT_MODEL and directory is None:
        print(f"The default model {DEFAULT_MODEL} is not in {test_models_dir()}: make it with "
              "`python tools/models.py`, or pass --model PATH_OR_NAME.", file=sys.stderr)
        return 1
    if args.device == "auto":
        from engine.backends.vulkan_device import best_available
        args.device = best_available()
    try:
        model = GPT4All(name, model_path=directory, allow_download=allow_download, device=args.device,
                        n_ctx=args.n_ctx)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    with model, model.chat_session(system_message=args.system):
        if args.prompt is not None:
            _reply(model, args.prompt, args)
            return 0
        stdin = sys.stdin
        interactive = stdin is not None and stdin.isatty()
        if interactive:
            print(f"Chatting with {name} on {model.backend}"
                  f"{' (' + model.device + ')' if model.device else ''}. /exit or Ctrl-D ends.", file=sys.stderr)
        if stdin is None:
            return 0
        try:
            for message in _messages(stdin, interactive):
                _reply(model, message, args)
        except KeyboardInterrupt:
            print(file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
