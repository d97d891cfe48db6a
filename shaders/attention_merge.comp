#version 450
// Ops.attention, second half of the split (flash-decoding) path: combine the n_split slices'
// (max m, sum l, unnormalised acc) of each (row, head): out = sum_z acc_z e^(m_z - M) / sum_z l_z e^(m_z - M),
// M = max_z m_z.  Empty slices (l = 0, m = -inf) weigh nothing.  One thread per output dim.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer P { float part[]; };  // [rows, n_head, n_split, 2 + head_dim]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, n_head * head_dim]

layout(push_constant) uniform PC { uint n_head; uint head_dim; uint n_split; uint rows_cap; } pc;

void main() {
    uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    FOR_ROWS(t, pc.rows_cap, y) {
        uint base = (t * pc.n_head + h) * pc.n_split * (2u + pc.head_dim);
        float M = -1.0 / 0.0;
        for (uint z = 0; z < pc.n_split; z++) {
            if (part[base + z * (2u + pc.head_dim) + 1u] > 0.0) M = max(M, part[base + z * (2u + pc.head_dim)]);
        }
        float L = 0.0;
        for (uint z = 0; z < pc.n_split; z++) {
            uint pb = base + z * (2u + pc.head_dim);
            if (part[pb + 1u] > 0.0) L += part[pb + 1u] * exp(part[pb] - M);
        }
        for (uint d = tid; d < pc.head_dim; d += WG_SIZE) {
            float o = 0.0;
            for (uint z = 0; z < pc.n_split; z++) {
                uint pb = base + z * (2u + pc.head_dim);
                if (part[pb + 1u] > 0.0) o += part[pb + 2u + d] * exp(part[pb] - M);
            }
            out_[t * pc.n_head * pc.head_dim + h * pc.head_dim + d] = o / L;
        }
    }
}
