#version 450
// Ops.attention, second half of the split (flash-decoding) path: combine the n_split slices'
// (max m, sum l, unnormalised acc) of each (row, head): out = sum_z acc_z e^(m_z - M) / sum_z l_z e^(m_z - M),
// M = max_z m_z.  Empty slices (l = 0, m = -inf) weigh nothing.  One workgroup per (head, row group).
// Latency, not bandwidth, bounds this (16 slices of one head are ~8 KiB): so every load is issued before
// anything waits on it.  The slices' (m, l) are loaded in one round (a thread per slice) into shared
// memory and turned into weights there; the acc loads do not depend on them and are unconditional.  (A
// version that looped over the slices reading m and l from memory inside each thread's loop, with
// branches on them, took ~8 us a layer on an H100, i.e. a chain of dependent L2 round trips.)  The first
// PRE slices' acc values of each thread's first dim are loaded before the (m, l) round even starts, so the
// two rounds of loads overlap instead of following each other.
#define WG_SIZE 128                // >= head_dim up to 128: one dim per thread
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require

#define MAX_SPLITS 1024            // vulkan_ops.ATTENTION_MAX_SPLITS
#define PRE 16                     // slices loaded early (vulkan_ops.ATTENTION_SPLITS)

layout(std430, binding = 1) readonly buffer P { float part[]; };  // [rows, n_head, n_split, 2 + head_dim]
layout(std430, binding = 2) buffer O { float out_[]; };           // [rows, n_head * head_dim]

layout(push_constant) uniform PC { uint n_head; uint head_dim; uint n_split; uint rows_cap; } pc;

shared float m_sh[MAX_SPLITS];     // slice z's max (-inf for an empty slice)
shared float w_sh[MAX_SPLITS];     // slice z's weight e^(m_z - M), 0 for an empty slice
shared float l_sh[MAX_SPLITS];     // slice z's sum

void main() {
    uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    uint zs = 2u + pc.head_dim;                          // part floats per slice
    FOR_ROWS(t, pc.rows_cap, y) {
        uint base = (t * pc.n_head + h) * pc.n_split * zs;
        float pre[PRE];                                  // acc of slices 0 .. PRE - 1 at dim tid
        [[unroll]] for (uint z = 0; z < PRE; z++)
            pre[z] = z < pc.n_split && tid < pc.head_dim ? part[base + z * zs + 2u + tid] : 0.0;
        barrier();                                       // the previous row's readers of the shared arrays are done
        for (uint z = tid; z < pc.n_split; z += WG_SIZE) {
            float m = part[base + z * zs], l = part[base + z * zs + 1u];
            m_sh[z] = l > 0.0 ? m : -1.0 / 0.0;
            l_sh[z] = l;
        }
        barrier();
        float M = -1.0 / 0.0;                            // every thread: a few shared reads
        for (uint z = 0; z < pc.n_split; z++) M = max(M, m_sh[z]);
        for (uint z = tid; z < pc.n_split; z += WG_SIZE) w_sh[z] = l_sh[z] > 0.0 ? exp(m_sh[z] - M) : 0.0;
        barrier();
        float L = 0.0;
        for (uint z = 0; z < pc.n_split; z++) L += l_sh[z] * w_sh[z];
        for (uint d = tid; d < pc.head_dim; d += WG_SIZE) {
            float o = 0.0;
            uint z0 = 0u;
            if (d == tid) {                              // the slices loaded early
                [[unroll]] for (uint z = 0; z < PRE; z++) if (z < pc.n_split) o += w_sh[z] * pre[z];
                z0 = min(uint(PRE), pc.n_split);
            }
            for (uint z = z0; z < pc.n_split; z++) o += w_sh[z] * part[base + z * zs + 2u + d];   // acc = 0 if empty
            out_[t * pc.n_head * pc.head_dim + h * pc.head_dim + d] = o / L;
        }
    }
}
