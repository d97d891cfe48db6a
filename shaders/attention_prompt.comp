#version 450
// Ops.attention for a batch of query rows (a prompt, or an embedding model's whole input), the tiled
// (flash-attention) kernel: softmax(q k^T * scale [softcap] + mask) v, exactly what attention.comp
// computes, but a workgroup takes a block of BR query slots (rows of one head, or of a few heads: GQA
// below) and walks the visible keys in tiles of BC, so each K and V row is loaded from memory once per
// block (BR slots) instead of once per query row, and the products come from shared memory:
//   1. the block's q rows -> q_sh (once per block);
//   2. per key tile: K rows -> kv_sh; scores S = q k^T for the BR x BC pairs (thread (r, c): row r,
//      keys c, c + TPR, ...; the q vec4 loaded once for all its keys); an online softmax per row (running
//      max m and sum l, the accumulator rescaled by e^(m_old - m_new) when m grows: attention.comp's);
//   3. V rows -> kv_sh (over K's); o += p v (thread (r, c): vec4s c, c + TPR, ... of row r's output).
// Masks (causal, sliding window, seq_ids) are applied per (row, key), so rows of one block may see
// different key ranges; a block walks the union of its rows' ranges.  Keys padded to a stride of
// D4 + 1 vec4s in kv_sh, so the 8 keys a warp's row reads at one step fall into different banks.
// head_dim % 4 == 0 and head_dim <= 256 (vulkan_ops.attention falls back to attention.comp otherwise).
// GQA: the BR query slots of a block are pc.grp query heads of one KV group (grp divides BR and the group
// size; 1 otherwise) x BR / grp rows, slot r = head h0 + r % grp of row t0 + r / grp, so each K / V tile
// loaded serves grp heads (the heads of a group read the same K and V rows).
// Workgroup (x, y): x = group of grp query heads, y = block group (blocks y, y + groups, ... of the active rows).
#extension GL_EXT_control_flow_attributes : require
#define WG_SIZE 128
#include "common.glsl"

#define Q_FLOATS 2048              // q_sh: BR rows x head_dim (BR = 16 up to head_dim 128, 8 up to 256)
#define KV_FLOATS 4096             // one tile of K or V rows: BC = min(MAX_BC, KV_FLOATS / head_dim) keys
#define MAX_BR 16
#define MAX_BC 64
#define KPT (MAX_BC / 8)           // keys per thread at most (TPR >= 8)
#define VPT 4                      // output vec4s per thread at most (head_dim / 4 / TPR)
#define NEG_INF (-1.0 / 0.0)

layout(std430, binding = 1) readonly buffer Q { vec4 q4[]; };     // [rows, n_head * head_dim]
layout(std430, binding = 2) readonly buffer K { vec4 k4[]; };     // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 3) readonly buffer V { vec4 v4[]; };     // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 4) writeonly buffer O { vec4 out4[]; };  // [rows, n_head * head_dim]
layout(std430, binding = 5) readonly buffer S { int seq[]; };     // [rows, 1] (if has_seq)

layout(push_constant) uniform PC {
    uint n_head; uint n_kv_head; uint head_dim; float scale;
    uint causal; uint window; float softcap; uint has_seq; uint rows_cap; uint n_split;
    uint grp;                                   // query heads per block (see above)
} pc;

#include "attention_prompt_keys.glsl"

shared vec4 q_sh[Q_FLOATS / 4];                 // [BR][D4]
shared vec4 kv_sh[KV_FLOATS / 4 + MAX_BC];      // [BC][D4 + 1]: the tile's K rows, then its V rows
shared float p_sh[MAX_BR * MAX_BC];             // [BR][BC]: scores, then probabilities
shared float row_red[WG_SIZE];                  // [BR][TPR]: per-thread max, then sum, of a row's keys

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint D4 = pc.head_dim / 4u, KS = D4 + 1u;   // vec4s per row; kv_sh row stride
    uint BR = pc.head_dim <= 128u ? 16u : 8u;   // query slots per block (VulkanOps.attention's `slots`)
    uint BC = min(uint(MAX_BC), KV_FLOATS / pc.head_dim);
    uint TPR = WG_SIZE / BR;                    // threads per query row: 8 or 16
    uint r = tid / TPR, c = tid % TPR;
    uint RB = BR / pc.grp;                      // query rows per block
    uint h0 = gl_WorkGroupID.x * pc.grp, kvh = h0 / (pc.n_head / pc.n_kv_head);
    uint h = h0 + r % pc.grp;                   // this thread's slot: head h of row t0 + r / grp
    uint qw4 = pc.n_head * D4, kvw4 = pc.n_kv_head * D4;
    uint n = active_rows(pc.rows_cap);

    for (uint t0 = gl_WorkGroupID.y * RB; t0 < n; t0 += gl_NumWorkGroups.y * RB) {
    uint t = t0 + r / pc.grp, t_last = min(t0 + RB, n) - 1u;
    bool row_ok = t < n;
    uint j_lo, j_hi, b_lo, b_hi;                // this row's visible keys and the block's union of them
    visible_keys(t, t0, t_last, n, j_lo, j_hi, b_lo, b_hi);
    int my_seq = pc.has_seq != 0u && row_ok ? seq[t] : 0;

    barrier();                                  // the previous block's readers of q_sh are done
    for (uint i = tid; i < BR * D4; i += WG_SIZE) {
        uint rr = i / D4, tr = t0 + rr / pc.grp;
        q_sh[i] = tr < n ? q4[tr * qw4 + (h0 + rr % pc.grp) * D4 + i % D4] : vec4(0.0);
    }
    float m = NEG_INF, l = 0.0;
    vec4 o[VPT];
    [[unroll]] for (uint i = 0; i < VPT; i++) o[i] = vec4(0.0);

    for (uint j0 = b_lo; j0 < b_hi; j0 += BC) {
        uint nc = min(BC, b_hi - j0);
        barrier();                              // the previous tile's readers of kv_sh (V) and p_sh are done
        for (uint i = tid; i < nc * D4; i += WG_SIZE) {
            uint kk = i / D4, d4 = i % D4;
            kv_sh[kk * KS + d4] = k4[(j0 + kk) * kvw4 + kvh * D4 + d4];
        }
        barrier();                              // K tile (and q_sh) ready

        // scores of row r, keys c + i * TPR
        float dots[KPT];
        [[unroll]] for (uint i = 0; i < KPT; i++) dots[i] = 0.0;
        for (uint d4 = 0; d4 < D4; d4++) {
            vec4 qv = q_sh[r * D4 + d4];
            [[unroll]] for (uint i = 0; i < KPT; i++) {
                uint kk = c + i * TPR;
                if (kk < nc) dots[i] += dot(qv, kv_sh[kk * KS + d4]);
            }
        }
        float mx = NEG_INF;
        [[unroll]] for (uint i = 0; i < KPT; i++) {
            uint kk = c + i * TPR, j = j0 + kk;
            if (kk >= nc) continue;
            float s = NEG_INF;
            if (key_visible(j, j_lo, j_hi, my_seq)) {
                s = dots[i] * pc.scale;
                if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -15.0, 15.0));
            }
            dots[i] = s;
            mx = max(mx, s);
        }
        row_red[tid] = mx;
        barrier();                              // the row's maxima are in; every K read is done
        float m_new = m;
        for (uint i = 0; i < TPR; i++) m_new = max(m_new, row_red[r * TPR + i]);
        float sum = 0.0;
        [[unroll]] for (uint i = 0; i < KPT; i++) {
            uint kk = c + i * TPR;
            if (kk >= nc) continue;
            float pr = dots[i] == NEG_INF ? 0.0 : exp(dots[i] - m_new);   // m_new is -inf only if every s is
            p_sh[r * MAX_BC + kk] = pr;
            sum += pr;
        }
        float corr = m_new == NEG_INF ? 1.0 : exp(m - m_new);          // 0 on the row's first visible tile
        for (uint i = tid; i < nc * D4; i += WG_SIZE) {                 // V rows over the K rows
            uint kk = i / D4, d4 = i % D4;
            kv_sh[kk * KS + d4] = v4[(j0 + kk) * kvw4 + kvh * D4 + d4];
        }
        barrier();                              // the row maxima are read (row_red is reused below)
        row_red[tid] = sum;
        barrier();                              // V tile, p_sh and the row sums ready
        float tile_sum = 0.0;
        for (uint i = 0; i < TPR; i++) tile_sum += row_red[r * TPR + i];
        l = l * corr + tile_sum;
        m = m_new;
        [[unroll]] for (uint i = 0; i < VPT; i++) o[i] *= corr;
        for (uint kk = 0; kk < nc; kk++) {
            float pr = p_sh[r * MAX_BC + kk];
            [[unroll]] for (uint i = 0; i < VPT; i++) {
                uint d4 = c + i * TPR;
                if (d4 < D4) o[i] += pr * kv_sh[kk * KS + d4];
            }
        }
    }
    if (row_ok) {
        float inv = l > 0.0 ? 1.0 / l : 0.0;    // a row with no visible key (only with seq_ids) -> 0
        [[unroll]] for (uint i = 0; i < VPT; i++) {
            uint d4 = c + i * TPR;
            if (d4 < D4) out4[t * qw4 + h * D4 + d4] = o[i] * inv;
        }
    }
    }
}
