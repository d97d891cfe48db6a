#version 450
// Ops.scale: out = x * s.  out may alias x.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]

layout(push_constant) uniform PC { uint width; uint rows_cap; float s; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= pc.width) return;
    FOR_ROWS(t, pc.rows_cap, y) {
    uint i = t * pc.width + k;
    out_[i] = x[i] * pc.s;
    }
}
