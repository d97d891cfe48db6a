#version 450
// Ops.advance: feed the sampled token back on the device, so k decode steps fit in one submission:
// ids[0] = t; history[n_history] = t (or shift out the oldest when full); pos += n_tokens,
// n_tokens = 1, n_kv = pos + 1; n_history += 1 (all in the step buffer).
// Once the history is full (every step after repeat_last_n tokens) each step shifts it by one: the
// workgroup's threads move WG_SIZE entries at a time, each chunk read before any of it is written.  (One
// thread doing the shift alone made a chain of dependent loads and stores: ~22 us a token on an H100
// for a 64-entry history, 2% of a 1B token.)
#define STEP_WRITABLE
#include "common.glsl"

layout(std430, binding = 1) readonly buffer T { int tokens[]; };  // [slots, 1]
layout(std430, binding = 2) buffer I { int ids[]; };              // [rows, 1]
layout(std430, binding = 3) buffer H { int history[]; };          // [cap, 1]

layout(push_constant) uniform PC { uint slot; uint hist_cap; } pc;

void main() {
    uint tid = gl_LocalInvocationID.x;
    int t = tokens[pc.slot];
    uint nh = STEP_N_HISTORY;
    barrier();                                   // every thread has read n_history before it moves on
    if (nh < pc.hist_cap) {
        if (tid == 0u) {
            history[nh] = t;
            step_buf[3] = int(nh + 1u);
        }
    } else {
        // history[i] = history[i + 1]: chunk [base, base + WG_SIZE) reads entries up to base + WG_SIZE,
        // which the next chunk only writes after this one's barriers; nothing is read after another
        // thread wrote it, so the barriers only order reads before writes
        for (uint base = 0u; base + 1u < pc.hist_cap; base += WG_SIZE) {
            uint i = base + tid;
            int next = i + 1u < pc.hist_cap ? history[i + 1u] : 0;
            barrier();
            if (i + 1u < pc.hist_cap) history[i] = next;
            barrier();
        }
        if (tid == 0u) history[pc.hist_cap - 1u] = t;
    }
    if (tid == 0u) {
        ids[0] = t;
        int pos = step_buf[1] + step_buf[0];
        step_buf[1] = pos;
        step_buf[0] = 1;
        step_buf[2] = pos + 1;
    }
}
