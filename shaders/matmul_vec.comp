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
// -DROPE (with STACK; Ops.rope_qkv in the epilogue, decode only): the stack is q, k, v; q is written rotated,
// k and v as computed, and k rotated / v as it is to row pos (STEP_POS) of k_cache / v_cache: exactly
// matmul_stack followed by rope_qkv with neox = false, one dispatch and one barrier fewer per layer.
// The weight is in a split layout (shaders/quants/<type>_split.glsl): quants in 16-byte uvec4s,
// scales in their own array.  A row is cut into units of 32 weights (a Q4_0 / Q8_0 block, an eighth
// of a Q6_K block); thread tid takes units tid, tid + WG_SIZE, ... so adjacent threads read adjacent
// 16-byte quant vectors (coalesced, no padding).  A workgroup takes NR weight rows at a time and
// each thread loads its unit's 32 x values (8 vec4) once for all NR rows.
// NR and the workgroup size WG_SIZE are specialization constants (1 and 0), set by the host when it
// builds the pipeline (vulkan_ops.MatvecKernel, GPT4ALL_MATVEC=v2:NRxWG; per matrix, small ones get NR / 2 and
// tile rows no more threads than tiles: VulkanOps._matvec_nr, matvec_fit), so they are tuned per device
// without recompiling; the driver sees them as constants (loops over NR unroll).  The NR
// partial sums are reduced with subgroupAdd inside each subgroup (whatever size the device has) and one
// shared slot per subgroup (USE_SUBGROUP), or through shared memory (portable build).
// Batches (prompts) use matmul.comp -DBATCH, which reads the same layout through dequant8v.
#define WG_SPEC
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require     // [[unroll]]

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, split layout
layout(std430, binding = 1) readonly buffer A4 { uvec4 data_a4[]; };   // the same buffer, 16 bytes at a time
layout(std430, binding = 1) readonly buffer A2 { uvec2 data_a2[]; };   // and 8 (the tile layout's scales)
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };         // x row 0: [K / 4] vec4
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]; row 0 written
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (FLAG_BIAS)
layout(std430, binding = 5) readonly buffer G { vec4 g4[]; };          // [K / 4] f32 norm weight (FLAG_NORM)
#ifdef STACK
layout(std430, binding = 6) writeonly buffer O1 { float out1[]; };     // [out2_row - out1_row] (row 0)
layout(std430, binding = 7) writeonly buffer O2 { float out2[]; };     // [n_out - out2_row] (row 0)
#ifdef ROPE
layout(std430, binding = 8) writeonly buffer KC { float k_cache[]; };  // [n_ctx, out2_row - out1_row]
layout(std430, binding = 9) writeonly buffer VC { float v_cache[]; };  // [n_ctx, n_out - out2_row]
layout(std430, binding = 10) readonly buffer F { float ff[]; };        // [n_rot / 2] rope freq_factors (has_ff)
#endif
#endif

#include "matmul_pc.glsl"
#include "gelu.glsl"
#ifdef ROPE
#include "rope_rotation.glsl"
#endif

#define MATVEC
#include "dequant.glsl"
#ifndef SPLIT_LAYOUT
#error "matmul_vec.comp needs a split-layout type (DATA_A_<TYPE>_SPLIT)"
#endif
#define UPB (QK / 32)                            // units of 32 weights per block

layout(constant_id = 1) const uint NR = 4;   // weight rows per workgroup pass (vulkan_ops.MatvecKernel)
layout(constant_id = 2) const uint USE_LANES = 1;   // types with a lane kernel use it (WG_SIZE % LANES == 0)

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

#ifdef ROPE
// The pass's finished sums, one per row: the rotation pairs rows (2i, 2i + 1) of a head, whose sums different
// threads finish, so each thread reads its rows' partners here after a barrier.  Pairs never straddle two
// passes: q, k and v start at even rows of the stack and passes at multiples of NR, which the host fuses only
// when even (VulkanOps._rope_epilogue_fits)
shared float pass_sum[NR];

// Row j of the q/k/v stack (sum `total`, its pair partner row j ^ 1's sum `partner`) stored as matmul_stack then
// rope_qkv leave it: q rotated; k as computed, and rotated into k_cache row pos; v as computed, also to v_cache
// row pos.  Dims past n_rot in a head are not rotated (partial rotary).
void store_rope(uint j, float total, float partner) {
    uint pos = STEP_POS;                         // read at run time: the program is replayed every step
    if (j >= pc.out2_row) {
        uint c = j - pc.out2_row;
        out2[c] = total;
        v_cache[pos * (pc.n_out - pc.out2_row) + c] = total;
        return;
    }
    bool is_k = j >= pc.out1_row;
    uint c = is_k ? j - pc.out1_row : j;         // column of q or k
    uint d = c % pc.head_dim;                    // dim in its head
    float r = total;
    if (d < pc.n_rot) {
        uint i = d / 2u;                         // the pair (a, b) = (dim 2i, dim 2i + 1), as rope.comp rotates it
        vec2 cs = rope_rotation(i, float(pos), pc.n_rot, pc.freq_base, pc.freq_scale, pc.has_ff != 0u ? ff[i] : 1.0);
        r = (d & 1u) == 0u ? rotated(total, partner, cs).x : rotated(partner, total, cs).y;
    }
    if (is_k) {
        out1[c] = total;                         // rope_qkv leaves k itself unrotated
        k_cache[pos * (pc.out2_row - pc.out1_row) + c] = r;
    } else {
        out_[c] = r;
    }
}
#endif

// The end of a pass: the NS sums of rows j0 .. j0 + nr - 1, each thread holding its part (acc) and its part
// of x . x (xsq, FLAG_NORM), reduced over the workgroup and written out (act(gate) * up for GLU; the
// stack's rows to their outputs).  Called by every thread, in uniform control flow (barriers).
void store_pass(uint j0, uint nr, float xsq, bool norm) {
    uint tid = gl_LocalInvocationID.x;
    barrier();                                   // part[] of the previous pass is consumed
#ifdef USE_SUBGROUP
    [[unroll]] for (uint r = 0; r < NS; r++) acc[r] = subgroupAdd(acc[r]);
    xsq = subgroupAdd(xsq);
    if (subgroupElect()) {
        [[unroll]] for (uint r = 0; r < NS; r++) part[r][gl_SubgroupID] = acc[r];
        part[NS][gl_SubgroupID] = xsq;
    }
    uint n_part = gl_NumSubgroups;
#else
    [[unroll]] for (uint r = 0; r < NS; r++) part[r][tid] = acc[r];
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
        total = glu_act(total, pc.act) * up * rinv;
#endif
        if ((pc.flags & FLAG_BIAS) != 0u) total += bias[pc.bias_row0 + j0 + r];
#if defined(ROPE)
        pass_sum[r] = total;                     // stored below, once every row's partner is known
#elif defined(STACK)
        uint j = j0 + r;                         // the stack's row (no bias, no accumulate: the host checks)
        if (j >= pc.out2_row) out2[j - pc.out2_row] = total;
        else if (j >= pc.out1_row) out1[j - pc.out1_row] = total;
        else out_[j] = total;
#else
        uint o = pc.out_col0 + j0 + r;
        out_[o] = (pc.flags & FLAG_ACC) != 0u ? out_[o] + total : total;
#endif
    }
#ifdef ROPE
    barrier();                                   // pass_sum holds the pass's nr (even) sums
    for (uint r = tid; r < nr; r += WG_SIZE) store_rope(j0 + r, pass_sum[r], pass_sum[r ^ 1u]);
    // the next pass writes pass_sum only after store_pass's first two barriers: these reads come first
#endif
}

void main() {
    if (active_rows(pc.rows_cap) == 0u) return;
    uint tid = gl_LocalInvocationID.x;
    // groups of NR rows: this workgroup takes groups g, g + n_wg, ... (one group per workgroup on a
    // GPU; a CPU device gets fewer workgroups, which loop)
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR; j0 < pc.n_out; j0 += n_wg * NR) {
    uint nr = min(NR, pc.n_out - j0);
    bool norm = (pc.flags & FLAG_NORM) != 0u;
    [[unroll]] for (uint r = 0; r < NS; r++) acc[r] = 0.0;
    float xsq = 0.0;
#ifdef TILE_LAYOUT
    // tile layouts (GPT4ALL_MATVEC=v3): TILE_THREADS threads share each 1024-weight tile of a row; thread
    // tl loads x vec4s 64 p + 2 tl and 64 p + 2 tl + 1 (p < 4: the x of its quant word p) once for the NR rows,
    // and one uvec4 of quants and one uvec2 of scales per row: tile_dot in the type's file, x prescaled by
    // tile_x; with -DINT_DOT the x are rounded to 8-bit integers first (tile_x_int) and tile_dot_int multiplies
    // them by integer dot products.  WG_SIZE is a multiple of TILE_THREADS.
    uint tiles = pc.nb * QK / 1024u, tl = tid % TILE_THREADS;
    uint row_t0 = (pc.w_row0 + j0) * tiles;      // the group's first row's first tile
    for (uint ti = tid / TILE_THREADS; ti < tiles; ti += WG_SIZE / TILE_THREADS) {
        vec4 xv[8];
        [[unroll]] for (uint m = 0; m < 8; m++) xv[m] = input4(ti * 256u + 64u * (m / 2u) + 2u * tl + (m & 1u), norm, xsq);
#ifdef INT_DOT
        TileX xi = tile_x_int(xv);
#define TILE_DOT(tile) tile_dot_int(tile, tl, xi)
#else
        [[unroll]] for (uint m = 0; m < 8; m++) xv[m] = tile_x(m, xv[m]);
#define TILE_DOT(tile) tile_dot(tile, tl, xv)
#endif
        [[unroll]] for (uint r = 0; r < NR; r++) {
            if (r < nr) {
                acc[r] += TILE_DOT(row_t0 + r * tiles + ti);
#ifdef GLU
                acc[NR + r] += TILE_DOT(row_t0 + (pc.up_row_off + r) * tiles + ti);
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
        [[unroll]] for (uint r = 0; r < NR; r++) {
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
        [[unroll]] for (uint r = 0; r < NR; r++) {
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
