#version 450
// Ops.layer_norm: row-wise (x - mean) / sqrt(var + eps) * weight + bias.  One workgroup per row.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]
layout(std430, binding = 3) readonly buffer W { float w[]; };     // [width] f32 (if has_weight)
layout(std430, binding = 4) readonly buffer B { float b[]; };     // [width] f32 (if has_bias)

layout(push_constant) uniform PC { uint width; float eps; uint has_weight; uint has_bias; uint rows_cap; } pc;

void main() {
    uint tid = gl_LocalInvocationID.x;
    FOR_ROWS(t, pc.rows_cap, x) {
    uint base = t * pc.width;
    float s = 0.0;
    for (uint i = tid; i < pc.width; i += WG_SIZE) s += x[base + i];
    float mean = wg_sum(s) / float(pc.width);
    float ss = 0.0;                                   // two passes: no cancellation in the variance
    for (uint i = tid; i < pc.width; i += WG_SIZE) { float d = x[base + i] - mean; ss += d * d; }
    float inv = inversesqrt(wg_sum(ss) / float(pc.width) + pc.eps);
    for (uint i = tid; i < pc.width; i += WG_SIZE) {
        float v = (x[base + i] - mean) * inv;
        if (pc.has_weight != 0u) v *= w[i];
        if (pc.has_bias != 0u) v += b[i];
        out_[base + i] = v;
    }
    }
}
