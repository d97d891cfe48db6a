#!/usr/bin/env bash
# Set up this project on a Debian 12 machine (no GPU needed: Mesa's lavapipe is a real Vulkan driver on the CPU).
#
#   bash tools/setup.sh                 # everything, with every test model
#   bash tools/setup.sh --models chat   # everything, with only the default chat model
#   bash tools/setup.sh --models none   # no models
#   bash tools/setup.sh --oracle        # also the oracle venv the tests compare with (tools/test.sh does this)
#
# Idempotent: each step checks whether it is already done and says so; a second run takes seconds.
# Steps: Debian packages -> venv at .venv -> the project, editable, with its Python dependencies -> kp
# (Kompute) built from its sdist -> [--oracle: upstream gpt4all + llama-cpp-python in .venv-oracle] -> test models.
# Environment: PYTHON (the interpreter that makes the venv, default python3), GPT4ALL_TEST_MODELS,
# GPT4ALL_DOWNLOAD_CACHE (see tools/models.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
KP_VERSION=0.9.0
DOWNLOAD_CACHE="${GPT4ALL_DOWNLOAD_CACHE:-$HOME/.cache/gpt4all-vulkan/wheels}"

ORACLE_GPT4ALL=2.8.2        # the upstream SDK we re-implement
ORACLE_LLAMA_CPP=0.3.36     # the llama.cpp our reference logits and token ids were made with

MODELS=all
ORACLE=no
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --models=*) MODELS="${1#*=}"; shift ;;
    --oracle) ORACLE=yes; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { echo "[setup] $*"; }

# --- 1. Debian packages ---------------------------------------------------------------------------------
# Vulkan loader + lavapipe + headers (kp builds against them), fmt and pybind11 headers (kp), the shader
# compilers, vulkaninfo, the build tools, and Python with venv and headers.
PACKAGES=(mesa-vulkan-drivers libvulkan1 libvulkan-dev libfmt-dev pybind11-dev glslc glslang-tools vulkan-tools
          cmake ninja-build g++ python3 python3-venv python3-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages: all ${#PACKAGES[@]} installed"
else
  say "Debian packages: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo      # sudo only when not root
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- 2. The virtual environment -----------------------------------------------------------------------------
if [ -x "$PY" ]; then
  say "venv: $VENV exists ($("$PY" --version))"
else
  say "venv: creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- 3. The project (editable) and its Python dependencies ------------------------------------------------
# Re-run pip only when pyproject.toml changed since the last install (its hash is kept in the venv).
STAMP="$VENV/.gpt4all-vulkan-pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && (cd / && "$PY" -c "import gpt4all, engine, gguf, numpy, jinja2, requests, tqdm, regex, threadpoolctl, vulkan, pytest, pybind11; import sys; sys.exit(not gpt4all.__file__.startswith('$ROOT/'))") 2>/dev/null; then
  say "Python packages: the project is installed editable with its dependencies"
else
  say "Python packages: pip install -e '.[test]' pybind11 (dependencies from pyproject.toml)"
  # pybind11 only to locate its CMake config for the kp build below
  "$PY" -m pip install -q -e ".[test]" pybind11
  echo "$want" > "$STAMP"
fi

# --- 4. kp (Kompute) from its sdist ----------------------------------------------------------------------
# PyPI has only kp's sdist, whose own build clones git repositories (fails offline); so build it directly
# with CMake against Debian's Vulkan, fmt and pybind11, putting the module straight into site-packages.
# tools/kp_patch.py adds a global memory barrier op, optional device features and an asynchronous
# eval_async (kp.PATCH_LEVEL 3) and the integer dot product feature (4) to kp; a kp without them is rebuilt.
if "$PY" -c "import kp, sys; kp.OpGlobalBarrier; sys.exit(getattr(kp, 'PATCH_LEVEL', 1) < 4)" 2>/dev/null; then
  say "kp: importable, patched ($("$PY" -c 'import kp, os; print(os.path.basename(kp.__file__))'))"
else
  SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  SRC="$VENV/src/kp-$KP_VERSION"
  if [ ! -f "$SRC/CMakeLists.txt" ]; then
    say "kp: fetching the kp==$KP_VERSION sdist"
    mkdir -p "$DOWNLOAD_CACHE" "$VENV/src"
    ls "$DOWNLOAD_CACHE"/kp-$KP_VERSION.tar.gz >/dev/null 2>&1 \
      || "$PY" -m pip download -q --no-deps --no-binary :all: -d "$DOWNLOAD_CACHE" "kp==$KP_VERSION"
    tar xzf "$DOWNLOAD_CACHE/kp-$KP_VERSION.tar.gz" -C "$VENV/src"
  fi
  "$PY" "$ROOT/tools/kp_patch.py" "$SRC" || exit 1
  say "kp: building with cmake + ninja into $SITE (about a minute; log in $SRC/build.log)"
  t0=$SECONDS
  if ! { cmake -S "$SRC" -B "$SRC/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
          -DKOMPUTE_OPT_USE_BUILT_IN_VULKAN_HEADER=OFF -DKOMPUTE_OPT_USE_BUILT_IN_FMT=OFF \
          -DKOMPUTE_OPT_USE_BUILT_IN_PYBIND11=OFF -DKOMPUTE_OPT_INSTALL=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
          -DKOMPUTE_OPT_DISABLE_VULKAN_VERSION_CHECK=ON -DKOMPUTE_OPT_BUILD_PYTHON=ON \
          -DKOMPUTE_OPT_LOG_LEVEL=Off -DKOMPUTE_OPT_USE_SPDLOG=Off \
          -DPYTHON_EXECUTABLE="$PY" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
          -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$SITE" \
        && ninja -C "$SRC/build"; } > "$SRC/build.log" 2>&1; then
    tail -30 "$SRC/build.log"; say "kp: build FAILED (full log: $SRC/build.log)"; exit 1
  fi
  "$PY" -c "import kp" || { say "kp: built but does not import"; exit 1; }
  say "kp: built in $((SECONDS - t0)) s"
fi

# --- 5. The oracle venv (tests only): upstream gpt4all 2.8.2 and llama-cpp-python ----------------------
# Tests compare our engine with them in a subprocess of this separate interpreter (upstream's package is also
# named `gpt4all`).  An existing oracle with both, e.g. /opt/oracle, is used as it is.
ORACLE_CHECK="import gpt4all, llama_cpp, gguf, numpy; assert gpt4all.__file__.find('site-packages') > 0"
if [ "$ORACLE" = yes ]; then
  ORACLE_PY=""
  for candidate in "${GPT4ALL_ORACLE_PYTHON:-}" /opt/oracle/bin/python "$ROOT/.venv-oracle/bin/python"; do
    if [ -n "$candidate" ] && (cd / && "$candidate" -c "$ORACLE_CHECK") 2>/dev/null; then ORACLE_PY="$candidate"; break; fi
  done
  if [ -n "$ORACLE_PY" ]; then
    say "oracle: $ORACLE_PY has upstream gpt4all and llama-cpp-python"
  else
    say "oracle: making .venv-oracle with gpt4all==$ORACLE_GPT4ALL and llama-cpp-python==$ORACLE_LLAMA_CPP"
    say "oracle: (llama-cpp-python builds from its sdist: about 4 minutes on 2 cores, once)"
    [ -x "$ROOT/.venv-oracle/bin/python" ] || "${PYTHON:-python3}" -m venv "$ROOT/.venv-oracle"
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$ROOT/.venv-oracle/bin/python" -m pip install -q \
      "gpt4all==$ORACLE_GPT4ALL" "llama-cpp-python==$ORACLE_LLAMA_CPP" gguf numpy
    ORACLE_PY="$ROOT/.venv-oracle/bin/python"
    (cd / && "$ORACLE_PY" -c "$ORACLE_CHECK") || { say "oracle: .venv-oracle does not import both"; exit 1; }
  fi
  echo "$ORACLE_PY" > "$VENV/.oracle-python"     # tools/test.sh exports it as $GPT4ALL_ORACLE_PYTHON
fi

# --- 6. Test models ------------------------------------------------------------------------------------------
case "$MODELS" in
  all)  say "models: tools/models.py (every test model)"; "$PY" tools/models.py ;;
  chat) say "models: tools/models.py --only smollm2-q4_1 (the default chat model)"; "$PY" tools/models.py --only smollm2-q4_1 ;;
  none) say "models: skipped (--models none)" ;;
  *) echo "setup.sh: --models takes all, chat or none" >&2; exit 2 ;;
esac

# --- What Vulkan sees ----------------------------------------------------------------------------------------
if command -v vulkaninfo >/dev/null; then
  say "Vulkan devices: $(vulkaninfo --summary 2>/dev/null | sed -n 's/^[[:space:]]*deviceName[[:space:]]*= //p' | paste -sd ';' -)"
fi
say "done"
