#!/usr/bin/env bash
# The one script the lead runs on the NVIDIA H100 machine, from the project's root, with .devcarry/ and .whl/
# carried along:
#
#     bash tools/gpu_run.sh            # writes everything under $OUT (default ./gpu-out)
#
# Steps, each capped so that the whole run ends within GPU_RUN_BUDGET_S seconds (default 530, under 9 min);
# a step that would start too late is skipped and says so:
#   1. Vulkan loader + kp (source .devcarry/on-device.sh), the project's wheels into /tmp/site.
#   2. Random-weight Llama-3.2-1B and Llama-3-8B shaped Q4_0 files (tools/random_gguf.py) in $BENCH_CACHE.
#   3. tests/test_ops_harness.py: every shader against the NumPy reference on this GPU (needs pytest), and
#      tests/test_vulkan_random_model.py: greedy generation, Vulkan vs NumPy, on random tiny and 1B files.
#   4. tools/bench.py, ours on kompute vs upstream gpt4all 2.8.2 on kompute, same file, same run:
#      256-token prompt, 128 generated tokens, n_batch 128, with --anatomy (dispatches, submissions per token).
#   5. The context sweep (generation speed with 512 / 1024 / 4096 tokens in the cache; its 512-token prompt
#      is the prompt-processing target, "pp512"), a separate run per
#      model so the main numbers exist even if the sweep runs out of time.
#   6. Ours alone on the 1B shape with GPT4ALL_DECODE_STEPS=$ALT_STEPS (16): fewer submissions per token.
#   7. tools/op_harness.py --perf (per-op timings), with whatever time is left.
# Files under $OUT (at most 8): run.log (everything printed, with timestamps), bench_1b.json, bench_8b.json,
# ctx_1b.json, ctx_8b.json, steps_1b.json, bench.md (all markdown tables), ops_perf.txt.  Then, on the dev
# machine:
#     python tools/plot_perf.py <files_at>/*.json --title "NVIDIA H100"
#
# Knobs (environment): OUT, GPU_RUN_BUDGET_S, BENCH_CACHE, PROMPT_TOKENS (256), GEN_TOKENS (128),
# N_BATCH (128), SWEEP ("512,1024,4096"; "" skips step 5), ALT_STEPS (16; "" skips step 6),
# MODELS ("1b 8b"; "tiny" for a dry run),
# UPSTREAM_DEVICE (kompute), SKIP_HARNESS=1.
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
SWEEP=${SWEEP-512,1024,4096}
ALT_STEPS=${ALT_STEPS-16}
MODELS=${MODELS:-1b 8b}
UPSTREAM_DEVICE=${UPSTREAM_DEVICE:-kompute}
declare -A SHAPE=([1b]=llama-3.2-1b [8b]=llama-3-8b [tiny]=tiny)     # tiny: a quick dry run of this script

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

# bench_step NAME CAP JSON ARGS...: tools/bench.py ours-vs-upstream on kompute, JSON + markdown to $OUT.
bench_step() {
    local name=$1 cap=$2 json=$3; shift 3
    step "$name" "$cap" python3 tools/bench.py --cache-dir "$BENCH_CACHE" --device kompute \
        --upstream --upstream-device "$UPSTREAM_DEVICE" --upstream-python python3 --upstream-pythonpath "$PWD/.whl/upstream" \
        --n-batch "$N_BATCH" --json "$OUT/$json" --markdown "$OUT/${json%.json}.md" "$@"
}

main() {
    say "gpu_run.sh at $(git rev-parse --short HEAD 2>/dev/null) ($(git status --porcelain 2>/dev/null | wc -l) paths differ from it); OUT=$OUT"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null

    # ------------------------------------------------------------ 1. environment
    say "sourcing .devcarry/on-device.sh (builds kp on a fresh machine: about a minute)"
    source .devcarry/on-device.sh
    rm -rf /tmp/site && python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    python3 -c "import kp; print('kp devices:', [d['device_name'] for d in kp.Manager().list_devices()])" ||
        say "WARNING: kp does not import"
    python3 -c "import vulkan" 2>/dev/null ||
        say "WARNING: no pyvulkan ('import vulkan'): engine/backends/vulkan_device.py needs it (carry the vulkan, cffi and pycparser wheels in .whl)"

    # ------------------------------------------------------------ 2. model files
    for m in $MODELS; do
        step "write ${SHAPE[$m]} Q4_0" 90 python3 -c "
import sys; sys.path.insert(0, 'tools'); import bench
path, _ = bench.resolve_model('${SHAPE[$m]}-q4_0', bench.Path('$BENCH_CACHE'))
print(path, round(path.stat().st_size / 1e9, 3), 'GB')"
    done

    # ------------------------------------------------------------ 3. op harness: correctness
    if [ "${SKIP_HARNESS:-0}" != 1 ]; then
        if [ ! -f tests/test_ops_harness.py ]; then
            say "SKIP tests/test_ops_harness.py: not in this checkout"
        elif ! python3 -c "import pytest" 2>/dev/null; then
            say "SKIP tests/test_ops_harness.py: no pytest here (carry pytest, pluggy, iniconfig, packaging wheels in .whl)"
        else
            step "tests/test_ops_harness.py" 100 python3 -m pytest -q -x -p no:cacheprovider tests/test_ops_harness.py
            # end-to-end generation, Vulkan vs NumPy, on random-weight files written here (no model cache
            # can travel to this machine): the tiny shape, then the real Llama-3.2-1B shape
            step "tests/test_vulkan_random_model.py (tiny)" 60 python3 -m pytest -q -s -p no:cacheprovider \
                tests/test_vulkan_random_model.py
            GPT4ALL_RANDOM_SHAPE=llama-3.2-1b step "tests/test_vulkan_random_model.py (llama-3.2-1b)" 120 \
                python3 -m pytest -q -s -p no:cacheprovider tests/test_vulkan_random_model.py
        fi
    fi

    # ------------------------------------------------------------ 4. main benchmark, both models
    declare -A CAP=([1b]=120 [8b]=180)
    for m in $MODELS; do
        bench_step "bench ${SHAPE[$m]}" "${CAP[$m]:-120}" "bench_$m.json" --model "${SHAPE[$m]}-q4_0" \
            --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --anatomy
    done

    # ------------------------------------------------------------ 5. context sweep
    if [ -n "$SWEEP" ]; then
        for m in $MODELS; do
            bench_step "context sweep ${SHAPE[$m]}" 120 "ctx_$m.json" --model "${SHAPE[$m]}-q4_0" \
                --skip-main --ctx-sweep "$SWEEP" --sweep-gen-tokens 32
        done
    fi

    # ------------------------------------------------------------ 6. more decode steps per submission
    # ours alone on the 1B shape with GPT4ALL_DECODE_STEPS=$ALT_STEPS (VulkanOps' default is 4): what
    # fewer round trips per token buy (docs/performance.md, "Where the time goes", item 1).
    if [ -n "$ALT_STEPS" ] && [[ " $MODELS " == *" 1b "* ]]; then
        GPT4ALL_DECODE_STEPS=$ALT_STEPS step "decode steps $ALT_STEPS, llama-3.2-1b" 90 python3 tools/bench.py \
            --cache-dir "$BENCH_CACHE" --device kompute --model llama-3.2-1b-q4_0 --n-batch "$N_BATCH" \
            --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --anatomy \
            --json "$OUT/steps_1b.json" --markdown "$OUT/steps_1b.md"
    fi

    # ------------------------------------------------------------ 7. op harness: timings
    if [ "${SKIP_HARNESS:-0}" != 1 ]; then
        if [ -f tools/op_harness.py ]; then
            step "tools/op_harness.py --perf" 90 python3 tools/op_harness.py --perf > "$OUT/ops_perf.txt" 2>&1
            tail -40 "$OUT/ops_perf.txt"
        else
            say "SKIP tools/op_harness.py --perf: not in this checkout"
        fi
    fi

    cat "$OUT"/bench_*.md "$OUT"/ctx_*.md "$OUT"/steps_*.md > "$OUT/bench.md" 2>/dev/null
    rm -f "$OUT"/bench_*.md "$OUT"/ctx_*.md "$OUT"/steps_*.md
    cat "$OUT/bench.md" 2>/dev/null
    say "done; files in $OUT:"
    ls -la "$OUT"
}

# Everything printed goes to the terminal and to run.log; the pipe ends when main does, so the log is complete.
main 2>&1 | tee -a "$OUT/run.log"
