// Q4_0, split layout (the bandwidth mat-vec's, shaders/matmul_vec.comp; GPT4ALL_MATVEC=v2).
// 32 weights = f16 d, 16 bytes of nibbles; w = (q - 8) * d.  A weight chunk of n blocks is stored as
//   words 0..3             header: word 0 = index of the first scale word (4 + 4n)
//   words 4 + 4b .. +3     block b's 16 quant bytes: one uvec4, 16-byte aligned
//   words 4 + 4n ..        the n scales d, f16, two per word (block b: half b & 1 of word b / 2)
// so nothing is padded (18 bytes per block, as in GGUF, plus 16 bytes per chunk).
// Block b's `base` (what the generic kernels pass to dequant8v) is b * BW, BW = 4 quant words.
// Element i < 16 is the low nibble of byte i, element i >= 16 the high nibble of byte i - 16.
#define QK 32
#define BW 4
#define SPLIT_LAYOUT

float block_scale(uint blk) { return unpackHalf2x16(data_a[data_a[0] + (blk >> 1)])[blk & 1u]; }

void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    float d = block_scale(base / BW);
    uint w0 = data_a[4u + base + (j & 1u) * 2u];
    uint w1 = data_a[5u + base + (j & 1u) * 2u];
    uvec4 sh = BYTE_SHIFTS + (j >> 1) * 4u;        // low nibbles for j < 2, high for j >= 2
    a = (vec4((uvec4(w0) >> sh) & 0xFu) - 8.0) * d;
    b = (vec4((uvec4(w1) >> sh) & 0xFu) - 8.0) * d;
}

#ifdef MATVEC
// sum_i w_i * x_i over block blk (a unit of 32 weights), with xv[m] = x[4m .. 4m+3] of the block and xsum = sum of its x:
// sum (q - 8) d x = d (sum q x - 8 xsum), so the -8 costs one multiply per block, not per weight.
float block_dot(uint blk, vec4 xv[8], float xsum) {
    uvec4 q = data_a4[1u + blk];                   // one 16-byte load: the whole block's quants
    float s = 0.0;
    for (uint m = 0; m < 4; m++) {                 // word m: elements 4m..4m+3 (low), 16+4m.. (high)
        s += dot(vec4((uvec4(q[m]) >> BYTE_SHIFTS) & 0xFu), xv[m]);
        s += dot(vec4((uvec4(q[m]) >> (BYTE_SHIFTS + 4u)) & 0xFu), xv[4 + m]);
    }
    return block_scale(blk) * (s - 8.0 * xsum);
}

// The lane kernel (matmul_vec.comp, LANES): LANES threads share a block; lane l takes quant word l,
// whose low nibbles are elements 4l..4l+3 (x vec4 LANE_XA(l) of the block) and high nibbles 16+4l..
// (vec4 LANE_XB(l)).  A warp's loads of x and of quants are then contiguous (coalesced), where a whole
// block per thread made each x load instruction touch as many cache lines as there are threads.
#define LANES 4u
#define LANE_XA(l) (l)
#define LANE_XB(l) (4u + (l))
float lane_dot(uint blk, uint lane, vec4 xa, vec4 xb, float xsum) {
    uint q = data_a[4u + 4u * blk + lane];
    float s = dot(vec4((uvec4(q) >> BYTE_SHIFTS) & 0xFu), xa) + dot(vec4((uvec4(q) >> (BYTE_SHIFTS + 4u)) & 0xFu), xb);
    return block_scale(blk) * (s - 8.0 * xsum);
}
#endif
