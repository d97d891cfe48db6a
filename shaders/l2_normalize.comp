#version 450
// Ops.l2_normalize: out[r] = x[r] / max(||x[r]||, 1e-12) for r < n_rows.  One workgroup per row.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]

layout(push_constant) uniform PC { uint width; uint n_rows; } pc;

void main() {
    uint r = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    if (r >= pc.n_rows) return;
    uint base = r * pc.width;
    float ss = 0.0;
    for (uint i = tid; i < pc.width; i += WG_SIZE) ss += x[base + i] * x[base + i];
    float inv = 1.0 / max(sqrt(wg_sum(ss)), 1e-12);
    for (uint i = tid; i < pc.width; i += WG_SIZE) out_[base + i] = x[base + i] * inv;
}
