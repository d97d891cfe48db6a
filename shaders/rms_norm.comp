#version 450
// Ops.rms_norm: each group of `group` values of a row is scaled to unit RMS, times weight[i].
// One workgroup per (group, row).  out may alias x: each thread reads its values before the
// reduction's barriers and writes them after.
// -DADD: Ops.add_rms_norm: first x += d (the residual stream, written back), then the norm of the
// new x into out, in one dispatch instead of an add and a norm.  group == width there.  out may
// alias d (each thread reads d[i] before the reduction and writes out[i] after, for the same i),
// not x.  Each thread re-reads the x values it wrote itself, so no barrier is needed between.
#include "common.glsl"

#ifdef ADD
layout(std430, binding = 1) buffer X { float x[]; };              // [rows, width]  x += d
#else
layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
#endif
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]
layout(std430, binding = 3) readonly buffer W { float w[]; };     // [group] f32 (if has_weight)
#ifdef ADD
layout(std430, binding = 4) readonly buffer D { float d[]; };     // [rows, width]
#endif

layout(push_constant) uniform PC { uint width; uint group; float eps; uint has_weight; uint rows_cap; } pc;

void main() {
    uint g = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    FOR_ROWS(t, pc.rows_cap, y) {
    uint base = t * pc.width + g * pc.group;
    float ss = 0.0;
    for (uint i = tid; i < pc.group; i += WG_SIZE) {
        float v = x[base + i];
#ifdef ADD
        v += d[base + i];
        x[base + i] = v;
#endif
        ss += v * v;
    }
    float inv = inversesqrt(wg_sum(ss) / float(pc.group) + pc.eps);
    for (uint i = tid; i < pc.group; i += WG_SIZE) {
        float v = x[base + i] * inv;
        out_[base + i] = pc.has_weight != 0u ? v * w[i] : v;
    }
    }
}
