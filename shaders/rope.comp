#version 450
// Ops.rope: rotate, in place, pairs of the first n_rot dims of each head of row t by
// angle p_t * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i], where p_t = pos + t, or
// p_t = positions[t] when has_pos (several sequences packed in one batch, each starting at 0).
// neox == 0 pairs (2i, 2i+1) (llama's GGUF layout); neox != 0 pairs (i, i + n_rot/2).
// One thread per (pair, head) of a row.
#include "common.glsl"

layout(std430, binding = 1) buffer X { float x[]; };               // [rows, width]
layout(std430, binding = 2) readonly buffer F { float ff[]; };     // [n_rot/2] (if has_ff)
layout(std430, binding = 3) readonly buffer P { int positions[]; }; // [rows] (i32 [rows, 1], if has_pos)

layout(push_constant) uniform PC {
    uint width; uint n_head; uint head_dim; uint n_rot;
    float freq_base; float freq_scale; uint neox; uint has_ff; uint rows_cap; uint has_pos;
} pc;

const float TWO_PI = 6.283185307179586;

void main() {
    uint half_rot = pc.n_rot / 2u;
    uint idx = gl_GlobalInvocationID.x;
    if (idx >= pc.n_head * half_rot) return;
    uint h = idx / half_rot, i = idx % half_rot;
    float inv_freq = pc.freq_scale * pow(pc.freq_base, -2.0 * float(i) / float(pc.n_rot));
    if (pc.has_ff != 0u) inv_freq /= ff[i];
    FOR_ROWS(t, pc.rows_cap, y) {
    float p = pc.has_pos != 0u ? float(positions[t]) : float(STEP_POS + t);
    float angle = p * inv_freq;
    angle -= TWO_PI * floor(angle / TWO_PI);     // sin/cos are only accurate on a small range
    float c = cos(angle), s = sin(angle);
    uint base = t * pc.width + h * pc.head_dim;
    uint i0 = pc.neox != 0u ? base + i : base + 2u * i;
    uint i1 = pc.neox != 0u ? base + i + half_rot : base + 2u * i + 1u;
    float a = x[i0], b = x[i1];
    x[i0] = a * c - b * s;
    x[i1] = a * s + b * c;
    }
}
