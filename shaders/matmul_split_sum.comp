#version 450
// The second half of a split-K batched matmul (matmul_tiled.comp with pc.k_split > 1): adds up the
// k_split partial sums of each output and stores it as the one-pass kernel would have,
//     out[t, out_col0 + j] (+)= sum_s part[s, t, j] (+ bias[bias_row0 + j])
// Same push constants as the matmul (matmul_pc.glsl); one thread per output column j, workgroups along
// y striding over the step's rows.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer P { float part[]; };       // [k_split, rows_cap, n_out]
layout(std430, binding = 2) buffer O { float out_[]; };                // [rows, out_stride]
layout(std430, binding = 3) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (FLAG_BIAS)

#include "matmul_pc.glsl"

void main() {
    uint j = gl_GlobalInvocationID.x;
    if (j >= pc.n_out) return;
    float b = (pc.flags & FLAG_BIAS) != 0u ? bias[pc.bias_row0 + j] : 0.0;
    FOR_ROWS(t, pc.rows_cap, y) {
        float s = b;
        for (uint i = 0; i < pc.k_split; i++) s += part[(i * pc.rows_cap + t) * pc.n_out + j];
        uint o = t * pc.out_stride + pc.out_col0 + j;
        out_[o] = (pc.flags & FLAG_ACC) != 0u ? out_[o] + s : s;
    }
}
