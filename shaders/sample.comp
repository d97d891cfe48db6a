#version 450
// Ops.sample: one token id from a row of logits, on the GPU, with engine/sampling.py's chain:
//   repeat penalty -> greedy (temp <= 0 or top_k == 1) -> top-k -> top-p -> min-p -> temperature
//   -> softmax -> the first token whose cumulative probability exceeds the slot's uniform.
// One workgroup does it all:
//   1. penalised logits into `scratch` (each distinct recent token once);
//   2. greedy: an arg-max reduction (lowest id on ties, like np.argmax);
//   3. otherwise the M = min(k, MAX_CAND) largest logits are found by a radix select of the M-th
//      largest value (4 histogram passes over the vocabulary, no global sort), gathered into
//      shared memory and bitonic-sorted by (logit desc, id asc) -- NumPy's stable order;
//   4. thread 0 walks the short sorted list for top-p, min-p and the draw.
// The workgroup size is a specialization constant (vulkan_ops.VulkanOps.sample_wg): a GPU runs this
// single workgroup on one compute unit, so it gets as many threads as the device allows (up to 1024)
// to keep enough loads in flight over the vocabulary; a CPU device keeps 128.  It must be a power of two (>= 32: see VulkanOps).
// When k > MAX_CAND (top-k off), top-p's probabilities still use the softmax over all k
// candidates; only a top-p set longer than MAX_CAND tokens is cut to MAX_CAND.
#define WG_SPEC
#include "common.glsl"
#include "sampling_buf.glsl"

#define MAX_CAND 512
#define CAP 1024            // gathered candidates (the M largest plus ties at the boundary)

layout(std430, binding = 2) readonly buffer L { float logits[]; };    // [>= 1, n_vocab]: row 0
layout(std430, binding = 3) readonly buffer H { int history[]; };     // [cap, 1], newest at n_hist - 1
layout(std430, binding = 4) buffer SC { float scratch[]; };           // [n_vocab] penalised logits
layout(std430, binding = 5) buffer T { int out_tokens[]; };           // [slots, 1]

layout(push_constant) uniform PC { uint n_vocab; uint slot; } pc;

shared uint cand_key[CAP];
shared uint cand_id[CAP];
shared uint n_cand;
shared uint best_id[WG_SIZE];

// float -> uint whose unsigned order is the float order
uint okey(float f) {
    uint u = floatBitsToUint(f);
    return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}
float unkey(uint k) {
    return uintBitsToFloat((k & 0x80000000u) != 0u ? (k & 0x7FFFFFFFu) : ~k);
}

// The k-th largest key (= the largest T with count(key >= T) >= k), by radix select: four passes
// over the vocabulary, each a shared-memory histogram of the next 8 bits of the keys that match
// the prefix found so far, then a scan from the top bin for the one holding the k-th key.
shared uint hist[256];
shared uint sel_prefix, sel_need;

uint kth_key(uint k) {
    uint tid = gl_LocalInvocationID.x;
    uint prefix = 0u, mask = 0u, need = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (uint i = tid; i < 256u; i += WG_SIZE) hist[i] = 0u;
        barrier();
        for (uint i = tid; i < pc.n_vocab; i += WG_SIZE) {
            uint key = okey(scratch[i]);
            if ((key & mask) == prefix) atomicAdd(hist[(key >> uint(shift)) & 255u], 1u);
        }
        barrier();
        if (tid == 0u) {
            uint above = 0u, b = 0u;               // keys in bins above b (all larger than bin b's)
            for (int bb = 255; bb >= 0; bb--) {
                if (above + hist[bb] >= need) { b = uint(bb); break; }
                above += hist[bb];
            }
            sel_prefix = prefix | (b << uint(shift));
            sel_need = need - above;
        }
        barrier();
        prefix = sel_prefix;
        need = sel_need;
        mask |= 255u << uint(shift);
    }
    return prefix;
}

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint nv = pc.n_vocab;

    // 1. repeat penalty
    for (uint i = tid; i < nv; i += WG_SIZE) scratch[i] = logits[i];
    memoryBarrierBuffer(); barrier();
    float rp = samp[SAMPLE_REPEAT_PENALTY];
    uint n_hist = uint(samp[SAMPLE_N_HISTORY]);
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

    float temp = samp[SAMPLE_TEMP];
    int top_k = int(samp[SAMPLE_TOP_K]);

    // 2. greedy: arg-max, lowest id among equal maxima
    if (temp <= 0.0 || top_k == 1) {
        float bv = -1.0 / 0.0; uint bi = 0xFFFFFFFFu;
        for (uint i = tid; i < nv; i += WG_SIZE) {
            float v = scratch[i];
            if (v > bv || bi == 0xFFFFFFFFu) { bv = v; bi = i; }   // i rises: first max kept
        }
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
    uint K = (top_k <= 0 || uint(top_k) >= nv) ? nv : uint(top_k);
    uint M = min(K, uint(MAX_CAND));
    uint TM = kth_key(M);
    if (tid == 0u) n_cand = 0u;
    barrier();
    for (uint i = tid; i < nv; i += WG_SIZE) {
        uint k = okey(scratch[i]);
        if (k >= TM) {
            uint slot = atomicAdd(n_cand, 1u);
            if (slot < CAP) { cand_key[slot] = k; cand_id[slot] = i; }
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
    // softmax normaliser of the top-k survivors (all K of them, even past MAX_CAND)
    float z = 0.0;
    if (K > M) {
        uint TK = K >= nv ? 0u : kth_key(K);
        for (uint i = tid; i < nv; i += WG_SIZE) {
            float v = scratch[i];
            if (okey(v) >= TK) z += exp(v - x0);
        }
        z = wg_sum(z);
    }

    // 4. top-p, min-p, temperature and the draw on the short sorted list
    if (tid == 0u) {
        if (K <= M) { for (uint i = 0; i < M; i++) z += exp(unkey(cand_key[i]) - x0); }
        uint keep = M;
        float top_p = samp[SAMPLE_TOP_P];
        if (top_p < 1.0) {
            float cum = 0.0;
            for (uint i = 0; i < M; i++) {
                cum += exp(unkey(cand_key[i]) - x0) / z;
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
        for (uint i = 0; i < keep; i++) s += exp((unkey(cand_key[i]) - x0) / temp);
        float u = samp[SAMPLE_UNIFORMS + pc.slot];
        float cum = 0.0;
        uint choice = keep - 1u;
        for (uint i = 0; i < keep; i++) {
            cum += exp((unkey(cand_key[i]) - x0) / temp) / s;
            if (cum > u) { choice = i; break; }
        }
        out_tokens[pc.slot] = int(cand_id[choice]);
    }
}
