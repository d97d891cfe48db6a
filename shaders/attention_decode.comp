#version 450
// Ops.attention for a decode step on a GPU, first half of the split (flash-decoding) path:
// softmax(q k^T * scale [softcap] + mask) v over slice z of the visible keys, for every query head of
// one KV head's block (GQA), written unnormalised as (max m, sum l, acc) to `part`; attention_merge.comp
// then combines the n_split slices, as it does attention.comp's.
//
// Workgroup (x, y, z): x = KV head kvh * nblk + head block (the host launches n_kv_head * nblk
// workgroups along x, nblk = ceil(G / GMAX), G = n_head / n_kv_head; each block takes <= GMAX of the
// G query heads), y = row group (FOR_ROWS), z = key slice.  head_dim % 4 == 0 and head_dim <= 256
// (the host falls back to attention.comp otherwise).
//
// A decode step's attention is a few MiB of K and V spread over ~100 workgroups: latency, not bandwidth,
// bounds it, so the kernel is built to wait as few times as possible.  Each thread runs its own online
// softmax over a strided share of the slice's keys, with no barrier inside the key loop:
//  * thread layout: head g of the block (GWP = the block's heads rounded up to a power of two, WG_SIZE / GWP
//    threads each; WG_SIZE is 256, or 128 for head_dim > 128, set by the host), key group kg (NKG per head),
//    lane (LK = 8 per key row).  Lane l of a key group holds vec4s l, l + LK, ... of the key's row (DPT =
//    ceil(head_dim / 4 / LK) of them, a specialization constant the host sets per head_dim, so that the
//    arrays below are exactly as large as needed and stay in registers): its q, the K and V rows it loads,
//    its part of acc.  A warp's loads of a key row are contiguous (coalesced).
//  * the LK partial dot products of a key are summed by a butterfly of subgroupShuffleXor (-DUSE_SUBGROUP; the
//    host picks it where subgroups have >= LK invocations and shuffles), or through shared memory with two
//    barriers per key step in the portable build (every thread runs the same number of key steps).
//  * key steps load UK keys' K and V rows before using any, so their latencies overlap (UK x DPT <= 8 vec4s
//    each of K and V in flight per thread).  A step's loads wait one memory round trip: at depth ~1500 on an
//    H100, with 2 keys per step and 128 threads, the steps made ~2/3 of the kernel's time.
//  * one barrier at the end: the key groups' (m, l, acc) are combined through shared memory and written.
// (The kernel before this one had a softmax phase per 256-key chunk with five barriers and chains of
// shared-memory reads, and a barrier pair per head to write acc: on an H100 at depth ~1500 (1B shape) ~20 us
// per layer, against ~5 us for a kernel that only reads the position and writes empty parts; at depth 256
// 13.2 us against this kernel's 7.5.)
#extension GL_EXT_control_flow_attributes : require
#define WG_SPEC                    // WG_SIZE: specialization constant 0
#include "common.glsl"
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

#define GMAX 8                     // query heads per workgroup (vulkan_ops.ATTENTION_DECODE_HEADS)
#define LK 8u                      // threads per key row (vulkan_ops.ATTENTION_DECODE_LANES; <= the subgroup size)
#define NEG_INF (-1.0 / 0.0)

layout(std430, binding = 1) readonly buffer Q { vec4 q4[]; };     // [rows, n_head * head_dim]
layout(std430, binding = 2) readonly buffer K { vec4 k4[]; };     // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 3) readonly buffer V { vec4 v4[]; };     // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 4) writeonly buffer O { float out_[]; }; // [rows, n_head * head_dim] (unused here)
layout(std430, binding = 5) readonly buffer S { int seq[]; };     // [rows, 1] (if has_seq)
layout(std430, binding = 6) writeonly buffer P { float part[]; }; // [rows, n_head, n_split, 2 + head_dim]

layout(push_constant) uniform PC {
    uint n_head; uint n_kv_head; uint head_dim; float scale;
    uint causal; uint window; float softcap; uint has_seq; uint rows_cap; uint n_split;
} pc;

layout(constant_id = 1) const uint DPT = 2;   // vec4s of a row per thread: ceil(head_dim / 4 / LK) (<= 8)
const uint UK = DPT <= 2u ? 4u : (DPT <= 4u ? 2u : 1u);   // keys per thread whose K and V loads go together

shared vec4 acc_sh[DPT * WG_SIZE];       // the end: [c][thread] = that thread's acc vec4 c
shared float m_sh[WG_SIZE / LK];         // the end: (m, l) per (head, key group), [g * NKG + kg]
shared float l_sh[WG_SIZE / LK];

// The sum of v over the LK lanes of this thread's key group, in every lane.  Called by every thread the same
// number of times (the portable build's barriers).
float row_sum(float v) {
#ifdef USE_SUBGROUP
    [[unroll]] for (uint b = 1u; b < LK; b *= 2u) v += subgroupShuffleXor(v, b);   // lanes of a group: aligned
    return v;
#else
    uint tid = gl_LocalInvocationID.x, first = tid - tid % LK;
    barrier();                                       // red_buf's previous readers are done
    red_buf[tid] = v;
    barrier();
    float s = 0.0;
    [[unroll]] for (uint i = 0; i < LK; i++) s += red_buf[first + i];
    return s;
#endif
}

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint G = pc.n_head / pc.n_kv_head;
    uint nblk = gl_NumWorkGroups.x / pc.n_kv_head;         // head blocks per KV head (host: ceil(G / GMAX))
    uint GW = (G + nblk - 1u) / nblk;                      // heads per block, <= GMAX
    uint kvh = gl_WorkGroupID.x / nblk, g0 = (gl_WorkGroupID.x % nblk) * GW;
    if (g0 >= G) return;                                   // (uniform) no heads left for this block
    uint gn = min(GW, G - g0);                             // heads here: kvh * G + g0 + g, g < gn
    uint h0 = kvh * G + g0;
    uint D4 = pc.head_dim / 4u, kvw4 = pc.n_kv_head * D4;
    uint z = gl_WorkGroupID.z;
    uint GWP = 1u;
    while (GWP < gn) GWP *= 2u;
    uint TPH = WG_SIZE / GWP, NKG = TPH / LK;              // threads and key groups per head
    uint g = tid / TPH, kg = (tid % TPH) / LK, lane = tid % LK;
    bool live = g < gn;
    uint gq = min(g, gn - 1u);                             // inactive threads load a real head's q (unused)

    FOR_ROWS(t, pc.rows_cap, y) {
    // this thread's q (issued before the position is read, which the key range waits for)
    uint qb = (t * pc.n_head + h0 + gq) * D4;
    vec4 q[DPT];
    [[unroll]] for (uint c = 0; c < DPT; c++) {
        uint i = lane + c * LK;
        q[c] = i < D4 ? q4[qb + i] : vec4(0.0);
    }
    // visible cache rows [j_lo, j_hi), then this workgroup's slice of them
    uint p = STEP_POS + t;
    uint j_lo = 0u, j_hi;
    if (pc.causal != 0u) {
        j_hi = p + 1u;
        if (pc.window > 0u && p + 1u > pc.window) j_lo = p + 1u - pc.window;
    } else {
        j_hi = active_rows(pc.rows_cap);
    }
    uint per = (j_hi - j_lo + pc.n_split - 1u) / pc.n_split;
    uint a = j_lo + z * per;
    j_hi = min(j_hi, a + per);
    j_lo = min(a, j_hi);
    int my_seq = pc.has_seq != 0u ? seq[t] : 0;

    // this thread's online softmax over keys j_lo + kg, + NKG, ...: running max m, sum l, acc (relative to m)
    float m = NEG_INF, l = 0.0;
    vec4 acc[DPT];
    [[unroll]] for (uint c = 0; c < DPT; c++) acc[c] = vec4(0.0);
    uint steps = (j_hi - j_lo + NKG - 1u) / NKG;           // the same for every thread of the workgroup
    for (uint s0 = 0u; s0 < steps; s0 += UK) {
        vec4 kv[UK][DPT], vv[UK][DPT];
        [[unroll]] for (uint u = 0; u < UK; u++) {
            uint j = j_lo + kg + (s0 + u) * NKG;
            bool ok = live && j < j_hi;
            uint rb = j * kvw4 + kvh * D4;
            [[unroll]] for (uint c = 0; c < DPT; c++) {
                uint i = lane + c * LK;
                bool in_row = ok && i < D4;
                kv[u][c] = in_row ? k4[rb + i] : vec4(0.0);
                vv[u][c] = in_row ? v4[rb + i] : vec4(0.0);
            }
        }
        [[unroll]] for (uint u = 0; u < UK; u++) {
            if (s0 + u >= steps) break;                    // uniform: steps is the workgroup's
            uint j = j_lo + kg + (s0 + u) * NKG;
            float d = 0.0;
            [[unroll]] for (uint c = 0; c < DPT; c++) d += dot(q[c], kv[u][c]);
            float s = row_sum(d) * pc.scale;
            if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -15.0, 15.0));
            if (!live || j >= j_hi || (pc.has_seq != 0u && seq[j] != my_seq)) s = NEG_INF;
            if (s == NEG_INF) continue;                    // a masked key changes nothing
            float m_new = max(m, s);
            float corr = exp(m - m_new);                   // 0 while m is -inf
            float pr = exp(s - m_new);
            l = l * corr + pr;
            [[unroll]] for (uint c = 0; c < DPT; c++) acc[c] = acc[c] * corr + pr * vv[u][c];
            m = m_new;
        }
    }

    // the NKG key groups of each head combined: M = max m, L = sum l e^(m - M), acc = sum acc e^(m - M);
    // an empty key group (l = 0, m = -inf) weighs nothing.  The slice's (M, L, acc) go to part.
    barrier();                                             // the previous row's readers of the shared arrays are done
    if (live && lane == 0u) { m_sh[g * NKG + kg] = m; l_sh[g * NKG + kg] = l; }
    [[unroll]] for (uint c = 0; c < DPT; c++) acc_sh[c * WG_SIZE + tid] = acc[c];
    barrier();
    uint hs = pc.n_split * (2u + pc.head_dim);             // part floats per head
    uint pb = (t * pc.n_head + h0) * hs + z * (2u + pc.head_dim);
    for (uint o = tid; o < gn * D4; o += WG_SIZE) {        // thread o: vec4 d of head go
        uint go = o / D4, d = o % D4;
        float M = NEG_INF;
        for (uint k = 0; k < NKG; k++) {
            if (l_sh[go * NKG + k] > 0.0) M = max(M, m_sh[go * NKG + k]);
        }
        float L = 0.0;
        vec4 sum = vec4(0.0);
        uint src = (d / LK) * WG_SIZE + go * TPH + d % LK; // acc_sh index of key group 0's lane holding vec4 d
        for (uint k = 0; k < NKG; k++) {
            float lk = l_sh[go * NKG + k];
            float w = lk > 0.0 ? exp(m_sh[go * NKG + k] - M) : 0.0;
            L += lk * w;
            sum += w * acc_sh[src + k * LK];
        }
        uint e = pb + go * hs;
        if (d == 0u) { part[e] = M; part[e + 1u] = L; }
        e += 2u + 4u * d;
        part[e] = sum.x; part[e + 1u] = sum.y; part[e + 2u] = sum.z; part[e + 3u] = sum.w;
    }
    }
}
