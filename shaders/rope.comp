#version 450
// Ops.rope: rotate, in place, pairs of the first n_rot dims of each head of row t by
// angle p_t * freq_scale * freq_base^(-2i/n_rot) / freq_factors[i], where p_t = pos + t, or
// p_t = positions[t] when has_pos (several sequences packed in one batch, each starting at 0).
// neox == 0 pairs (2i, 2i+1) (llama's GGUF layout); neox != 0 pairs (i, i + n_rot/2).
// to_cache (Ops.rope's cache): x is only read, and row t goes, rotated, to row pos + t of the cache
// (rope and store_kv in one dispatch); the dims past n_rot are then copied as they are.
// One thread per (pair, head) of a row: pairs i < n_rot/2 rotate, the others (to_cache only) copy.
// -DQKV (Ops.rope_qkv): one dispatch for a decoder layer's three: x is k (to_cache, as above), q
// (binding 5) is rotated in place, v (binding 6) is copied to v_cache (binding 7), a pair per thread;
// the threads are laid out q pairs, then k pairs, then v pairs.
#include "common.glsl"

layout(std430, binding = 1) buffer X { float x[]; };               // [rows, width]
layout(std430, binding = 2) readonly buffer F { float ff[]; };     // [n_rot/2] (if has_ff)
layout(std430, binding = 3) readonly buffer P { int positions[]; }; // [rows] (i32 [rows, 1], if has_pos)
layout(std430, binding = 4) writeonly buffer C { float cache[]; };  // [n_ctx, width] (if to_cache)
#ifdef QKV
layout(std430, binding = 5) buffer Q { float q[]; };                // [rows, n_q_head * head_dim]
layout(std430, binding = 6) readonly buffer V { float v[]; };       // [rows, width]
layout(std430, binding = 7) writeonly buffer VC { float v_cache[]; }; // [n_ctx, width]
#endif

layout(push_constant) uniform PC {
    uint width; uint n_head; uint head_dim; uint n_rot;
    float freq_base; float freq_scale; uint neox; uint has_ff; uint rows_cap; uint has_pos; uint to_cache;
    uint n_q_head;      // -DQKV: q's heads (n_head is k's)
} pc;

#include "rope_rotation.glsl"

// The rotation of pair i (< n_rot/2) at position p: (cos, sin).
vec2 rotation(uint i, float p) {
    return rope_rotation(i, p, pc.n_rot, pc.freq_base, pc.freq_scale, pc.has_ff != 0u ? ff[i] : 1.0);
}

// Offsets of pair i inside a head.
uvec2 pair_offsets(uint i) {
    uint half_rot = pc.n_rot / 2u;
    return pc.neox != 0u ? uvec2(i, i + half_rot) : uvec2(2u * i, 2u * i + 1u);
}

float position(uint t) { return pc.has_pos != 0u ? float(positions[t]) : float(STEP_POS + t); }

void main() {
    uint half_rot = pc.n_rot / 2u;
    uint n_pairs = pc.to_cache != 0u ? pc.head_dim / 2u : half_rot;    // per head of x
    uint idx = gl_GlobalInvocationID.x;
#ifdef QKV
    uint n_q = pc.n_q_head * half_rot;           // q's threads come first, rotating q in place
    if (idx < n_q) {
        uint h = idx / half_rot, i = idx % half_rot;
        uvec2 o = pair_offsets(i) + h * pc.head_dim;
        FOR_ROWS(t, pc.rows_cap, y) {
            vec2 cs = rotation(i, position(t));
            uint base = t * pc.n_q_head * pc.head_dim;
            vec2 r = rotated(q[base + o.x], q[base + o.y], cs);
            q[base + o.x] = r.x;
            q[base + o.y] = r.y;
        }
        return;
    }
    idx -= n_q;
    uint n_k = pc.n_head * n_pairs;
    if (idx >= n_k) {                            // v's threads: a pair of values each, to the cache
        uint e = 2u * (idx - n_k);
        if (e >= pc.width) return;
        FOR_ROWS(t, pc.rows_cap, y) {
            uint dst = (STEP_POS + t) * pc.width + e;
            v_cache[dst] = v[t * pc.width + e];
            v_cache[dst + 1u] = v[t * pc.width + e + 1u];
        }
        return;
    }
#endif
    if (idx >= pc.n_head * n_pairs) return;
    uint h = idx / n_pairs, i = idx % n_pairs;
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
    vec2 cs = rotation(i, position(t));
    uvec2 o = pair_offsets(i);
    vec2 r = rotated(x[base + o.x], x[base + o.y], cs);
    if (pc.to_cache != 0u) {
        cache[dst + o.x] = r.x;
        cache[dst + o.y] = r.y;
    } else {
        x[base + o.x] = r.x;
        x[base + o.y] = r.y;
    }
    }
}
