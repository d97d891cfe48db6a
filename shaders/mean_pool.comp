#version 450
// Ops.mean_pool: out[s, :] = mean of x rows [seq_starts[s], seq_starts[s + 1]).
// One thread per (column, sequence).
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };       // [rows, width]
layout(std430, binding = 2) readonly buffer S { int starts[]; };    // [n_seqs + 1, 1]
layout(std430, binding = 3) buffer O { float out_[]; };             // [>= n_seqs, width]

layout(push_constant) uniform PC { uint width; uint n_seqs; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x, s = gl_WorkGroupID.y;
    if (k >= pc.width || s >= pc.n_seqs) return;
    uint r0 = uint(starts[s]), r1 = uint(starts[s + 1u]);
    float acc = 0.0;
    for (uint r = r0; r < r1; r++) acc += x[r * pc.width + k];
    out_[s * pc.width + k] = acc / float(r1 - r0);
}
