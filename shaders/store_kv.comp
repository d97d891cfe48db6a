#version 450
// Ops.store_kv: cache[pos + t, :] = src[t, :].  One thread per value.
#include "common.glsl"

layout(std430, binding = 1) buffer C { float cache[]; };          // [n_ctx, width]
layout(std430, binding = 2) readonly buffer S { float src[]; };   // [rows, width]

layout(push_constant) uniform PC { uint width; uint rows_cap; uint cache_rows; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= pc.width) return;
    FOR_ROWS(t, pc.rows_cap, y) {
        if (STEP_POS + t < pc.cache_rows) cache[(STEP_POS + t) * pc.width + k] = src[t * pc.width + k];
    }
}
