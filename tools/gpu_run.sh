#!/usr/bin/env bash
# The one script the lead runs on the NVIDIA H100 machine, from the project's root, with .devcarry/ and .whl/
# carried along (and .devcarry/all-MiniLM-L6-v2.F16.gguf for PART=embed):
#
#     PART=main bash tools/gpu_run.sh      # writes everything under $OUT (default ./gpu-out)
#
# A device call lasts at most 10 minutes and brings back at most 8 files, so the work comes in three parts,
# one call each; every step is capped so that the part ends within GPU_RUN_BUDGET_S seconds (default 500),
# and a step that would start too late is skipped and says so. Each part first sources
# .devcarry/on-device.sh (Vulkan loader; builds kp in about a minute) and installs .whl/ into /tmp/site.
#   PART=main   random-weight Llama-3.2-1B and Llama-3-8B shaped Q4_0 files (tools/random_gguf.py) in
#               $BENCH_CACHE; tools/bench.py, ours on kompute vs upstream gpt4all 2.8.2 on kompute, same
#               file, same run (256-token prompt, 128 generated tokens, n_batch 128, --anatomy); the op
#               harness (tests/test_ops_harness.py) and greedy Vulkan-vs-NumPy generation on the 1B shape
#               (tests/test_vulkan_random_model.py); the barrier scheme A/B (tools/kp_patch.py's global
#               barriers vs stock kp's: dispatch costs and end to end); MAIN_SWEEP="512,4096" adds the
#               context sweep.
#   PART=speed  tools/bench_kernels.py: decode mat-vec v1 vs v2 at both shapes and v2's rows x threads sweep;
#               ours end to end with GPT4ALL_MATVEC=v1 (the default is v2); the context sweep
#               (generation with 512 / 1024 / 4096 tokens in the cache, ours vs upstream).
#   PART=tune   ours alone end to end for each GPT4ALL_MATVEC in TUNE_MATVEC ("v2:4x64 v2:4x128 v2:2x64"; "" for
#               none), with GPT4ALL_MATVEC_LANES=0 when TUNE_NO_LANES is set, and with each VAR=value of TUNE_ENV.
#   PART=check  the op harness (HARNESS_K: a pytest -k filter) and ours alone on each model (--anatomy): a short call.
#   PART=embed  tools/bench_embed.py: Embed4All vs upstream's on MiniLM F16 and on nomic-embed-text-v1.5's
#               shape, 2048-row passes; tools/op_harness.py --perf.
#   PART=stats  tools/shader_stats.py: registers, shared memory etc. of every decode pipeline (STATS_SHADERS adds
#               "shader:spec" variants).
#   PART=splits ours alone, generation at depths SPLITS_SWEEP ("512,4096") for each GPT4ALL_ATTENTION_SPLITS
#               in SPLITS ("16 64").
#   PART=profile tools/profile_decode.py (GPU time of every decode dispatch) for each GPT4ALL_MATVEC in
#               PROFILE_MATVEC ("default"), then tools/bench_kernels.py on the Q4_0 mat-vecs (PROFILE_KERNELS=""
#               skips it; PROFILE_KERNEL_MATVEC picks the kernels, default the backend's); PROFILE_ENV="VAR=val ..."
#               profiles decode again under each setting, PROFILE_PROMPT_ENV="VAR=val ..." the prompt program
#               (N_BATCH rows).  CHECK_CAP: seconds for each of PART=check's runs (45).
# PART may name several parts ("main splits"): they run in order in one call (one machine start, one kp build).
# Files under $OUT: run.log (everything printed, with timestamps, appended across parts), bench_{1b,8b}.json,
# ctx_{1b,8b}.json, bench.md (the markdown tables of the part), raw-$PART.tar.gz (every other result:
# kernel JSON, profiles, embeddings, per-op timings). Then, on the dev machine:
#     python tools/plot_perf.py <files_at>/*.json --title "NVIDIA H100"
#
# Knobs (environment): PART (main), OUT, GPU_RUN_BUDGET_S, BENCH_CACHE, PROMPT_TOKENS (256),
# GEN_TOKENS (128), N_BATCH (128), SWEEP ("512,1024,4096"; "" skips the sweep), MODELS ("1b 8b"; "tiny"
# for a dry run that works on lavapipe with UPSTREAM_DEVICE=cpu), UPSTREAM_DEVICE (kompute), SKIP_HARNESS=1,
# SKIP_BARRIER_AB=1 (PART=main without the barrier A/B), MAIN_SWEEP, SPLITS, SPLITS_SWEEP, CLOCK_LOG (1: nvidia-smi
# logs clocks, power state and load every 200 ms to clocks.csv in the archive; 0: not).
set -u
export PYTHONUNBUFFERED=1
START=$(date +%s)
DEADLINE=$((START + ${GPU_RUN_BUDGET_S:-500}))
OUT=${OUT:-$PWD/gpu-out}
PART=${PART:-main}
RAW=$OUT/raw-${PART// /-}     # archived at the end: $OUT brings back at most 8 files
mkdir -p "$OUT" "$RAW"
BENCH_CACHE=${BENCH_CACHE:-/tmp/bench-models}
PROMPT_TOKENS=${PROMPT_TOKENS:-256}
GEN_TOKENS=${GEN_TOKENS:-128}
N_BATCH=${N_BATCH:-128}
SWEEP=${SWEEP-512,1024,4096}
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

# ours_step NAME CAP TAG M [ARGS...]: ours alone (no upstream) on model M (1b, 8b, tiny), the main
# prompt/generation lengths, JSON + markdown as $RAW/TAG.{json,md}; the environment picks the variant.
ours_step() {
    local name=$1 cap=$2 tag=$3 m=$4; shift 4
    step "$name" "$cap" python3 tools/bench.py --cache-dir "$BENCH_CACHE" --device kompute \
        --model "${SHAPE[$m]}-q4_0" --n-batch "$N_BATCH" --prompt-tokens "$PROMPT_TOKENS" \
        --gen-tokens "$GEN_TOKENS" --json "$RAW/$tag.json" --markdown "$RAW/$tag.md" "$@"
}

# context_sweep DEPTHS: generation after prompts of each depth, ours vs upstream, one run per model.
context_sweep() {
    for m in $MODELS; do
        bench_step "context sweep ${SHAPE[$m]}" 120 "ctx_$m.json" --model "${SHAPE[$m]}-q4_0" \
            --skip-main --ctx-sweep "$1" --sweep-gen-tokens 32
    done
}

setup() {
    say "gpu_run.sh PART=$PART at $(git rev-parse --short HEAD 2>/dev/null) ($(git status --porcelain 2>/dev/null | wc -l) paths differ from it); OUT=$OUT"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null

    if ! command -v nvidia-smi >/dev/null; then
        say "no nvidia-smi: a dry run in this machine's own environment (no loader unpacked, nothing installed)"
        export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
        return 0
    fi
    # the carried kp sdist gets tools/kp_patch.py (kp.OpGlobalBarrier) before on-device.sh builds it; this
    # is the machine's copy of the tree, so the dev machine's .devcarry/ stays as prepare.sh made it
    if [ ! -f /tmp/kpout/kp.cpython-*.so ]; then
        (cd /tmp && rm -rf kp-patch && mkdir kp-patch && tar xzf "$OLDPWD/.devcarry/kp-0.9.0.tar.gz" -C kp-patch &&
         python3 "$OLDPWD/tools/kp_patch.py" kp-patch/kp-0.9.0 &&
         tar czf "$OLDPWD/.devcarry/kp-0.9.0.tar.gz" -C kp-patch kp-0.9.0) || say "WARNING: kp_patch failed: stock kp"
    fi
    say "sourcing .devcarry/on-device.sh (builds kp on a fresh machine: about a minute)"
    source .devcarry/on-device.sh
    python3 -c "import kp; print('kp patched (tools/kp_patch.py):', hasattr(kp, 'OpGlobalBarrier'))"
    rm -rf /tmp/site && python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    python3 -c "import kp; print('kp devices:', [d['device_name'] for d in kp.Manager().list_devices()])" ||
        say "WARNING: kp does not import"
    python3 -c "import vulkan" 2>/dev/null ||
        say "WARNING: no pyvulkan ('import vulkan'): engine/backends/vulkan_device.py needs it (carry the vulkan, cffi and pycparser wheels in .whl)"
    # what the engine sees: subgroup size, f16 cooperative matrix shapes (the coopmat GEMM), kp's patch level
    python3 -c "import kp; from engine.backends.vulkan_device import list_gpus; from engine.backends.vulkan_ops import _coopmat_usable
for d in list_gpus(): print('device:', d.name, 'subgroup', d.subgroup_size, 'coopmat f16 shapes', d.coopmat_shapes, 'coopmat GEMM usable', _coopmat_usable(d), 'kp PATCH_LEVEL', getattr(kp, 'PATCH_LEVEL', 1))" ||
        say "WARNING: the device probe failed"
}

write_models() {
    for m in $MODELS; do
        step "write ${SHAPE[$m]} Q4_0" 90 python3 -c "
import sys; sys.path.insert(0, 'tools'); import bench
path, _ = bench.resolve_model('${SHAPE[$m]}-q4_0', bench.Path('$BENCH_CACHE'))
print(path, round(path.stat().st_size / 1e9, 3), 'GB')"
    done
}

have_pytest() {
    python3 -c "import pytest" 2>/dev/null && return 0
    say "SKIP $1: no pytest here (carry pytest, pluggy, iniconfig, packaging wheels in .whl)"; return 1
}

# PART=main: the numbers first (both shapes, ours vs upstream), then correctness on this GPU, then
# the barrier A/B.
part_main() {
    declare -A CAP=([1b]=120 [8b]=150)
    for m in $MODELS; do
        bench_step "bench ${SHAPE[$m]}" "${CAP[$m]:-120}" "bench_$m.json" --model "${SHAPE[$m]}-q4_0" \
            --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --anatomy
    done
    if [ "${SKIP_HARNESS:-0}" != 1 ] && have_pytest tests; then
        step "tests/test_ops_harness.py" 100 python3 -m pytest -q -x -p no:cacheprovider tests/test_ops_harness.py
        # end-to-end generation, Vulkan vs NumPy, on a random-weight file of the real Llama-3.2-1B shape
        GPT4ALL_RANDOM_SHAPE=llama-3.2-1b step "tests/test_vulkan_random_model.py (llama-3.2-1b)" 120 \
            python3 -m pytest -q -s -p no:cacheprovider tests/test_vulkan_random_model.py
    fi
    # the barrier scheme (tools/kp_patch.py): kernel costs and end to end, patched kp's global barriers vs
    # the stock-kp scheme (GPT4ALL_KP_BARRIERS=kp), same machine, same run
    if [ "${SKIP_BARRIER_AB:-0}" != 1 ]; then
        for mode in global kp; do
            GPT4ALL_KP_BARRIERS=$mode step "bench_kernels dispatch + q4_0, $mode barriers" 40 python3 tools/bench_kernels.py \
                --device nvidia --shape llama-3.2-1b --reps 50 --ops dispatch,matmul_q4_0,rms_norm,rope \
                --json "$RAW/kernels-barriers-$mode.json"
        done
        for m in $MODELS; do
            GPT4ALL_KP_BARRIERS=kp ours_step "ours with stock-kp barriers, ${SHAPE[$m]}" 60 "barriers_kp_$m" "$m" --anatomy
        done
    fi
    [ -n "${MAIN_SWEEP:-}" ] && context_sweep "$MAIN_SWEEP"
}

# PART=speed: kernel-level A/B of the decode mat-vec (v1 vs v2, v2's shape), the same A/B end to end, and the
# context sweep (its 512-token prompt row is the prompt-processing figure, "pp512").
part_speed() {
    for m in $MODELS; do
        step "bench_kernels ${SHAPE[$m]} v1,v2" 60 python3 tools/bench_kernels.py --device nvidia --shape "${SHAPE[$m]}" \
            --reps 50 --matvec v1,v2 --json "$RAW/kernels-${SHAPE[$m]}.json"
    done
    [[ " $MODELS " == *" 8b "* ]] && step "bench_kernels: tune v2 on llama-3-8b" 60 python3 tools/bench_kernels.py \
        --device nvidia --shape llama-3-8b --reps 50 --ops q4_0,q6_k:lm_head \
        --matvec v2:1x64,v2:2x64,v2:4x64,v2:8x64,v2:2x128,v2:4x128,v2:8x128,v2:4x256 --json "$RAW/matvec-tune-8b.json"
    for m in $MODELS; do
        GPT4ALL_MATVEC=v1 ours_step "ours with GPT4ALL_MATVEC=v1, ${SHAPE[$m]}" 60 "matvec_v1_$m" "$m" --anatomy
    done
    [ -n "$SWEEP" ] && context_sweep "$SWEEP"
}

# PART=tune: ours alone, end to end, for each decode mat-vec shape in TUNE_MATVEC (GPT4ALL_MATVEC values),
# both models; short runs (PROMPT_TOKENS / GEN_TOKENS apply) so that a few minutes of device time suffice.
part_tune() {
    for m in $MODELS; do
        for mv in ${TUNE_MATVEC-v2:4x64 v2:4x128 v2:2x64}; do
            GPT4ALL_MATVEC=$mv ours_step "ours with GPT4ALL_MATVEC=$mv, ${SHAPE[$m]}" "${TUNE_CAP:-45}" "tune_${mv//[:\/]/_}_$m" "$m"
        done
        [ -n "${TUNE_NO_LANES:-}" ] && GPT4ALL_MATVEC_LANES=0 ours_step "ours with GPT4ALL_MATVEC_LANES=0, ${SHAPE[$m]}" 45 \
            "tune_no_lanes_$m" "$m"
        # A/B switches, e.g. TUNE_ENV="GPT4ALL_ROPE_EPILOGUE=0 GPT4ALL_SAMPLE=v1" (commas join variables into one setting)
        for kv in ${TUNE_ENV:-}; do
            # shellcheck disable=SC2086  # ${kv//,/ } splits a setting into its assignments
            (export ${kv//,/ }; ours_step "ours with $kv, ${SHAPE[$m]}" "${TUNE_CAP:-45}" "tune_${kv//[=:\/,]/_}_$m" "$m")
        done
    done
}

# PART=check: the shortest useful call (a few minutes of device time): the op harness, then ours alone
# end to end with --anatomy on each model in MODELS.
part_check() {
    # HARNESS_K: a pytest -k expression picking some of the harness's cases (e.g. "tiled_gemm or coopmat")
    have_pytest tests && step "tests/test_ops_harness.py ${HARNESS_K-}" "${HARNESS_CAP:-60}" python3 -m pytest -q -x -p no:cacheprovider \
        tests/test_ops_harness.py ${HARNESS_K:+-k "$HARNESS_K"}
    for m in $MODELS; do
        ours_step "ours, ${SHAPE[$m]}" "${CHECK_CAP:-45}" "check_$m" "$m" --anatomy
    done
}

# PART=embed: Embed4All's speed beside upstream's on the same GGUF (carried MiniLM F16; nomic-embed-text-v1.5's
# shape written here with random weights), the pass-size knob, then per-op timings of the harness.
part_embed() {
    local minilm=.devcarry/all-MiniLM-L6-v2.F16.gguf
    local up=(--upstream-python python3 --upstream-pythonpath "$PWD/.whl/upstream")
    if [ -f "$minilm" ]; then
        step "embed MiniLM F16" 120 python3 tools/bench_embed.py --model "$minilm" --device kompute \
            --n-texts 512 "${up[@]}" --json "$RAW/embed_minilm.json"
        step "embed nomic-embed-text-v1.5 shape" 150 python3 tools/bench_embed.py --model "$minilm" \
            --random-shape nomic-embed-text-v1.5 --device kompute --n-texts 512 "${up[@]}" --json "$RAW/embed_nomic.json"
        GPT4ALL_EMBED_PASS_TOKENS=2048 step "embed MiniLM F16, 2048-row passes" 90 python3 tools/bench_embed.py \
            --model "$minilm" --device kompute --n-texts 512 --skip-upstream --json "$RAW/embed_minilm_2048.json"
    else
        say "SKIP embeddings: $minilm not carried (cp ~/.cache/gpt4all-vulkan/test-models/all-MiniLM-L6-v2.F16.gguf .devcarry/)"
    fi
    if [ "${SKIP_HARNESS:-0}" != 1 ]; then
        step "tools/op_harness.py --perf" 90 python3 tools/op_harness.py --perf > "$RAW/ops_perf.txt" 2>&1
        tail -40 "$RAW/ops_perf.txt"
    fi
}

# PART=splits: ours alone, generation after 512- and 4096-token prompts, for each GPT4ALL_ATTENTION_SPLITS
# value in SPLITS (key slices per head of a decode step's attention; the default is vulkan_ops.ATTENTION_SPLITS).
part_splits() {
    for m in $MODELS; do
        for n in ${SPLITS:-16 64}; do
            GPT4ALL_ATTENTION_SPLITS=$n ours_step "ours, attention splits $n, ${SHAPE[$m]}" 90 "splits_${n}_$m" "$m" \
                --skip-main --ctx-sweep "${SPLITS_SWEEP:-512,4096}" --sweep-gen-tokens 32
        done
    done
}

# PART=stats: tools/shader_stats.py, what the driver made of every pipeline of each model's decode step (registers,
# shared memory, ...), then of each "shader:spec" in STATS_SHADERS (e.g. "matmul_vec_q4_0_tile_sg:128,8,1").
part_stats() {
    for m in $MODELS; do
        step "shader stats ${SHAPE[$m]}" 120 python3 tools/shader_stats.py --model "${SHAPE[$m]}-q4_0" \
            --cache-dir "$BENCH_CACHE" --device kompute
    done
    for s in ${STATS_SHADERS:-}; do
        step "shader stats $s" 30 python3 tools/shader_stats.py "${s%%:*}" --spec "${s#*:}"
    done
}

# PART=profile: where each decode step's GPU time goes (tools/profile_decode.py: GPU timestamps around every
# dispatch, folded over layers, GB/s per matmul), for each GPT4ALL_MATVEC in PROFILE_MATVEC (default: the
# backend's default only; "default" names it), then the Q4_0 mat-vec kernels alone (tools/bench_kernels.py).
part_profile() {
    for m in $MODELS; do
        for mv in ${PROFILE_MATVEC-default}; do  # PROFILE_MATVEC="": no decode profile
            local env=() tag=${mv//[:\/]/_}
            [ "$mv" != default ] && env=(GPT4ALL_MATVEC="$mv")
            step "profile ${SHAPE[$m]} matvec=$mv" "${PROFILE_CAP:-60}" env "${env[@]}" python3 tools/profile_decode.py "${SHAPE[$m]}-q4_0" \
                --cache-dir "$BENCH_CACHE" --depth "$PROMPT_TOKENS" --json "$RAW/profile_${m}_$tag.json"
        done
        # PROFILE_ENV="VAR=val VAR=val,VAR2=val ...": the decode profile again under each setting (commas join
        # several variables into one setting), e.g. an A/B SPIR-V set: GPT4ALL_SPV_DIR=ab-spv/x
        for kv in ${PROFILE_ENV-}; do
            # shellcheck disable=SC2086  # ${kv//,/ } splits a setting into its assignments
            step "profile ${SHAPE[$m]} $kv" "${PROFILE_CAP:-60}" env ${kv//,/ } python3 tools/profile_decode.py "${SHAPE[$m]}-q4_0" \
                --cache-dir "$BENCH_CACHE" --depth "$PROMPT_TOKENS" --json "$RAW/profile_${m}_${kv//[=:\/,]/_}.json"
        done
        # PROFILE_PROMPT_ENV="VAR=val VAR=val,VAR2=val ...": the prompt program (a batch of N_BATCH rows) under each
        # setting (commas join several variables into one setting)
        for kv in ${PROFILE_PROMPT_ENV-}; do
            # shellcheck disable=SC2086  # ${kv//,/ } splits a setting into its assignments
            step "profile prompt ${SHAPE[$m]} $kv" "${PROFILE_CAP:-60}" env ${kv//,/ } python3 tools/profile_decode.py "${SHAPE[$m]}-q4_0" \
                --cache-dir "$BENCH_CACHE" --depth "$PROMPT_TOKENS" --prompt-batch "$N_BATCH" \
                --json "$RAW/profile_prompt_${m}_${kv//[=:\/,]/_}.json"
        done
    done
    # PROFILE_KERNEL_ENV="VAR=val VAR=val,VAR2=val ...": the kernels again under each setting (commas join variables)
    [ -n "${PROFILE_KERNELS-1}" ] && for m in $MODELS; do
        for kv in default ${PROFILE_KERNEL_ENV-}; do
            local kenv=() ktag=""
            # shellcheck disable=SC2206  # ${kv//,/ } splits a setting into its assignments
            [ "$kv" != default ] && kenv=(${kv//,/ }) && ktag="-${kv//[=:\/,]/_}"
            step "bench_kernels q4_0 ${SHAPE[$m]} $kv" "${PROFILE_KERNEL_CAP:-100}" env "${kenv[@]}" python3 tools/bench_kernels.py \
                --device nvidia --shape "${SHAPE[$m]}" --reps 50 --ops "${PROFILE_KERNEL_OPS:-matmul_q4_0,dispatch,attention}" \
                --matvec "${PROFILE_KERNEL_MATVEC:-}" --json "$RAW/kernels-q4_0-$m$ktag.json"
        done
    done
}

main() {
    setup
    # the GPU's clocks, power state and load every 200 ms into clocks.csv (read-only queries): kernel timings
    # swing by 2-4x with the SM clock, so each figure can be matched with the clock it ran at
    local clock_pid=
    if command -v nvidia-smi >/dev/null && [ "${CLOCK_LOG:-1}" = 1 ]; then
        nvidia-smi --query-gpu=timestamp,pstate,clocks.sm,clocks.mem,utilization.gpu,power.draw \
            --format=csv -lms 200 > "$RAW/clocks.csv" 2>&1 &
        clock_pid=$!
    fi
    for part in $PART; do            # several parts in one call save a machine start and kp build each
        case $part in
            main)  write_models; part_main ;;
            speed) write_models; part_speed ;;
            embed) part_embed ;;
            tune)  write_models; part_tune ;;
            check) write_models; part_check ;;
            splits) write_models; part_splits ;;
            profile) write_models; part_profile ;;
            stats) write_models; part_stats ;;
            *) say "unknown part $part of PART=$PART (main, speed, embed, tune, check, splits, profile, stats)"; return 2 ;;
        esac
    done
    [ -n "$clock_pid" ] && kill "$clock_pid" 2>/dev/null
    cat "$OUT"/bench_*.md "$OUT"/ctx_*.md "$RAW"/*.md > "$OUT/bench.md" 2>/dev/null
    rm -f "$OUT"/bench_*.md "$OUT"/ctx_*.md
    cat "$OUT/bench.md" 2>/dev/null
    # $OUT returns at most 8 files: everything else travels as one archive
    tar czf "$OUT/raw-${PART// /-}.tar.gz" -C "$RAW" . && rm -rf "$RAW"
    say "done; files in $OUT:"
    ls -la "$OUT"
    tar tzvf "$OUT/raw-${PART// /-}.tar.gz"
}

# Everything printed goes to the terminal and to run.log; the pipe ends when main does, so the log is complete.
main 2>&1 | tee -a "$OUT/run.log"
