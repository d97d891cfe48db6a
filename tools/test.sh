#!/usr/bin/env bash
# Run every test: set-up first (idempotent: skips what is done), then pytest on tests/.
#   bash tools/test.sh                 # all tests
#   bash tools/test.sh -k vulkan -x    # extra arguments go to pytest
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup.sh" --models all --oracle
cd "$ROOT"
# The interpreter the tests run upstream gpt4all / llama.cpp in: the one setup.sh found or made.
export GPT4ALL_ORACLE_PYTHON="${GPT4ALL_ORACLE_PYTHON:-$(cat "$ROOT/.venv/.oracle-python")}"
echo "[test] .venv/bin/python -m pytest $*"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
