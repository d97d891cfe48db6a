#version 450
// Ops.matmul: out[t, out_col0 + j] = sum_k W[w_row0 + j, k] * x[t, k] (+ bias[w_row0 + j]).
// One workgroup per NR output columns (weight rows); its threads split each row into chunks of
// 8 weights (dequant8), multiply by x and the NR (x NT) partial sums are reduced together
// (one reduction's barriers serve all of them; a workgroup is expensive on CPU drivers and
// each x chunk is loaded once for NR rows).
// Default build: mat-vec, one x row (decode).  -DBATCH: each workgroup also takes a tile of NT
// x rows, so each weight chunk is dequantised once for NT prompt rows.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, repacked blocks
layout(std430, binding = 2) readonly buffer X { float x[]; };          // [rows, x_stride]
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (if has_bias)

layout(push_constant) uniform PC {
    uint K;          // weights per row (= x width used)
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

#include "dequant.glsl"

#define NR 4                         // weight rows per workgroup (vulkan_ops.MATMUL_NR)
#ifdef BATCH
#define NT 4                         // x rows per workgroup (vulkan_ops.MATMUL_NT)
#else
#define NT 1
#endif
#define NV (NR * NT)

#ifdef USE_SUBGROUP
shared float part[NV][WG_SIZE];      // one slot per subgroup used
#else
shared float part[NV][WG_SIZE];      // one slot per thread, tree-reduced
#endif

void main() {
    uint j0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * NR;
    uint n_rows = active_rows(pc.rows_cap);
    if (j0 >= pc.n_out) return;                   // whole workgroup leaves together
    uint tid = gl_LocalInvocationID.x;
    const uint CPB = QK / 8;                      // chunks of 8 per block
    uint n_chunks = pc.nb * CPB;
    uint nr = min(NR, pc.n_out - j0);
    // tiles of NT x rows: this workgroup takes tiles z, z + groups_z, ...
    for (uint t0 = gl_WorkGroupID.z * NT; t0 < n_rows; t0 += gl_NumWorkGroups.z * NT) {
    uint nt = min(NT, n_rows - t0);

    float acc[NV];
    for (uint v = 0; v < NV; v++) acc[v] = 0.0;
    for (uint c = tid; c < n_chunks; c += WG_SIZE) {
        uint k0 = c * 8u;
        uint kn = min(8u, pc.K - min(k0, pc.K));  // < 8 only in the last chunk of an odd width
        float xv[NT][8];
        for (uint t = 0; t < NT; t++) {
            for (uint i = 0; i < 8; i++) {
                xv[t][i] = (t < nt && i < kn) ? x[(t0 + t) * pc.x_stride + k0 + i] : 0.0;
            }
        }
        for (uint r = 0; r < NR; r++) {
            if (r >= nr) break;
            float w[8];
            dequant8(((pc.w_row0 + j0 + r) * pc.nb + c / CPB) * BW, c % CPB, w);
            for (uint t = 0; t < NT; t++) {
                float s = 0.0;
                for (uint i = 0; i < 8; i++) s += w[i] * xv[t][i];
                acc[r * NT + t] += s;
            }
        }
    }

#ifdef USE_SUBGROUP
    for (uint v = 0; v < NV; v++) acc[v] = subgroupAdd(acc[v]);
    barrier();                                    // part[] of the previous tile is consumed
    if (subgroupElect()) for (uint v = 0; v < NV; v++) part[v][gl_SubgroupID] = acc[v];
    barrier();
    for (uint v = tid; v < NV; v += WG_SIZE) {
        float total = 0.0;
        for (uint i = 0; i < gl_NumSubgroups; i++) total += part[v][i];
        part[v][0] = total;
    }
    barrier();
#else
    barrier();                                    // part[] of the previous tile is consumed
    for (uint v = 0; v < NV; v++) part[v][tid] = acc[v];
    barrier();
    for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (tid < s) for (uint v = 0; v < NV; v++) part[v][tid] += part[v][tid + s];
        barrier();
    }
#endif
    for (uint v = tid; v < NV; v += WG_SIZE) {
        uint r = v / NT, t = v % NT;
        if (r < nr && t < nt) {
            float b = pc.has_bias != 0u ? bias[pc.bias_row0 + j0 + r] : 0.0;
            out_[(t0 + t) * pc.out_stride + pc.out_col0 + j0 + r] = part[v][0] + b;
        }
    }
    }
}
