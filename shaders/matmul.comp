#version 450
// Ops.matmul: out[t, out_col0 + j] = sum_k W[w_row0 + j, k] * x[t, k] (+ bias[w_row0 + j]).
// One workgroup per output column j (a weight row); its threads split the row into chunks of
// 8 weights (dequant8), multiply by x and reduce in shared memory.
// Default build: mat-vec, one x row at a time (decode).  -DBATCH: each workgroup also takes a
// tile of NT x rows, so each weight chunk is dequantised once for NT prompt rows.
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

#ifdef BATCH
#define NT 8
#else
#define NT 1
#endif

void main() {
    uint j = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint t0 = gl_WorkGroupID.z * NT;
    uint n_rows = active_rows(pc.rows_cap);
    if (j >= pc.n_out || t0 >= n_rows) return;   // whole workgroup leaves together
    uint tid = gl_LocalInvocationID.x;
    uint row_base = (pc.w_row0 + j) * pc.nb * BW;
    const uint CPB = QK / 8;                     // chunks of 8 per block
    uint n_chunks = pc.nb * CPB;

    float acc[NT];
    for (uint t = 0; t < NT; t++) acc[t] = 0.0;
    for (uint c = tid; c < n_chunks; c += WG_SIZE) {
        float w[8];
        dequant8(row_base + (c / CPB) * BW, c % CPB, w);
        uint k0 = c * 8u;
        for (uint t = 0; t < NT; t++) {
            if (t0 + t >= n_rows) break;
            uint xb = (t0 + t) * pc.x_stride + k0;
            float s = 0.0;
            if (k0 + 8u <= pc.K) {
                for (uint i = 0; i < 8; i++) s += w[i] * x[xb + i];
            } else {                              // last, partial chunk of an odd-width row
                for (uint i = 0; k0 + i < pc.K; i++) s += w[i] * x[xb + i];
            }
            acc[t] += s;
        }
    }
    float b = pc.has_bias != 0u ? bias[pc.bias_row0 + j] : 0.0;
    for (uint t = 0; t < NT; t++) {
        float total = wg_sum(acc[t]);            // uniform control flow: every thread calls it
        if (tid == 0u && t0 + t < n_rows) out_[(t0 + t) * pc.out_stride + pc.out_col0 + j] = total + b;
    }
}
