#version 450
// Ops.matmul: out[t, out_col0 + j] (+)= sum_k W[w_row0 + j, k] * x[t, k] (+ bias[w_row0 + j]).
// A workgroup takes NR output columns (weight rows) at a time; its threads split each row into chunks of
// 8 weights (dequant8), multiply by x and the NR (x NT) partial sums are reduced together
// (one reduction's barriers serve all of them; a workgroup is expensive on CPU drivers and
// each x chunk is loaded once for NR rows).
// Default build: mat-vec, one x row (decode).  -DBATCH: each workgroup also takes a tile of NT
// x rows, so each weight chunk is dequantised once for NT prompt rows.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, repacked blocks
layout(std430, binding = 2) readonly buffer X { float x[]; };          // [rows, x_stride]
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (FLAG_BIAS)

#include "matmul_pc.glsl"

#include "dequant.glsl"

#ifdef BATCH
#define NR 8                         // weight rows per pass (vulkan_ops.MATMUL_NR_BATCH)
#define NT 4                         // x rows per tile (vulkan_ops.MATMUL_NT)
#else
#define NR 16                        // weight rows per pass (vulkan_ops.MATMUL_NR)
#define NT 1
#endif
#define NV (NR * NT)

// partial sums: one slot per thread (portable) or per subgroup (USE_SUBGROUP)
shared float part[NV][WG_SIZE];

void main() {
    uint n_rows = active_rows(pc.rows_cap);
    uint tid = gl_LocalInvocationID.x;
    const uint CPB = QK / 8;                      // chunks of 8 per block
    uint n_chunks = pc.nb * CPB;
    // groups of NR weight rows: this workgroup takes groups g, g + n_groups, ... (the host launches
    // one workgroup per group on a GPU, fewer on a CPU device where a workgroup costs more)
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR; j0 < pc.n_out; j0 += n_wg * NR) {
    uint nr = min(NR, pc.n_out - j0);
    // tiles of NT x rows: this workgroup takes tiles z, z + groups_z, ...
    for (uint t0 = gl_WorkGroupID.z * NT; t0 < n_rows; t0 += gl_NumWorkGroups.z * NT) {
    uint nt = min(NT, n_rows - t0);

    float acc[NV];
    for (uint v = 0; v < NV; v++) acc[v] = 0.0;
    for (uint c = tid; c < n_chunks; c += WG_SIZE) {
        uint k0 = c * 8u;
        // this chunk's 8 x values of each row of the tile (zeros past the end of an odd width)
        vec4 xa[NT], xb[NT];
        for (uint t = 0; t < NT; t++) {
            uint xo = (t0 + t) * pc.x_stride + k0;
            if (t < nt && k0 + 8u <= pc.K) {
                xa[t] = vec4(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
                xb[t] = vec4(x[xo + 4u], x[xo + 5u], x[xo + 6u], x[xo + 7u]);
            } else {
                float v[8];
                for (uint i = 0; i < 8; i++) v[i] = (t < nt && k0 + i < pc.K) ? x[xo + i] : 0.0;
                xa[t] = vec4(v[0], v[1], v[2], v[3]);
                xb[t] = vec4(v[4], v[5], v[6], v[7]);
            }
        }
        for (uint r = 0; r < NR; r++) {
            if (r >= nr) break;
            vec4 wa, wb;
            dequant8v(((pc.w_row0 + j0 + r) * pc.nb + c / CPB) * BW, c % CPB, wa, wb);
            for (uint t = 0; t < NT; t++) acc[r * NT + t] += dot(wa, xa[t]) + dot(wb, xb[t]);
        }
    }

    // reduce the NV partial sums: each is summed by one thread after a single barrier (a tree
    // would cost log2(WG_SIZE) barriers per pass, and barriers dominate on CPU Vulkan devices)
    barrier();                                    // part[] of the previous pass is consumed
#ifdef USE_SUBGROUP
    for (uint v = 0; v < NV; v++) acc[v] = subgroupAdd(acc[v]);
    if (subgroupElect()) for (uint v = 0; v < NV; v++) part[v][gl_SubgroupID] = acc[v];
    uint n_part = gl_NumSubgroups;
#else
    for (uint v = 0; v < NV; v++) part[v][tid] = acc[v];
    uint n_part = WG_SIZE;
#endif
    barrier();
    for (uint v = tid; v < NV; v += WG_SIZE) {
        uint r = v / NT, t = v % NT;
        if (r < nr && t < nt) {
            float total = 0.0;
            for (uint i = 0; i < n_part; i++) total += part[v][i];
            if ((pc.flags & FLAG_BIAS) != 0u) total += bias[pc.bias_row0 + j0 + r];
            uint o = (t0 + t) * pc.out_stride + pc.out_col0 + j0 + r;
            out_[o] = (pc.flags & FLAG_ACC) != 0u ? out_[o] + total : total;
        }
    }
    }
    }
}
