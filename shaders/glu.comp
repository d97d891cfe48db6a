#version 450
// Ops.glu: out = act(gate) * up; -DGLU_SILU (SwiGLU) or -DGLU_GELU (GeGLU, tanh approximation).
#include "common.glsl"
#include "gelu.glsl"

layout(std430, binding = 1) readonly buffer G { float gate[]; };  // [rows, width]
layout(std430, binding = 2) readonly buffer U { float up[]; };    // [rows, width]
layout(std430, binding = 3) buffer O { float out_[]; };           // [rows, width]

layout(push_constant) uniform PC { uint width; uint rows_cap; } pc;

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= pc.width) return;
    FOR_ROWS(t, pc.rows_cap, y) {
    uint i = t * pc.width + k;
    float g = gate[i];
#ifdef GLU_SILU
    float act = silu(g);
#else
    float act = gelu_tanh(g);
#endif
    out_[i] = act * up[i];
    }
}
