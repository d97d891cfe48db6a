#!/usr/bin/env bash
# The one script the lead runs on the NVIDIA H100 machine, from the project's root, with .devcarry/ and .whl/
# carried along:
#
#     bash tools/gpu_run.sh            # writes everything under $OUT (default ./gpu-out)
#
# In order, each step capped so the whole run ends within GPU_RUN_BUDGET_S seconds (default 530 < 9 min):
#   1. Vulkan loader + kp (source .devcarry/on-device.sh), the project's wheels into /tmp/site.
#   2. Random-weight Llama-3.2-1B and Llama-3-8B shaped Q4_0 files (tools/random_gguf.py) in $BENCH_CACHE.
#   3. The op harness: tests/test_ops_harness.py (correctness of every shader against NumPy on this GPU) and
#      tools/op_harness.py --perf (per-op timings), when they exist.
#   4. tools/bench.py on both files: ours on kompute vs upstream gpt4all 2.8.2 on kompute, same file, same run,
#      256-token prompt, 128 generated tokens, n_batch 128, plus a context sweep.
# Files under $OUT (at most 8): run.log (everything printed, with timestamps), bench_1b.json, bench_8b.json,
# bench.md (the markdown tables), ops_perf.txt.  Then on the dev machine:
#     python tools/plot_perf.py <files_at>/bench_*.json --title "NVIDIA H100"
#
# Knobs (environment): OUT, GPU_RUN_BUDGET_S, BENCH_CACHE, PROMPT_TOKENS (256), GEN_TOKENS (128),
# N_BATCH (128), SWEEP_1B / SWEEP_8B (context depths, "" to skip), SKIP_HARNESS=1, MODELS ("1b 8b").
set -u
export PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$((START + ${GPU_RUN_BUDGET_S:-530}))
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
BENCH_CACHE=${BENCH_CACHE:-/tmp/bench-models}
PROMPT_TOKENS=${PROMPT_TOKENS:-256}
GEN_TOKENS=${GEN_TOKENS:-128}
N_BATCH=${N_BATCH:-128}
SWEEP_1B=${SWEEP_1B-256,1024,4096}
SWEEP_8B=${SWEEP_8B-256,1024,4096}
MODELS=${MODELS:-1b 8b}
exec > >(tee -a "$OUT/run.log") 2>&1

say() { echo "[$(date +%H:%M:%S) +$(($(date +%s) - START))s] $*"; }

# step NAME CAP_SECONDS CMD...: run CMD under `timeout`, never past the deadline; its exit code is logged.
step() {
    local name=$1 cap=$2; shift 2
    local left=$((DEADLINE - $(date +%s) - 5))
    ((left < cap)) && cap=$left
    if ((cap < 10)); then say "SKIP $name: out of time"; return 124; fi
    say "BEGIN $name (cap ${cap}s): $*"
    timeout --kill-after=5 "$cap" "$@"
    local rc=$?
    say "END $name: exit $rc$([ $rc = 124 ] && echo ' (timed out)')"
    return $rc
}

say "gpu_run.sh at $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) uncommitted; OUT=$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null

# ---------------------------------------------------------------- 1. environment
say "sourcing .devcarry/on-device.sh (builds kp on a fresh machine: about a minute)"
source .devcarry/on-device.sh
rm -rf /tmp/site && python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import kp, gguf, numpy; print('kp devices:', [d.get('device_name') for d in kp.Manager().list_devices()])" ||
    say "WARNING: kp or gguf does not import"
UPSTREAM_PATH=$PWD/.whl/upstream        # upstream 2.8.2, run from another cwd by tools/bench.py

# ---------------------------------------------------------------- 2. model files
declare -A SHAPE=([1b]=llama-3.2-1b [8b]=llama-3-8b)
declare -A SWEEP=([1b]=$SWEEP_1B [8b]=$SWEEP_8B)
for m in $MODELS; do
    step "write ${SHAPE[$m]} Q4_0" 90 python3 -c "
import sys; sys.path.insert(0, 'tools'); import bench
path, _ = bench.resolve_model('${SHAPE[$m]}-q4_0', bench.Path('$BENCH_CACHE'))
print(path, path.stat().st_size / 1e9, 'GB')"
done

# ---------------------------------------------------------------- 3. op harness
if [ "${SKIP_HARNESS:-0}" != 1 ]; then
    if [ -f tests/test_ops_harness.py ]; then
        if python3 -c "import pytest" 2>/dev/null; then
            step "tests/test_ops_harness.py" 120 python3 -m pytest -q -x -p no:cacheprovider tests/test_ops_harness.py
        else
            say "SKIP tests/test_ops_harness.py: no pytest here (carry pytest, pluggy, iniconfig, packaging wheels in .whl)"
        fi
    else
        say "SKIP tests/test_ops_harness.py: not in this checkout"
    fi
    if [ -f tools/op_harness.py ]; then
        step "tools/op_harness.py --perf" 60 python3 tools/op_harness.py --perf > "$OUT/ops_perf.txt" 2>&1
        tail -40 "$OUT/ops_perf.txt"
    else
        say "SKIP tools/op_harness.py --perf: not in this checkout"
    fi
fi

# ---------------------------------------------------------------- 4. benchmarks
# Each bench.py run saves its JSON after every measured run, so a timeout still leaves what was measured.
declare -A CAP=([1b]=150 [8b]=210)
for m in $MODELS; do
    sweep_args=()
    [ -n "${SWEEP[$m]}" ] && sweep_args=(--ctx-sweep "${SWEEP[$m]}")
    step "bench ${SHAPE[$m]}" "${CAP[$m]}" python3 tools/bench.py --model "${SHAPE[$m]}-q4_0" \
        --cache-dir "$BENCH_CACHE" --device kompute --upstream --upstream-device kompute \
        --upstream-python python3 --upstream-pythonpath "$UPSTREAM_PATH" \
        --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --n-batch "$N_BATCH" "${sweep_args[@]}" \
        --anatomy --json "$OUT/bench_$m.json" --markdown "$OUT/bench_$m.md"
done
cat "$OUT"/bench_*.md > "$OUT/bench.md" 2>/dev/null && rm -f "$OUT"/bench_1b.md "$OUT"/bench_8b.md
say "done; files in $OUT:"
ls -la "$OUT"
