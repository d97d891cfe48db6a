#version 450
// Weight upload, not an op: a Q4_0 chunk from the split layout (shaders/quants/q4_0_split.glsl) to the
// tile layout (shaders/quants/q4_0_tile.glsl), on the device.  The same permutation as
// vulkan_ops.repack_tile (NumPy; the tests check the two agree), done here because for an 8B model the
// host's nibble shuffling took ~20 s of the load.  One thread per output uvec4: first the quants
// (tile i, thread t: word p = elements 8 j .. 8 j + 7, j = t % 4, of block 32 i + 8 p + t / 4, byte k holding
// element 8 j + k in its low nibble and 8 j + 4 + k in its high one), then the scales (tile i, a uvec4 per two
// thread groups g: the f16 d of blocks 32 i + 8 p + g, p = 0..3, two uvec2s).
// No step buffer: bindings 0 and 1 are the two chunks.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer S { uint src[]; };   // split layout: [4 header][n x 4 quant words][n / 2 scale words]
layout(std430, binding = 1) writeonly buffer D { uint dst[]; };  // tile layout, as many words

layout(push_constant) uniform PC { uint n_blocks; } pc;           // blocks in the chunk (a multiple of 32)

const uint LOW = 0x0F0F0F0Fu;

uint scale_bits(uint blk, uint scale0) { return (src[scale0 + (blk >> 1u)] >> (16u * (blk & 1u))) & 0xFFFFu; }

// Elements 8j .. 8j + 7 of a block whose quant words (16 GGUF bytes: element e < 16 the low nibble of byte e,
// e >= 16 the high nibble of byte e - 16) start at src word w0, as one tile-layout word.
uint chunk8(uint w0, uint j) {
    uint a = src[w0 + 2u * (j & 1u)], b = src[w0 + 2u * (j & 1u) + 1u];
    return j < 2u ? (a & LOW) | ((b & LOW) << 4u) : ((a >> 4u) & LOW) | (b & ~LOW);
}

void main() {
    uint id = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
    uint n_tiles = pc.n_blocks / 32u, scale0 = 4u + 4u * pc.n_blocks;    // the scales start at the same word
    if (id == 0u) { dst[0] = scale0; dst[1] = 0u; dst[2] = 0u; dst[3] = 0u; }
    if (id < 32u * n_tiles) {                      // quants of tile id / 32, thread id % 32
        uint tile = id / 32u, t = id % 32u;
        for (uint p = 0; p < 4u; p++) dst[4u + 4u * id + p] = chunk8(4u + 4u * (32u * tile + 8u * p + t / 4u), t % 4u);
    } else if (id < 36u * n_tiles) {               // scales of tile s / 4, groups g = 2 (s % 4), + 1
        uint s = id - 32u * n_tiles, tile = s / 4u;
        for (uint k = 0; k < 4u; k++) {
            uint g = 2u * (s % 4u) + k / 2u, b0 = 32u * tile + 8u * (2u * (k % 2u)) + g;   // p = 2 (k % 2), + 1
            dst[scale0 + 4u * s + k] = scale_bits(b0, scale0) | (scale_bits(b0 + 8u, scale0) << 16u);
        }
    }
}
