#version 450
// Ops.matmul, the decode mat-vec at memory bandwidth (GPT4ALL_MATVEC=v2; one x row, n_tokens <= 1):
//   out[out_col0 + j] (+)= sum_k W[w_row0 + j, k] * h[k] (+ bias[bias_row0 + j])
// with h = x, or h = rms_norm(x) * g when flags has FLAG_NORM (Ops.matmul's pre-norm: every workgroup
// sums x^2 over the same x values it multiplies, so the norm costs no extra pass, dispatch or barrier:
// sum_k W[j,k] x[k] g[k] / rms = (sum_k W[j,k] (x g)[k]) * rinv).  FLAG_ACC adds to out (Ops.matmul's
// accumulate: a residual branch's last mat-vec adds straight into the residual stream).
// -DGLU (Ops.matmul_glu): W holds the gate rows and, up_row_off rows further on, the up rows; each
// workgroup computes both dot products of its rows and writes act(gate) * up (act 0: silu, 1: gelu).
// -DSTACK (Ops.matmul_stack): W is several weights stacked (q, k, v); row j of the stack goes to out,
// out1 or out2 by the push constants out1_row / out2_row: three matmuls of one x in one dispatch.
// The weight is in a split layout (shaders/quants/<type>_split.glsl): quants in 16-byte uvec4s,
// scales in their own array.  A row is cut into units of 32 weights (a Q4_0 / Q8_0 block, an eighth
// of a Q6_K block); thread tid takes units tid, tid + WG_SIZE, ... so adjacent threads read adjacent
// 16-byte quant vectors (coalesced, no padding).  A workgroup takes NR weight rows at a time and
// each thread loads its unit's 32 x values (8 vec4) once for all NR rows.
// NR and the workgroup size WG_SIZE are specialization constants (1 and 0), set by the host when it
// builds the pipeline (vulkan_ops.MatvecKernel, GPT4ALL_MATVEC=v2:NRxWG), so they are tuned per device
// without recompiling; the driver sees them as constants (loops over NR unroll).  The NR
// partial sums are reduced with subgroupAdd inside each subgroup (whatever size the device has) and one
// shared slot per subgroup (USE_SUBGROUP), or through shared memory (portable build).
// Batches (prompts) use matmul.comp -DBATCH, which reads the same layout through dequant8v.
#define WG_SPEC
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require     // [[unroll]]

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, split layout
layout(std430, binding = 1) readonly buffer A4 { uvec4 data_a4[]; };   // the same buffer, 16 bytes at a time
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };         // x row 0: [K / 4] vec4
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]; row 0 written
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (FLAG_BIAS)
layout(std430, binding = 5) readonly buffer G { vec4 g4[]; };          // [K / 4] f32 norm weight (FLAG_NORM)
#ifdef STACK
layout(std430, binding = 6) writeonly buffer O1 { float out1[]; };     // [out2_row - out1_row] (row 0)
layout(std430, binding = 7) writeonly buffer O2 { float out2[]; };     // [n_out - out2_row] (row 0)
#endif

#include "matmul_pc.glsl"
#include "gelu.glsl"

#define MATVEC
#include "dequant.glsl"
#ifndef SPLIT_LAYOUT
#error "matmul_vec.comp needs a split-layout type (DATA_A_<TYPE>_SPLIT)"
#endif
#define UPB (QK / 32)                            // units of 32 weights per block

layout(constant_id = 1) const uint NR = 4;   // weight rows per workgroup pass (vulkan_ops.MatvecKernel)
layout(constant_id = 2) const uint USE_LANES = 1;   // types with a lane kernel use it (WG_SIZE % LANES == 0)
layout(constant_id = 3) const uint KEEP_X = 0;      // tile layouts, GPT4ALL_MATVEC=v4: x stays in registers (below)

#ifdef GLU
#define NS (2u * NR)                             // sums per pass: NR gate rows, then their NR up rows
#else
#define NS NR
#endif
// partial sums: [s][subgroup id] (USE_SUBGROUP; WG_SIZE bounds the number of subgroups) or [s][thread];
// slot NS: sum of x^2 (FLAG_NORM)
shared float part[NS + 1u][WG_SIZE];
// this thread's part of the pass's NS sums.  Arrays sized by the spec constant NR live here, not in function
// parameters: lavapipe miscompiled a float[2 NR] parameter (every GLU sum came out wrong)
float acc[NS];

// x vec4 i as the product sees it: h = x * g with the pre-norm (FLAG_NORM; its 1 / rms is applied to the
// sums), whose x . x goes into xsq.  Every loop below loads x through this, each value exactly once.
vec4 input4(uint i, bool norm, inout float xsq) {
    vec4 x = x4[i];
    if (!norm) return x;
    xsq += dot(x, x);
    return x * g4[i];
}

// The end of a pass: the NS sums of rows j0 .. j0 + nr - 1, each thread holding its part (acc) and its part
// of x . x (xsq, FLAG_NORM), reduced over the workgroup and written out (act(gate) * up for GLU; the
// stack's rows to their outputs).  Called by every thread, in uniform control flow (barriers).
void store_pass(uint j0, uint nr, float xsq, bool norm) {
    uint tid = gl_LocalInvocationID.x;
    barrier();                                   // part[] of the previous pass is consumed
#ifdef USE_SUBGROUP
    for (uint r = 0; r < NS; r++) acc[r] = subgroupAdd(acc[r]);
    xsq = subgroupAdd(xsq);
    if (subgroupElect()) {
        for (uint r = 0; r < NS; r++) part[r][gl_SubgroupID] = acc[r];
        part[NS][gl_SubgroupID] = xsq;
    }
    uint n_part = gl_NumSubgroups;
#else
    for (uint r = 0; r < NS; r++) part[r][tid] = acc[r];
    part[NS][tid] = xsq;
    uint n_part = WG_SIZE;
#endif
    barrier();
    float rinv = 1.0;                            // 1 / rms(x) (FLAG_NORM)
    if (norm) {
        float ss = 0.0;
        for (uint i = 0; i < n_part; i++) ss += part[NS][i];
        rinv = inversesqrt(ss / float(pc.K) + pc.eps);
    }
    for (uint r = tid; r < nr; r += WG_SIZE) {   // one thread per row (NR may exceed WG_SIZE)
        float total = 0.0;
        for (uint i = 0; i < n_part; i++) total += part[r][i];
        total *= rinv;
#ifdef GLU
        float up = 0.0;
        for (uint i = 0; i < n_part; i++) up += part[NR + r][i];
        total = (pc.act == 0u ? total / (1.0 + exp(-total)) : gelu_tanh(total)) * up * rinv;
#endif
        if ((pc.flags & FLAG_BIAS) != 0u) total += bias[pc.bias_row0 + j0 + r];
#ifdef STACK
        uint j = j0 + r;                         // the stack's row (no bias, no accumulate: the host checks)
        if (j >= pc.out2_row) out2[j - pc.out2_row] = total;
        else if (j >= pc.out1_row) out1[j - pc.out1_row] = total;
        else out_[j] = total;
#else
        uint o = pc.out_col0 + j0 + r;
        out_[o] = (pc.flags & FLAG_ACC) != 0u ? out_[o] + total : total;
#endif
    }
}

#ifdef TILE_LAYOUT
// GPT4ALL_MATVEC=v4 (KEEP_X; the host makes WG_SIZE = TILE_THREADS x the row's tiles): one team of threads per
// tile, so a thread's 32 x values are the same in every pass and stay in registers, and a workgroup takes
// several passes (the host launches fewer workgroups: no x reloaded, no norm re-summed per row group); each
// pass's weight loads are issued before the previous pass's sums are reduced, in flight across its barriers.
// q, sc: the pass's loads, [gate rows, then up rows (GLU)]; rows past n_out keep stale values, never stored.
uvec4 q[NS], sc[NS];

void load_pass(uint j0, uint tiles, uint ti, uint tl) {
    [[unroll]] for (uint r = 0; r < NR; r++) {
        if (j0 + r < pc.n_out) {
            uint tile = (pc.w_row0 + j0 + r) * tiles + ti;
            tile_load(tile, tl, q[r], sc[r]);
#ifdef GLU
            tile_load(tile + pc.up_row_off * tiles, tl, q[NR + r], sc[NR + r]);
#endif
        }
    }
}

void main_keep_x(bool norm) {
    uint tid = gl_LocalInvocationID.x, tl = tid % TILE_THREADS, ti = tid / TILE_THREADS;
    uint tiles = pc.nb * QK / 1024u;
    uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * NR;
    uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR;
    [[unroll]] for (uint r = 0; r < NS; r++) { q[r] = uvec4(0u); sc[r] = uvec4(0u); }
    load_pass(j0, tiles, ti, tl);        // first, so the weights are on their way while x loads
    float xsq = 0.0;
    vec4 xv[8];
    float xs[8];
    [[unroll]] for (uint m = 0; m < 8; m++) {
        xv[m] = input4(ti * 256u + 32u * m + tl, norm, xsq);
        xs[m] = dot(xv[m], vec4(1.0));
    }
    for (; j0 < pc.n_out; j0 += stride) {
        [[unroll]] for (uint r = 0; r < NS; r++) acc[r] = tile_dot_loaded(q[r], sc[r], xv, xs);
        load_pass(j0 + stride, tiles, ti, tl);
        store_pass(j0, min(NR, pc.n_out - j0), xsq, norm);
    }
}
#endif

void main() {
    if (active_rows(pc.rows_cap) == 0u) return;
#ifdef TILE_LAYOUT
    if (KEEP_X != 0u && WG_SIZE == TILE_THREADS * (pc.nb * QK / 1024u)) {
        main_keep_x((pc.flags & FLAG_NORM) != 0u);
        return;
    }
#endif
    uint tid = gl_LocalInvocationID.x;
    // groups of NR rows: this workgroup takes groups g, g + n_wg, ... (one group per workgroup on a
    // GPU; a CPU device gets fewer workgroups, which loop)
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR; j0 < pc.n_out; j0 += n_wg * NR) {
    uint nr = min(NR, pc.n_out - j0);
    bool norm = (pc.flags & FLAG_NORM) != 0u;
    for (uint r = 0; r < NS; r++) acc[r] = 0.0;
    float xsq = 0.0;
#ifdef TILE_LAYOUT
    // tile layouts (GPT4ALL_MATVEC=v3): TILE_THREADS threads share each 1024-weight tile of a row; thread
    // tl loads x vec4s 32 m + tl (m < 8: contiguous across threads) once for the NR rows, and one uvec4 of
    // quants and one of scales per row (tile_dot in the type's file).  WG_SIZE is a multiple of TILE_THREADS.
    uint tiles = pc.nb * QK / 1024u, tl = tid % TILE_THREADS;
    uint row_t0 = (pc.w_row0 + j0) * tiles;      // the group's first row's first tile
    for (uint ti = tid / TILE_THREADS; ti < tiles; ti += WG_SIZE / TILE_THREADS) {
        vec4 xv[8];
        float xs[8];
        [[unroll]] for (uint m = 0; m < 8; m++) {
            xv[m] = input4(ti * 256u + 32u * m + tl, norm, xsq);
            xs[m] = dot(xv[m], vec4(1.0));
        }
        [[unroll]] for (uint r = 0; r < NR; r++) {
            if (r < nr) {
                acc[r] += tile_dot(row_t0 + r * tiles + ti, tl, xv, xs);
#ifdef GLU
                acc[NR + r] += tile_dot(row_t0 + (pc.up_row_off + r) * tiles + ti, tl, xv, xs);
#endif
            }
        }
    }
#else
    uint upr = pc.nb * UPB;                      // units per row
    uint row_u0 = (pc.w_row0 + j0) * upr;        // first unit of the group's first row
#ifdef LANES
    // Q4_0, Q8_0: LANES threads per unit, each with 8 of its 32 weights (lane_dot in the type's file);
    // USE_LANES = 0 selects the unit-per-thread loop below instead (an A/B switch, GPT4ALL_MATVEC_LANES=0)
    uint lane = tid % LANES;
    if (USE_LANES != 0u)
    for (uint u = tid / LANES; u < upr; u += WG_SIZE / LANES) {
        vec4 xa = input4(u * 8u + LANE_XA(lane), norm, xsq), xb = input4(u * 8u + LANE_XB(lane), norm, xsq);
        float xsum = dot(xa + xb, vec4(1.0));
        for (uint r = 0; r < NR; r++) {
            if (r < nr) {
                acc[r] += lane_dot(row_u0 + r * upr + u, lane, xa, xb, xsum);
#ifdef GLU
                acc[NR + r] += lane_dot(row_u0 + (pc.up_row_off + r) * upr + u, lane, xa, xb, xsum);
#endif
            }
        }
    }
    else
#endif
    for (uint u = tid; u < upr; u += WG_SIZE) {
        vec4 xv[8];                              // x[32u .. 32u + 31], loaded once for NR rows
        for (uint m = 0; m < 8; m++) xv[m] = input4(u * 8u + m, norm, xsq);
        vec4 s4 = xv[0] + xv[1] + xv[2] + xv[3] + xv[4] + xv[5] + xv[6] + xv[7];
        float xsum = s4.x + s4.y + s4.z + s4.w;
        for (uint r = 0; r < NR; r++) {
            if (r < nr) {
                acc[r] += block_dot(row_u0 + r * upr + u, xv, xsum);
#ifdef GLU
                acc[NR + r] += block_dot(row_u0 + (pc.up_row_off + r) * upr + u, xv, xsum);
#endif
            }
        }
    }
#endif

    store_pass(j0, nr, xsq, norm);
    }
}
