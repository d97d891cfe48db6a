#version 450
// Ops.sample: one token id from a row of logits, on the GPU, with engine/sampling.py's chain:
//   repeat penalty -> greedy (temp <= 0 or top_k == 1) -> top-k -> top-p -> min-p -> temperature
//   -> softmax -> the first token whose cumulative probability exceeds the slot's uniform.
// One workgroup does it all (v1, GPT4ALL_SAMPLE=v1):
//   1. penalised logits into `scratch` (each distinct recent token once);
//   2. greedy: an arg-max reduction (lowest id on ties, like np.argmax);
//   3. otherwise the M = min(k, MAX_CAND) largest logits are found by a radix select of the M-th
//      largest value (up to 4 histogram passes over the vocabulary, no global sort), gathered into
//      shared memory and bitonic-sorted by (logit desc, id asc) -- NumPy's stable order;
//   4. thread 0 walks the short sorted list for top-p, min-p and the draw.
// -DSLICES (v2, the default) is the second of two dispatches: sample_partial.comp's workgroups have
// done the vocabulary-wide work slice by slice, and this single workgroup finishes from their results:
// 2. reduces their arg-maxes; 3. selects the M largest among their candidates (top-k <= the candidate
// budget) or, for a larger top-k, among the penalised logits they left in `scratch`, exactly as v1.
// The workgroup size is a specialization constant (vulkan_ops.VulkanOps.sample_wg): a GPU runs this
// single workgroup on one compute unit, so it gets as many threads as the device allows (up to 1024)
// to keep enough loads in flight over the vocabulary; a CPU device keeps 128.  It must be a power of two (>= 32: see VulkanOps).
// When k > MAX_CAND (top-k off), top-p's probabilities still use the softmax over all k
// candidates; only a top-p set longer than MAX_CAND tokens is cut to MAX_CAND.
#define WG_SPEC
#include "common.glsl"
#include "sampling_buf.glsl"
#include "sample_select.glsl"

#define MAX_CAND 512
#define CAP 1024            // gathered candidates (the M largest plus ties at the boundary)

#ifdef SLICES
layout(std430, binding = 2) readonly buffer SC { float scratch[]; };  // [n_vocab] penalised logits (top-k > cands)
layout(std430, binding = 3) readonly buffer P { uint parts[]; };      // sample_partial.comp's results (layout there)
layout(std430, binding = 4) buffer T { int out_tokens[]; };           // [slots, 1]

layout(push_constant) uniform PC { uint n_vocab; uint slot; uint slice; uint cands; } pc;
#else
layout(std430, binding = 2) readonly buffer L { float logits[]; };    // [>= 1, n_vocab]: row 0
layout(std430, binding = 3) readonly buffer H { int history[]; };     // [cap, 1], newest at n_hist - 1
layout(std430, binding = 4) buffer SC { float scratch[]; };           // [n_vocab] penalised logits
layout(std430, binding = 5) buffer T { int out_tokens[]; };           // [slots, 1]

layout(push_constant) uniform PC { uint n_vocab; uint slot; } pc;
#endif

shared uint cand_key[CAP];
shared uint cand_id[CAP];
shared uint n_cand;
shared uint best_id[WG_SIZE];
shared float walk_p[MAX_CAND], walk_pt[MAX_CAND];    // step 4's exponentials

// What steps 3 and 4 select from: entry i < n_src has key src_key(i) and token id src_id(i).  v1: the
// penalised logits in scratch.  SLICES: the slices' candidates in parts, or scratch as v1.
uint n_src;
#ifdef SLICES
bool from_parts;
uint keys_at, ids_at;
uint src_key(uint i) { return from_parts ? parts[keys_at + i] : okey(scratch[i]); }
uint src_id(uint i) { return from_parts ? parts[ids_at + i] : i; }
#else
uint src_key(uint i) { return okey(scratch[i]); }
uint src_id(uint i) { return i; }
#endif

// A threshold T with count(key >= T) = count(key >= the k-th largest key), by radix select: up to four
// passes over the entries, each a shared-memory histogram of the next 8 bits of the keys that match the
// prefix found so far, then the bin holding the k-th key (pick_bin, sample_select.glsl).  When that bin's
// keys are all among the k largest, its lowest possible key is such a threshold and the passes stop.

uint kth_key(uint k) {
    uint tid = gl_LocalInvocationID.x;
    uint prefix = 0u, mask = 0u, need = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (uint i = tid; i < 256u; i += WG_SIZE) hist[i] = 0u;
        barrier();
        for (uint i = tid; i < n_src; i += WG_SIZE) {
            uint key = src_key(i);
            if ((key & mask) == prefix) atomicAdd(hist[(key >> uint(shift)) & 255u], 1u);
        }
        barrier();
        pick_bin(need);
        prefix |= sel_bin << uint(shift);
        mask |= 255u << uint(shift);
        need -= sel_above;
        if (need == sel_count) break;
    }
    return prefix;
}

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint nv = pc.n_vocab;
    n_src = nv;
    float temp = samp[SAMPLE_TEMP];
    int top_k = int(samp[SAMPLE_TOP_K]);
    bool greedy = temp <= 0.0 || top_k == 1;
    uint K = (top_k <= 0 || uint(top_k) >= nv) ? nv : uint(top_k);

#ifdef SLICES
    uint G = (nv + pc.slice - 1u) / pc.slice;
    // 1. the repeat penalty: applied by sample_partial.comp
#else
    // 1. repeat penalty
    for (uint i = tid; i < nv; i += WG_SIZE) scratch[i] = logits[i];
    memoryBarrierBuffer(); barrier();
    float rp = samp[SAMPLE_REPEAT_PENALTY];
    uint n_hist = STEP_N_HISTORY;
    uint last_n = uint(max(samp[SAMPLE_REPEAT_LAST_N], 0.0));
    uint win = min(last_n, n_hist);
    if (rp != 1.0 && win > 0u) {
        uint start = n_hist - win;
        for (uint i = start + tid; i < n_hist; i += WG_SIZE) {
            int tok = history[i];
            bool first = tok >= 0 && uint(tok) < nv;
            for (uint j = start; j < i && first; j++) first = history[j] != tok;
            if (first) {                                   // each distinct token once
                float v = scratch[tok];
                scratch[tok] = v > 0.0 ? v / rp : v * rp;
            }
        }
    }
    memoryBarrierBuffer(); barrier();
#endif

    // 2. greedy: arg-max, lowest id among equal maxima
    if (greedy) {
        float bv = -1.0 / 0.0; uint bi = 0xFFFFFFFFu;
#ifdef SLICES
        for (uint s = tid; s < G; s += WG_SIZE) {          // the slices' arg-maxes; slice s's ids are below s + 1's
            float v = uintBitsToFloat(parts[s]);
            if (v > bv || bi == 0xFFFFFFFFu) { bv = v; bi = parts[G + s]; }
        }
#else
        for (uint i = tid; i < nv; i += WG_SIZE) {
            float v = scratch[i];
            if (v > bv || bi == 0xFFFFFFFFu) { bv = v; bi = i; }   // i rises: first max kept
        }
#endif
        red_buf[tid] = bv; best_id[tid] = bi;
        barrier();
        for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
            if (tid < s) {
                float ov = red_buf[tid + s]; uint oi = best_id[tid + s];
                if (ov > red_buf[tid] || (ov == red_buf[tid] && oi < best_id[tid])) {
                    red_buf[tid] = ov; best_id[tid] = oi;
                }
            }
            barrier();
        }
        if (tid == 0u) out_tokens[pc.slot] = int(best_id[0]);
        return;
    }

    // 3. the M largest, gathered and sorted
    uint M = min(K, uint(MAX_CAND));
#ifdef SLICES
    // top-k within the budget: the K largest are among the slices' K candidates each
    from_parts = K <= pc.cands;
    if (from_parts) { n_src = G * K; keys_at = 2u * G; ids_at = 2u * G + G * pc.cands; }
#endif
    uint TM = kth_key(M);
    if (tid == 0u) n_cand = 0u;
    barrier();
    for (uint i = tid; i < n_src; i += WG_SIZE) {
        uint k = src_key(i);
        if (k >= TM) {
            uint slot = atomicAdd(n_cand, 1u);
            if (slot < CAP) { cand_key[slot] = k; cand_id[slot] = src_id(i); }
        }
    }
    barrier();
    uint nc = min(n_cand, uint(CAP));
    uint P = 2u;                                  // sort only the next power of two >= nc (64 for top-k 40)
    while (P < nc) P <<= 1;
    for (uint i = nc + tid; i < P; i += WG_SIZE) { cand_key[i] = 0u; cand_id[i] = 0xFFFFFFFFu; }   // sort last
    barrier();
    // bitonic sort, descending by key, ascending by id on equal keys
    for (uint size = 2u; size <= P; size <<= 1) {
        for (uint stride = size >> 1; stride > 0u; stride >>= 1) {
            for (uint i = tid; i < P; i += WG_SIZE) {
                uint j = i ^ stride;
                if (j > i) {
                    bool desc = (i & size) == 0u;
                    uint ki = cand_key[i], kj = cand_key[j], ii = cand_id[i], ij = cand_id[j];
                    bool i_first = ki > kj || (ki == kj && ii < ij);   // i belongs before j
                    if (i_first != desc) {
                        cand_key[i] = kj; cand_key[j] = ki; cand_id[i] = ij; cand_id[j] = ii;
                    }
                }
            }
            barrier();
        }
    }
    float x0 = unkey(cand_key[0]);
    // softmax normaliser of the top-k survivors (all K of them, even past MAX_CAND; SLICES: from scratch,
    // as K > M means K > the candidate budget)
    float z = 0.0;
    if (K > M) {
        uint TK = K >= nv ? 0u : kth_key(K);
        for (uint i = tid; i < nv; i += WG_SIZE) {
            float v = scratch[i];
            if (okey(v) >= TK) z += exp(v - x0);
        }
        z = wg_sum(z);
    }

    // 4. top-p, min-p, temperature and the draw on the short sorted list.  walk_p[i] = exp(x_i - x0) and
    // walk_pt[i] = exp((x_i - x0) / temp) are computed in parallel first, so thread 0's walk is adds and
    // compares, not a chain of M exponentials
    for (uint i = tid; i < M; i += WG_SIZE) {
        float x = unkey(cand_key[i]) - x0;
        walk_p[i] = exp(x);
        walk_pt[i] = exp(x / temp);
    }
    barrier();
    if (tid == 0u) {
        if (K <= M) { for (uint i = 0; i < M; i++) z += walk_p[i]; }
        uint keep = M;
        float top_p = samp[SAMPLE_TOP_P];
        if (top_p < 1.0) {
            float cum = 0.0;
            for (uint i = 0; i < M; i++) {
                cum += walk_p[i] / z;
                if (cum >= top_p) { keep = i + 1u; break; }
            }
        }
        float min_p = samp[SAMPLE_MIN_P];
        if (min_p > 0.0) {
            float floor_ = x0 + log(min_p);
            uint i = 1u;
            while (i < keep && unkey(cand_key[i]) >= floor_) i++;
            keep = i;
        }
        float s = 0.0;
        for (uint i = 0; i < keep; i++) s += walk_pt[i];
        float u = samp[SAMPLE_UNIFORMS + pc.slot];
        float cum = 0.0;
        uint choice = keep - 1u;
        for (uint i = 0; i < keep; i++) {
            cum += walk_pt[i] / s;
            if (cum > u) { choice = i; break; }
        }
        out_tokens[pc.slot] = int(cand_id[choice]);
    }
}
