#version 450
// Weight upload, not an op: a Q4_0 chunk from the split layout (shaders/quants/q4_0_split.glsl) to the
// tile layout (shaders/quants/q4_0_tile.glsl), on the device.  The same permutation as
// vulkan_ops.repack_tile (NumPy; the tests check the two agree), done here because for an 8B model the
// host's nibble shuffling took ~20 s of the load.  One thread per output uvec4: first the quants
// (tile i, thread t: 8 x 16 bits, part m = the four nibbles of block 32 i + 4 m + t / 8 that hold
// weights 4 (t % 8) .. + 3: the low nibbles of quant word t % 8 (t % 8 < 4) or the high nibbles of word
// t % 8 - 4), then the scales (tile i, group g: the f16 d of blocks 32 i + 4 m + g, m = 0..7).
// No step buffer: bindings 0 and 1 are the two chunks.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer S { uint src[]; };   // split layout: [4 header][n x 4 quant words][n / 2 scale words]
layout(std430, binding = 1) writeonly buffer D { uint dst[]; };  // tile layout, as many words

layout(push_constant) uniform PC { uint n_blocks; } pc;           // blocks in the chunk (a multiple of 32)

// The low nibbles of a word's four bytes, packed into 16 bits (byte k's at bits 4k..4k+3).
uint low_nibbles(uint w) { return (w & 0xFu) | ((w >> 4u) & 0xF0u) | ((w >> 8u) & 0xF00u) | ((w >> 12u) & 0xF000u); }

uint scale_bits(uint blk, uint scale0) { return (src[scale0 + (blk >> 1u)] >> (16u * (blk & 1u))) & 0xFFFFu; }

void main() {
    uint id = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
    uint n_tiles = pc.n_blocks / 32u, scale0 = 4u + 4u * pc.n_blocks;    // the scales start at the same word
    if (id == 0u) { dst[0] = scale0; dst[1] = 0u; dst[2] = 0u; dst[3] = 0u; }
    if (id < 32u * n_tiles) {                      // quants of tile id / 32, thread id % 32
        uint tile = id / 32u, t = id % 32u, g = t / 8u, tp = t % 8u;
        uint half_[8];
        for (uint m = 0; m < 8u; m++) {
            uint w = src[4u + 4u * (32u * tile + 4u * m + g) + (tp & 3u)];
            half_[m] = low_nibbles(tp < 4u ? w : w >> 4u);
        }
        for (uint k = 0; k < 4u; k++) dst[4u + 4u * id + k] = half_[2u * k] | (half_[2u * k + 1u] << 16u);
    } else if (id < 36u * n_tiles) {               // scales of tile s / 4, group s % 4
        uint s = id - 32u * n_tiles, tile = s / 4u, g = s % 4u;
        for (uint k = 0; k < 4u; k++) {
            uint b0 = 32u * tile + 4u * (2u * k) + g;   // part m = 2k in the low half, 2k + 1 in the high
            dst[scale0 + 4u * s + k] = scale_bits(b0, scale0) | (scale_bits(b0 + 4u, scale0) << 16u);
        }
    }
}
