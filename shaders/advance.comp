#version 450
// Ops.advance: feed the sampled token back on the device, so k decode steps fit in one submission:
// ids[0] = t; history[n_history] = t (or shift out the oldest when full); pos += n_tokens,
// n_tokens = 1, n_kv = pos + 1; n_history += 1.  A single thread: it is a handful of stores.
#define STEP_WRITABLE
#define WG_SIZE 1
#include "common.glsl"
#include "sampling_buf.glsl"

layout(std430, binding = 2) readonly buffer T { int tokens[]; };  // [slots, 1]
layout(std430, binding = 3) buffer I { int ids[]; };              // [rows, 1]
layout(std430, binding = 4) buffer H { int history[]; };          // [cap, 1]

layout(push_constant) uniform PC { uint slot; uint hist_cap; } pc;

void main() {
    int t = tokens[pc.slot];
    ids[0] = t;
    uint nh = uint(samp[SAMPLE_N_HISTORY]);
    if (nh < pc.hist_cap) {
        history[nh] = t;
        samp[SAMPLE_N_HISTORY] = float(nh + 1u);
    } else {
        for (uint i = 0; i + 1u < pc.hist_cap; i++) history[i] = history[i + 1u];
        history[pc.hist_cap - 1u] = t;
    }
    int pos = step_buf[1] + step_buf[0];
    step_buf[1] = pos;
    step_buf[0] = 1;
    step_buf[2] = pos + 1;
}
