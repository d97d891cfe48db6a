#version 450
// Ops.sample v2, first of two dispatches (VulkanOps.sample; sample.comp -DSLICES finishes in one
// workgroup).  v1 runs the whole chain in a single workgroup, i.e. on one compute unit, which cannot
// pull a 128k-entry vocabulary fast; here workgroup g takes the slice [g * slice, (g + 1) * slice) of
// the logits and leaves in `parts` what the finishing workgroup needs:
//   greedy (temp <= 0 or top_k == 1): the slice's arg-max and its value (lowest id among equal maxima);
//   top-k with K <= pc.cands: the slice's min(K, length) largest penalised logits (keys, ids; unordered).
//       The global K largest are among them: at most K come from one slice.  Equal values at the
//       slice's cut go to the lowest ids, so the global (logit desc, id asc) order is not cut short;
//   otherwise (top-k larger than the candidate budget, or off): the penalised slice into `scratch`,
//       where sample.comp runs v1's selection over the whole vocabulary.
// The repeat penalty is applied on the fly instead of to a copy: each workgroup marks the window's ids
// that fall in its slice in a shared bitmap (a token that repeats is marked once, so penalised once).
// Everything that changes per step comes from the sampling buffer, as in sample.comp: the dispatch is
// recorded once and replayed.
//
// parts (uint words; G = ceil(n_vocab / slice) slices):
//   [s]                          slice s's largest value (float bits)   greedy
//   [G + s]                      its id
//   [2G + s*K + j]               key (okey) of slice s's candidate j  top-k, j < K
//   [2G + G*cands + s*K + j]     its id
// A slice shorter than K pads its list with key 0 and id 0xFFFFFFFF: below every key sample.comp can
// select unless fewer than K candidates are real, which cannot happen (K <= n_vocab), and sorted last.
#define WG_SPEC
#include "common.glsl"
#include "sampling_buf.glsl"
#include "sample_select.glsl"

#define MAX_SLICE 65536     // VulkanOps: SAMPLE_MAX_SLICE (the bitmap's size; local ids fit 16 bits)

layout(std430, binding = 2) readonly buffer L { float logits[]; };    // [>= 1, n_vocab]: row 0
layout(std430, binding = 3) readonly buffer H { int history[]; };     // [cap, 1], newest at n_hist - 1
layout(std430, binding = 4) writeonly buffer SC { float scratch[]; }; // [n_vocab] penalised logits (big top-k only)
layout(std430, binding = 5) writeonly buffer P { uint parts[]; };     // see above

layout(push_constant) uniform PC { uint n_vocab; uint slice; uint cands; } pc;

shared uint pen_bits[MAX_SLICE / 32];
shared uint best_id[WG_SIZE];
shared uint n_out;

uint lo;            // the slice's first id
bool penalise;
float rp;

// logit lo + j with the repeat penalty applied (as engine/sampling.py: positive ones divided, others multiplied)
float value(uint j) {
    float v = logits[lo + j];
    if (penalise && (pen_bits[j >> 5] & (1u << (j & 31u))) != 0u) v = v > 0.0 ? v / rp : v * rp;
    return v;
}

void main() {
    uint tid = gl_LocalInvocationID.x, g = gl_WorkGroupID.x;
    uint nv = pc.n_vocab, G = (nv + pc.slice - 1u) / pc.slice;
    lo = g * pc.slice;
    uint len = min(pc.slice, nv - lo);

    // the penalty's bitmap of this slice
    rp = samp[SAMPLE_REPEAT_PENALTY];
    uint n_hist = STEP_N_HISTORY;
    uint win = min(uint(max(samp[SAMPLE_REPEAT_LAST_N], 0.0)), n_hist);
    penalise = rp != 1.0 && win > 0u;
    if (penalise) {
        for (uint w = tid; w < (len + 31u) / 32u; w += WG_SIZE) pen_bits[w] = 0u;
        barrier();
        for (uint i = n_hist - win + tid; i < n_hist; i += WG_SIZE) {
            int tok = history[i];
            if (tok >= 0 && uint(tok) >= lo && uint(tok) - lo < len) {
                uint j = uint(tok) - lo;
                atomicOr(pen_bits[j >> 5], 1u << (j & 31u));
            }
        }
        barrier();
    }

    float temp = samp[SAMPLE_TEMP];
    int top_k = int(samp[SAMPLE_TOP_K]);

    // greedy: the slice's arg-max, lowest id among equal maxima (as sample.comp's)
    if (temp <= 0.0 || top_k == 1) {
        float bv = -1.0 / 0.0; uint bi = 0xFFFFFFFFu;
        for (uint j = tid; j < len; j += WG_SIZE) {
            float v = value(j);
            if (v > bv || bi == 0xFFFFFFFFu) { bv = v; bi = lo + j; }   // j rises: first max kept
        }
        red_buf[tid] = bv; best_id[tid] = bi;
        barrier();
        for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
            if (tid < s) {
                float ov = red_buf[tid + s]; uint oi = best_id[tid + s];
                if (oi != 0xFFFFFFFFu && (ov > red_buf[tid] || (ov == red_buf[tid] && oi < best_id[tid])
                                          || best_id[tid] == 0xFFFFFFFFu)) {
                    red_buf[tid] = ov; best_id[tid] = oi;
                }
            }
            barrier();
        }
        if (tid == 0u) { parts[g] = floatBitsToUint(red_buf[0]); parts[G + g] = best_id[0]; }
        return;
    }

    uint K = (top_k <= 0 || uint(top_k) >= nv) ? nv : uint(top_k);
    if (K > pc.cands) {                 // beyond the candidate budget: sample.comp selects from scratch
        for (uint j = tid; j < len; j += WG_SIZE) scratch[lo + j] = value(j);
        return;
    }
    uint keys = 2u * G + g * K, ids = keys + G * pc.cands;
    if (len <= K) {                     // the whole slice is in, padded to K entries
        for (uint j = tid; j < K; j += WG_SIZE) {
            parts[keys + j] = j < len ? okey(value(j)) : 0u;
            parts[ids + j] = j < len ? lo + j : 0xFFFFFFFFu;
        }
        return;
    }

    // the K-th largest key of the slice, by radix select; a pass may stop early when the bin holding
    // the K-th key is taken whole (the threshold is then the bin's lowest key)
    uint prefix = 0u, mask = 0u, need = K;
    bool tie_cut = true;                // keys equal to the K-th one are taken only in part
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (uint i = tid; i < 256u; i += WG_SIZE) hist[i] = 0u;
        barrier();
        for (uint j = tid; j < len; j += WG_SIZE) {
            uint key = okey(value(j));
            if ((key & mask) == prefix) atomicAdd(hist[(key >> uint(shift)) & 255u], 1u);
        }
        barrier();
        pick_bin(need);
        prefix |= sel_bin << uint(shift);
        mask |= 255u << uint(shift);
        need -= sel_above;
        if (need == sel_count) { tie_cut = false; break; }
    }
    // keys equal to the threshold, `need` of them to take: the lowest ids, i.e. the need-th largest of
    // 0xFFFF - j among them (two more passes of 8 bits: j < MAX_SLICE)
    uint jcut = 0xFFFFFFFFu;            // take key == threshold where j <= jcut
    if (tie_cut) {
        uint p2 = 0u, m2 = 0u;
        for (int shift = 8; shift >= 0; shift -= 8) {
            for (uint i = tid; i < 256u; i += WG_SIZE) hist[i] = 0u;
            barrier();
            for (uint j = tid; j < len; j += WG_SIZE) {
                uint r = 0xFFFFu - j;
                if (okey(value(j)) == prefix && (r & m2) == p2) atomicAdd(hist[(r >> uint(shift)) & 255u], 1u);
            }
            barrier();
            pick_bin(need);
            p2 |= sel_bin << uint(shift);
            m2 |= 255u << uint(shift);
            need -= sel_above;
        }
        jcut = 0xFFFFu - p2;
    }
    if (tid == 0u) n_out = 0u;
    barrier();
    for (uint j = tid; j < len; j += WG_SIZE) {
        uint key = okey(value(j));
        if (key > prefix || (key == prefix && j <= jcut)) {     // exactly K of them
            uint slot = atomicAdd(n_out, 1u);
            parts[keys + slot] = key;
            parts[ids + slot] = lo + j;
        }
    }
}
