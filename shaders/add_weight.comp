#version 450
// Ops.add_weight: out[t, k] = a[t, k] + w[0, k]  (a broadcast weight row, any weight type).
// One thread per 8 consecutive values of a row.  out may alias a.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };   // weight, repacked; row 0 used
layout(std430, binding = 2) readonly buffer X { float a[]; };       // [rows, K]
layout(std430, binding = 3) buffer O { float out_[]; };             // [rows, K]

layout(push_constant) uniform PC {
    uint K;
    uint rows_cap;
} pc;

#include "dequant.glsl"

void main() {
    uint c = gl_GlobalInvocationID.x;
    if (c * 8u >= pc.K) return;
    const uint CPB = QK / 8;
    float v[8];
    dequant8((c / CPB) * BW, c % CPB, v);
    FOR_ROWS(t, pc.rows_cap, y) {
    for (uint i = 0; i < 8 && c * 8u + i < pc.K; i++) {
        uint o = t * pc.K + c * 8u + i;
        out_[o] = a[o] + v[i];
    }
    }
}
