#version 450
// Ops.copy_rows: out[0:n_rows] = x[r:r + n_rows], r = src_row, or n_tokens + src_row when negative
// (-1: the last real row, the only one that needs the LM head during a prompt).
#include "common.glsl"

layout(std430, binding = 1) readonly buffer X { float x[]; };     // [rows, width]
layout(std430, binding = 2) buffer O { float out_[]; };           // [n_rows.., width]

layout(push_constant) uniform PC { uint width; int src_row; uint n_rows; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x, i = gl_WorkGroupID.y;
    if (k >= pc.width || i >= pc.n_rows) return;
    int r = pc.src_row >= 0 ? pc.src_row : int(STEP_N_TOKENS) + pc.src_row;
    out_[i * pc.width + k] = x[(uint(r) + i) * pc.width + k];
}
