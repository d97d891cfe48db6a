#version 450
// Ops.softmax: row-wise softmax.  One workgroup per row.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]

layout(push_constant) uniform PC { uint width; uint rows_cap; } pc;

void main() {
    uint tid = gl_LocalInvocationID.x;
    FOR_ROWS(t, pc.rows_cap, x) {
    uint base = t * pc.width;
    float mx = -1.0 / 0.0;
    for (uint i = tid; i < pc.width; i += WG_SIZE) mx = max(mx, x[base + i]);
    mx = wg_max(mx);
    float s = 0.0;
    for (uint i = tid; i < pc.width; i += WG_SIZE) s += exp(x[base + i] - mx);
    float inv = 1.0 / wg_sum(s);
    for (uint i = tid; i < pc.width; i += WG_SIZE) out_[base + i] = exp(x[base + i] - mx) * inv;
    }
}
