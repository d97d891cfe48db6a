#version 450
// Ops.rms_norm: each group of `group` values of a row is scaled to unit RMS, times weight[i].
// One workgroup per (group, row).  out may alias x: each thread reads its values before the
// reduction's barriers and writes them after.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]
layout(std430, binding = 3) readonly buffer W { float w[]; };     // [group] f32 (if has_weight)

layout(push_constant) uniform PC { uint width; uint group; float eps; uint has_weight; uint rows_cap; } pc;

void main() {
    uint g = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    FOR_ROWS(t, pc.rows_cap, y) {
    uint base = t * pc.width + g * pc.group;
    float ss = 0.0;
    for (uint i = tid; i < pc.group; i += WG_SIZE) { float v = x[base + i]; ss += v * v; }
    float inv = inversesqrt(wg_sum(ss) / float(pc.group) + pc.eps);
    for (uint i = tid; i < pc.group; i += WG_SIZE) {
        float v = x[base + i] * inv;
        out_[base + i] = pc.has_weight != 0u ? v * w[i] : v;
    }
    }
}
