#version 450
// Ops.attention: softmax(q k^T * scale [softcap] + mask) v for one (query row, head) per workgroup,
// over the KV cache, with grouped KV heads (GQA).  Keys are taken in tiles of WG_SIZE (one key per
// thread); an online softmax (running max m and sum l, rescaling the accumulator when m grows)
// keeps memory constant in the context length.  The output accumulator is split over threads
// by dimension: thread tid owns dims tid, tid + WG_SIZE, ...
// n_split > 1 (decode on a GPU: one query row, many keys): workgroup z takes the z-th of n_split
// slices of the visible keys and writes its unnormalised (m, l, acc) to `part`;
// attention_merge.comp combines the slices (flash-decoding).
#include "common.glsl"

#define MAX_HEAD_DIM 512
#define ACC_PER_THREAD (MAX_HEAD_DIM / WG_SIZE)

layout(std430, binding = 1) readonly buffer Q { float q[]; };     // [rows, n_head * head_dim]
layout(std430, binding = 2) readonly buffer K { float kc[]; };    // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 3) readonly buffer V { float vc[]; };    // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 4) buffer O { float out_[]; };           // [rows, n_head * head_dim]
layout(std430, binding = 5) readonly buffer S { int seq[]; };     // [rows, 1] (if has_seq)
layout(std430, binding = 6) buffer P { float part[]; };           // [rows, n_head, n_split, 2 + head_dim]

layout(push_constant) uniform PC {
    uint n_head; uint n_kv_head; uint head_dim; float scale;
    uint causal; uint window; float softcap; uint has_seq; uint rows_cap; uint n_split;
} pc;

shared float q_sh[MAX_HEAD_DIM];
shared float p_sh[WG_SIZE];

void main() {
    uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    uint n = active_rows(pc.rows_cap);
    FOR_ROWS(t, pc.rows_cap, y) {
    uint kvh = h / (pc.n_head / pc.n_kv_head);
    uint qw = pc.n_head * pc.head_dim, kvw = pc.n_kv_head * pc.head_dim;
    barrier();                                         // q_sh / p_sh of the previous row are done
    for (uint d = tid; d < pc.head_dim; d += WG_SIZE) q_sh[d] = q[t * qw + h * pc.head_dim + d];

    // visible cache rows [j_lo, j_hi)
    uint p = STEP_POS + t;
    uint j_lo = 0u, j_hi;
    if (pc.causal != 0u) {
        j_hi = p + 1u;
        if (pc.window > 0u && p + 1u > pc.window) j_lo = p + 1u - pc.window;
    } else {
        j_hi = n;
    }
    int my_seq = pc.has_seq != 0u ? seq[t] : 0;
    if (pc.n_split > 1u) {                             // this workgroup's slice, whole tiles
        uint per = ((j_hi - j_lo + pc.n_split - 1u) / pc.n_split + WG_SIZE - 1u) / WG_SIZE * WG_SIZE;
        uint a = j_lo + gl_WorkGroupID.z * per;
        j_hi = min(j_hi, a + per);
        j_lo = min(a, j_hi);
    }

    float m = -1.0 / 0.0, l = 0.0;
    float acc[ACC_PER_THREAD];
    for (uint a = 0; a < ACC_PER_THREAD; a++) acc[a] = 0.0;
    barrier();                                         // q_sh ready

    for (uint j0 = j_lo; j0 < j_hi; j0 += WG_SIZE) {
        uint j = j0 + tid;
        float s = -1.0 / 0.0;
        bool ok = j < j_hi && (pc.has_seq == 0u || seq[j] == my_seq);
        if (ok) {
            float dot_ = 0.0;
            uint kb = j * kvw + kvh * pc.head_dim;
            for (uint d = 0; d < pc.head_dim; d++) dot_ += q_sh[d] * kc[kb + d];
            s = dot_ * pc.scale;
            if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -15.0, 15.0));
        }
        float tile_max = wg_max(s);
        if (tile_max == -1.0 / 0.0) continue;          // every key of the tile masked (uniform)
        float m_new = max(m, tile_max);
        float pj = ok ? exp(s - m_new) : 0.0;
        float corr = exp(m - m_new);                    // 0 on the first visible tile
        p_sh[tid] = pj;
        float tile_sum = wg_sum(pj);                    // its barriers also publish p_sh
        l = l * corr + tile_sum;
        m = m_new;
        uint nj = min(WG_SIZE, j_hi - j0);
        for (uint a = 0; a < ACC_PER_THREAD; a++) {
            uint d = tid + a * WG_SIZE;
            if (d >= pc.head_dim) break;
            float v = acc[a] * corr;
            for (uint jj = 0; jj < nj; jj++) v += p_sh[jj] * vc[(j0 + jj) * kvw + kvh * pc.head_dim + d];
            acc[a] = v;
        }
    }
    if (pc.n_split > 1u) {
        uint pb = ((t * pc.n_head + h) * pc.n_split + gl_WorkGroupID.z) * (2u + pc.head_dim);
        if (tid == 0u) { part[pb] = m; part[pb + 1u] = l; }
        for (uint a = 0; a < ACC_PER_THREAD; a++) {
            uint d = tid + a * WG_SIZE;
            if (d < pc.head_dim) part[pb + 2u + d] = acc[a];
        }
    } else {
        for (uint a = 0; a < ACC_PER_THREAD; a++) {
            uint d = tid + a * WG_SIZE;
            if (d < pc.head_dim) out_[t * qw + h * pc.head_dim + d] = acc[a] / l;
        }
    }
    }
}
