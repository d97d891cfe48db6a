#version 450
// Ops.rms_norm: each group of `group` values of a row is scaled to unit RMS, times weight[i].
// One workgroup per (group, row).  out may alias x: each thread reads its values before the
// reduction's barriers and writes them after.
// -DADD: Ops.add_rms_norm: first x += d (the residual stream, written back), then the norm of the
// new x into out, in one dispatch instead of an add and a norm.  group == width there.  out may
// alias d (each thread reads d[i] before the reduction and writes out[i] after, for the same i),
// not x.  Each thread re-reads the x values it wrote itself, so no barrier is needed between.
#extension GL_EXT_control_flow_attributes : require
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

#ifndef ADD
// Groups of up to WG_SIZE x MAXV vec4s (width and group multiples of 4: every prompt's pre-norm): each thread loads its
// vec4s all at once and keeps them for the second half, so a row costs one memory round trip instead of a loop of
// them (H100, Llama-3-8B prompt batches of 128 rows: the scalar loop below took ~29 us per norm, 5.8% of the batch).
#define MAXV 16
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };    // x, 16 bytes at a time
layout(std430, binding = 2) writeonly buffer O4 { vec4 out4[]; }; // out, likewise
layout(std430, binding = 3) readonly buffer W4 { vec4 w4[]; };    // w, likewise

bool norm_in_registers() {
    uint g = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    uint n4 = pc.group / 4u;
    if (pc.group % 4u != 0u || pc.width % 4u != 0u || n4 > WG_SIZE * MAXV) return false;   // (uniform)
    FOR_ROWS(t, pc.rows_cap, y) {
        uint base4 = (t * pc.width + g * pc.group) / 4u;
        vec4 v[MAXV];
        float ss = 0.0;
        [[unroll]] for (uint k = 0; k < MAXV; k++) {
            uint i = tid + k * WG_SIZE;
            v[k] = i < n4 ? x4[base4 + i] : vec4(0.0);
            ss += dot(v[k], v[k]);
        }
        float inv = inversesqrt(wg_sum(ss) / float(pc.group) + pc.eps);
        [[unroll]] for (uint k = 0; k < MAXV; k++) {
            uint i = tid + k * WG_SIZE;
            if (i < n4) out4[base4 + i] = pc.has_weight != 0u ? v[k] * inv * w4[i] : v[k] * inv;
        }
    }
    return true;
}
#endif

void main() {
    uint g = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
#ifndef ADD
    if (norm_in_registers()) return;
#endif
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
