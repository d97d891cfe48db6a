#version 450
// Ops.get_rows: out[t, :] = dequant(table[ids[t], :]) for the ids inside this table chunk
// (a table larger than maxStorageBufferRange is uploaded as row chunks, one dispatch each).
// One thread per 8 consecutive values of one output row.
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };   // table chunk, repacked
layout(std430, binding = 2) readonly buffer I { int ids[]; };       // [rows, 1]
layout(std430, binding = 3) buffer O { float out_[]; };             // [rows, K]

layout(push_constant) uniform PC {
    uint K;          // row width
    uint nb;         // blocks per row
    uint row_lo;     // global table rows [row_lo, row_hi) are in this chunk
    uint row_hi;
    uint rows_cap;
} pc;

#include "dequant.glsl"

void main() {
    uint c = gl_GlobalInvocationID.x;            // chunk of 8 within the row
    if (c * 8u >= pc.K) return;
    const uint CPB = QK / 8;
    FOR_ROWS(t, pc.rows_cap, y) {
        uint id = uint(ids[t]);
        if (id < pc.row_lo || id >= pc.row_hi) continue;
        float v[8];
        dequant8(((id - pc.row_lo) * pc.nb + c / CPB) * BW, c % CPB, v);
        for (uint i = 0; i < 8 && c * 8u + i < pc.K; i++) out_[t * pc.K + c * 8u + i] = v[i];
    }
}
