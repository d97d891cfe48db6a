#version 450
// Ops.rope: rotate, in place, pairs of the first n_rot dims of each head of row t by
// angle p_t * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i], where p_t = pos + t, or
// p_t = positions[t] when has_pos (several sequences packed in one batch, each starting at 0).
// neox == 0 pairs (2i, 2i+1) (llama's GGUF layout); neox != 0 pairs (i, i + n_rot/2).
// to_cache (Ops.rope's cache): x is only read, and row t goes, rotated, to row pos + t of the cache
// (rope and store_kv in one dispatch); the dims past n_rot are then copied as they are.
// One thread per (pair, head) of a row: pairs i < n_rot/2 rotate, the others (to_cache only) copy.
#include "common.glsl"

layout(std430, binding = 1) buffer X { float x[]; };               // [rows, width]
layout(std430, binding = 2) readonly buffer F { float ff[]; };     // [n_rot/2] (if has_ff)
layout(std430, binding = 3) readonly buffer P { int positions[]; }; // [rows] (i32 [rows, 1], if has_pos)
layout(std430, binding = 4) writeonly buffer C { float cache[]; };  // [n_ctx, width] (if to_cache)

layout(push_constant) uniform PC {
    uint width; uint n_head; uint head_dim; uint n_rot;
    float freq_base; float freq_scale; uint neox; uint has_ff; uint rows_cap; uint has_pos; uint to_cache;
} pc;

const float TWO_PI = 6.283185307179586;

void main() {
    uint half_rot = pc.n_rot / 2u;
    uint n_pairs = pc.to_cache != 0u ? pc.head_dim / 2u : half_rot;    // per head
    uint idx = gl_GlobalInvocationID.x;
    if (idx >= pc.n_head * n_pairs) return;
    uint h = idx / n_pairs, i = idx % n_pairs;
    float inv_freq = pc.freq_scale * pow(pc.freq_base, -2.0 * float(min(i, half_rot)) / float(pc.n_rot));
    if (pc.has_ff != 0u && i < half_rot) inv_freq /= ff[i];
    FOR_ROWS(t, pc.rows_cap, y) {
    uint base = t * pc.width + h * pc.head_dim;
    uint dst = pc.to_cache != 0u ? (STEP_POS + t) * pc.width + h * pc.head_dim : base;
    if (i >= half_rot) {                         // past n_rot (to_cache only): copied, not rotated
        uint k = base + pc.n_rot + 2u * (i - half_rot);
        uint kd = dst + pc.n_rot + 2u * (i - half_rot);
        cache[kd] = x[k];
        cache[kd + 1u] = x[k + 1u];
        continue;
    }
    float p = pc.has_pos != 0u ? float(positions[t]) : float(STEP_POS + t);
    float angle = p * inv_freq;
    angle -= TWO_PI * floor(angle / TWO_PI);     // sin/cos are only accurate on a small range
    float c = cos(angle), s = sin(angle);
    uint o0 = pc.neox != 0u ? i : 2u * i;        // the pair's offsets inside the head
    uint o1 = pc.neox != 0u ? i + half_rot : 2u * i + 1u;
    float a = x[base + o0], b = x[base + o1];
    if (pc.to_cache != 0u) {
        cache[dst + o0] = a * c - b * s;
        cache[dst + o1] = a * s + b * c;
    } else {
        x[base + o0] = a * c - b * s;
        x[base + o1] = a * s + b * c;
    }
    }
}
