#version 450
// Ops.matmul, the decode mat-vec at memory bandwidth (GPT4ALL_MATVEC=v2; one x row, n_tokens <= 1):
//   out[out_col0 + j] = sum_k W[w_row0 + j, k] * x[k] (+ bias[bias_row0 + j])
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

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, split layout
layout(std430, binding = 1) readonly buffer A4 { uvec4 data_a4[]; };   // the same buffer, 16 bytes at a time
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };         // x row 0: [K / 4] vec4
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]; row 0 written
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (if has_bias)

layout(push_constant) uniform PC {       // as matmul.comp's, so the host passes the same values
    uint K;          // weights per row (a multiple of QK)
    uint nb;         // blocks per weight row
    uint w_row0;     // first weight row (inside this chunk)
    uint n_out;      // output columns computed by this dispatch
    uint out_col0;   // first output column
    uint x_stride;
    uint out_stride;
    uint has_bias;
    uint bias_row0;  // bias index of output column 0 (global weight row)
    uint rows_cap;   // capacity of x / out
} pc;

#define MATVEC
#include "dequant.glsl"
#ifndef SPLIT_LAYOUT
#error "matmul_vec.comp needs a split-layout type (DATA_A_<TYPE>_SPLIT)"
#endif
#define UPB (QK / 32)                            // units of 32 weights per block

layout(constant_id = 1) const uint NR = 4;   // weight rows per workgroup pass (vulkan_ops.MatvecKernel)

// partial sums: [r][subgroup id] (USE_SUBGROUP; WG_SIZE bounds the number of subgroups) or [r][thread]
shared float part[NR][WG_SIZE];

void main() {
    if (active_rows(pc.rows_cap) == 0u) return;
    uint tid = gl_LocalInvocationID.x;
    // groups of NR rows: this workgroup takes groups g, g + n_wg, ... (one group per workgroup on a
    // GPU; a CPU device gets fewer workgroups, which loop)
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR; j0 < pc.n_out; j0 += n_wg * NR) {
    uint nr = min(NR, pc.n_out - j0);
    uint upr = pc.nb * UPB;                      // units per row
    uint row_u0 = (pc.w_row0 + j0) * upr;        // first unit of the group's first row

    float acc[NR];
    for (uint r = 0; r < NR; r++) acc[r] = 0.0;
    for (uint u = tid; u < upr; u += WG_SIZE) {
        vec4 xv[8];                              // x[32u .. 32u + 31], loaded once for NR rows
        for (uint m = 0; m < 8; m++) xv[m] = x4[u * 8u + m];
        vec4 s4 = xv[0] + xv[1] + xv[2] + xv[3] + xv[4] + xv[5] + xv[6] + xv[7];
        float xsum = s4.x + s4.y + s4.z + s4.w;
        for (uint r = 0; r < NR; r++) {
            if (r < nr) acc[r] += block_dot(row_u0 + r * upr + u, xv, xsum);
        }
    }

    barrier();                                   // part[] of the previous pass is consumed
#ifdef USE_SUBGROUP
    for (uint r = 0; r < NR; r++) acc[r] = subgroupAdd(acc[r]);
    if (subgroupElect()) for (uint r = 0; r < NR; r++) part[r][gl_SubgroupID] = acc[r];
    uint n_part = gl_NumSubgroups;
#else
    for (uint r = 0; r < NR; r++) part[r][tid] = acc[r];
    uint n_part = WG_SIZE;
#endif
    barrier();
    for (uint r = tid; r < nr; r += WG_SIZE) {   // one thread per row (NR may exceed WG_SIZE)
        float total = 0.0;
        for (uint i = 0; i < n_part; i++) total += part[r][i];
        float bv = pc.has_bias != 0u ? bias[pc.bias_row0 + j0 + r] : 0.0;
        out_[pc.out_col0 + j0 + r] = total + bv;
    }
    }
}
