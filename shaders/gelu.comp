#version 450
// Ops.gelu: out = gelu(x), tanh approximation.
#include "common.glsl"
#include "gelu.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, width]

layout(push_constant) uniform PC { uint width; uint rows_cap; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= pc.width) return;
    FOR_ROWS(t, pc.rows_cap, y) {
    uint i = t * pc.width + k;
    out_[i] = gelu_tanh(x[i]);
    }
}
