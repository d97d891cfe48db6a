#version 450
// Ops.attention for a batch of query rows on tensor cores (GPT4ALL_ATTENTION_PROMPT=coopmat, the default where the
// device has f16 cooperative matrices; VulkanOps.attention): softmax(q k^T * scale [softcap] + mask) v, what
// attention_prompt.comp computes in f32, with the two products q k^T and p v as coopMatMulAddNV of f16 inputs into
// f32 sums (q, K, V and the probabilities rounded to f16, as llama.cpp's flash attention does with its f16 cache).
// -DHD=64 or 128: head_dim (the accumulators are named variables, sized by it).
//
// A workgroup takes BR = 16 x NSG query slots (its NSG subgroups 16 each), slot r = head h0 + r % grp of row
// t0 + r / grp (attention_prompt.comp's GQA blocks: grp query heads of one KV group share every K / V tile), and
// walks the visible keys of its rows in tiles of BC = 32: S = q k^T (tensor cores), then per slot an online
// softmax against a reference max m, p = e^(s - m), l = sum p, and O += p v (tensor cores).  Flash attention
// rescales O by e^(m_old - m_new) whenever a row's max grows; on cooperative matrices, whose element layout is
// opaque, that is a round trip of every accumulator through shared memory, so here m moves only when a tile's
// max exceeds it by more than RESCALE_AT (p stays <= e^RESCALE_AT, which f16 holds) or on a slot's first visible
// keys: with real score distributions that is rarely after a row's first tile.  O is divided by l at the end.
// (Two passes over the keys instead -- maxima first, then p with the final max, never rescaling -- took 31.3 µs per
// 8B prompt token at depth 512 on an H100 against this kernel's 18.6.)
// Each subgroup's S tile goes through its own part of shared memory (s_sh) to the softmax, which runs in
// registers: lane (row = lane % 16, h = lane / 16) takes keys 2i + h of its row (the column-major store below makes
// those reads conflict-free), partners combine with one shuffle.  Workgroup barriers only around the K / V tiles.
// Masks (causal, sliding window, seq_ids) per (row, key), as in attention_prompt.comp; a row with no visible key
// writes zeros.  Subgroups of 32 (the host checks, _coopmat_usable).
#extension GL_EXT_control_flow_attributes : require
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_vote : require
#ifndef WG_SIZE
#define WG_SIZE 128
#endif
#include "common.glsl"

#ifndef HD
#error "-DHD=64 or -DHD=128 (head_dim)"
#endif
#define NSG (WG_SIZE / 32)         // subgroups
#define BR (16 * NSG)              // query slots per block (vulkan_ops.ATTENTION_PROMPT_CM_SLOTS)
#define BC 32                      // keys per tile
#define D4 (HD / 4)
#define LDU (HD / 2 + 4)           // uints (f16 pairs) per q / K / V row in shared memory: 8 halves of padding
#define LDPU (BC / 2 + 4)          // uints per row of p
#define SCOPE 3                    // gl_ScopeSubgroup
#define NEG_INF (-1.0 / 0.0)
#define RESCALE_AT 8.0             // the reference max moves when a score exceeds it by more (p <= e^8)

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

// (vulkan_ops._attention_cm_shared_bytes adds these sizes up: the host falls back to the f32 kernel on a device
// with less shared memory)
shared uint q_h[BR * LDU];                      // [BR][LDU]: the block's q rows * scale, f16 pairs
shared uint k_h[BC * LDU];                      // [BC][LDU]: the tile's K rows
shared uint v_h[BC * LDU];                      // [BC][LDU]: the tile's V rows
shared float s_sh[NSG * 16 * BC];               // per subgroup: S, column-major [key][16 rows]; O on its way out
shared uint p_h[NSG * 16 * LDPU];               // per subgroup: p, row-major [16 rows][LDPU], f16 pairs

#define MAT_A fcoopmatNV<16, SCOPE, 16, 16>     // 16 slots x 16 (dims, or keys)
#define MAT_B fcoopmatNV<16, SCOPE, 16, 8>      // 16 x 8 (dims x keys, or keys x dims)
#define MAT_C fcoopmatNV<32, SCOPE, 16, 8>      // f32 sums: 16 slots x 8 (keys, or dims)
// Arrays of cooperative matrices stay in local memory on NVIDIA's driver (matmul_tiled.comp), so the S and O
// accumulators are named variables: FOR_S / FOR_O spell them out
#define FOR_S(X) X(0) X(1) X(2) X(3)
#if HD == 64
#define FOR_O(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#elif HD == 128
#define FOR_O(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#else
#error "HD: 64 or 128"
#endif
#define ZERO(m) m = MAT_C(0.0);
#define DECL_S(u) MAT_C s##u;
#define ZERO_S(u) ZERO(s##u)
#define DECL_O(u) MAT_C o##u = MAT_C(0.0);
// S_u += q[16 slots, kk..kk+15] k[keys 8u.., kk..]^T (k_h read column-major: a column is a key's row)
#define QK(u) { MAT_B b; coopMatLoadNV(b, k_h, (8u * u) * LDU + kk / 2u, LDU, true); s##u = coopMatMulAddNV(a, b, s##u); }
// column-major, 16 floats a key: lane (row, h) reads key 2i + h at (2i + h) * 16 + row, 32 different banks
#define STORE_S(u) coopMatStoreNV(s##u, s_sh, sbase + 8u * u * 16u, 16u, true);
// O_u += p[16 slots, keys kc..kc+15] v[keys kc.., dims 8u..]
#define PV(u) { MAT_B b; coopMatLoadNV(b, v_h, kc * LDU + 4u * u, LDU, false); o##u = coopMatMulAddNV(a, b, o##u); }
// O_u (16 slots x dims 8u..) to out, through this subgroup's s_sh: lane (row lane / 2, vec4 lane % 2)
#define STORE_O(u) { \
    coopMatStoreNV(o##u, s_sh, sbase, 8u, false); \
    subgroupMemoryBarrierShared(); subgroupBarrier(); \
    if (out_ok) out4[out_at + 2u * u + (lane & 1u)] = out_scale * vec4(s_sh[sbase + 4u * lane], \
        s_sh[sbase + 4u * lane + 1u], s_sh[sbase + 4u * lane + 2u], s_sh[sbase + 4u * lane + 3u]); \
    subgroupBarrier(); }
// O_u's row lane / 2 times f (that slot's factor), through this subgroup's s_sh (a raised reference max)
#define RESCALE_O(u) { \
    coopMatStoreNV(o##u, s_sh, sbase, 8u, false); \
    subgroupMemoryBarrierShared(); subgroupBarrier(); \
    [[unroll]] for (uint e = 0; e < 4u; e++) s_sh[sbase + 4u * lane + e] *= f; \
    subgroupMemoryBarrierShared(); subgroupBarrier(); \
    coopMatLoadNV(o##u, s_sh, sbase, 8u, false); \
    subgroupBarrier(); }

// K and V rows j0 .. j0 + BC - 1 of KV head kvh as f16 pairs into k_h and v_h; zeros from key j_end on
void load_tile(uint j0, uint j_end, uint kvh) {
    uint kvw4 = pc.n_kv_head * D4;
    for (uint i = gl_LocalInvocationID.x; i < BC * D4; i += WG_SIZE) {
        uint kk = i / D4, d4 = i % D4, at = kk * LDU + 2u * d4;
        bool ok = j0 + kk < j_end;
        uint src = (j0 + kk) * kvw4 + kvh * D4 + d4;
        vec4 k = ok ? k4[src] : vec4(0.0), v = ok ? v4[src] : vec4(0.0);
        k_h[at] = packHalf2x16(k.xy);
        k_h[at + 1u] = packHalf2x16(k.zw);
        v_h[at] = packHalf2x16(v.xy);
        v_h[at + 1u] = packHalf2x16(v.zw);
    }
}

void main() {
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint row = lane % 16u, h = lane / 16u;      // softmax: this lane's slot (of its subgroup's 16) and key parity
    uint sbase = sg * 16u * BC;                 // this subgroup's part of s_sh
    uint RB = BR / pc.grp;                      // query rows per block
    uint h0 = gl_WorkGroupID.x * pc.grp, kvh = h0 / (pc.n_head / pc.n_kv_head);
    uint qw4 = pc.n_head * D4;
    uint n = active_rows(pc.rows_cap);

    for (uint t0 = gl_WorkGroupID.y * RB; t0 < n; t0 += gl_NumWorkGroups.y * RB) {
    uint t_last = min(t0 + RB, n) - 1u;
    uint slot = sg * 16u + row;
    uint t = t0 + slot / pc.grp;                // this lane's slot: head h0 + slot % grp of row t
    bool row_ok = t < n;
    uint j_lo, j_hi, b_lo, b_hi;                // this slot's visible keys and the block's union of them
    visible_keys(t, t0, t_last, n, j_lo, j_hi, b_lo, b_hi);
    int my_seq = pc.has_seq != 0u && row_ok ? seq[t] : 0;

    barrier();                                  // the previous block's readers of q_h are done
    for (uint i = tid; i < BR * D4; i += WG_SIZE) {
        uint r = i / D4, tr = t0 + r / pc.grp, at = r * LDU + 2u * (i % D4);
        vec4 qv = tr < n ? q4[tr * qw4 + (h0 + r % pc.grp) * D4 + i % D4] * pc.scale : vec4(0.0);
        q_h[at] = packHalf2x16(qv.xy);
        q_h[at + 1u] = packHalf2x16(qv.zw);
    }

    // S, then p = e^(s - m) against the slot's reference max m, O += p v.  A raised m rescales O and l by
    // e^(m_old - m_new): the whole subgroup's O accumulators go through shared memory when any of its 16 slots
    // needs it (RESCALE_O).
    float m = NEG_INF, l = 0.0;
    FOR_O(DECL_O)
    for (uint j0 = b_lo; j0 < b_hi; j0 += BC) {
        barrier();                              // the previous tile's readers of k_h / v_h are done
        load_tile(j0, b_hi, kvh);
        barrier();                              // the K and V tiles (and q_h) ready
        FOR_S(DECL_S)
        FOR_S(ZERO_S)
        [[unroll]] for (uint kk = 0; kk < HD; kk += 16u) {
            MAT_A a;
            coopMatLoadNV(a, q_h, sg * 16u * LDU + kk / 2u, LDU, false);
            FOR_S(QK)
        }
        FOR_S(STORE_S)
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        float s[BC / 2];
        float mx = NEG_INF;
        [[unroll]] for (uint i = 0; i < BC / 2u; i++) {
            uint key = 2u * i + h, j = j0 + key;
            float v = s_sh[sbase + key * 16u + row];
            if (pc.softcap > 0.0) v = pc.softcap * tanh(clamp(v / pc.softcap, -15.0, 15.0));
            bool vis = key_visible(j, j_lo, j_hi, my_seq);
            s[i] = vis ? v : NEG_INF;
            mx = max(mx, s[i]);
        }
        mx = max(mx, subgroupShuffleXor(mx, 16u));
        bool raise = mx != NEG_INF && (m == NEG_INF || mx > m + RESCALE_AT);
        float factor = raise && m != NEG_INF ? exp(m - mx) : 1.0;   // O and l of this slot times this
        if (raise) m = mx;
        float sum = 0.0;
        // p of keys 2i (lane h = 0) and 2i + 1 (its partner, h = 1) packed into one uint by the h = 0 lane
        [[unroll]] for (uint i = 0; i < BC / 2u; i++) {
            float p = s[i] == NEG_INF ? 0.0 : exp(s[i] - m);
            sum += p;
            float p_odd = subgroupShuffleXor(p, 16u);
            if (h == 0u) p_h[(sg * 16u + row) * LDPU + i] = packHalf2x16(vec2(p, p_odd));
        }
        sum += subgroupShuffleXor(sum, 16u);
        l = l * factor + sum;
        subgroupBarrier();                      // s_sh is read: the rescale below may use it
        if (subgroupAny(factor != 1.0)) {
            float f = subgroupShuffle(factor, lane / 2u);   // the factor of slot lane / 2 (RESCALE_O's rows)
            FOR_O(RESCALE_O)
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();                      // p_h written
        [[unroll]] for (uint kc = 0; kc < BC; kc += 16u) {
            MAT_A a;
            coopMatLoadNV(a, p_h, sg * 16u * LDPU + kc / 2u, LDPU, false);
            FOR_O(PV)
        }
        subgroupBarrier();                      // s_sh and p_h read before the next tile writes them
    }
    // a slot with no visible key (only with seq_ids): l = 0 and O = 0
    float out_scale = subgroupShuffle(l > 0.0 ? 1.0 / l : 0.0, lane / 2u);

    // ---- O to out: slot lane / 2 of this subgroup, dims 8u + 4 (lane % 2) .. ----
    uint o_slot = sg * 16u + lane / 2u, o_t = t0 + o_slot / pc.grp;
    bool out_ok = o_t < n;
    uint out_at = o_t * qw4 + (h0 + o_slot % pc.grp) * D4;
    FOR_O(STORE_O)
    }
}
