#version 450
// Ops.add: out = a + b element-wise over the active rows.  out may alias a or b.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { float a[]; };     // [rows, width]
layout(std430, binding = 2) readonly buffer B { float b[]; };     // [rows, width]
layout(std430, binding = 3) buffer O { float out_[]; };           // [rows, width]

layout(push_constant) uniform PC { uint width; uint rows_cap; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= pc.width) return;
    FOR_ROWS(t, pc.rows_cap, y) {
    uint i = t * pc.width + k;
    out_[i] = a[i] + b[i];
    }
}
