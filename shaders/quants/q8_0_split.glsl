// Q8_0, split layout (the bandwidth mat-vec's, shaders/matmul_vec.comp; GPT4ALL_MATVEC=v2).
// 32 weights = f16 d, 32 int8; w = q * d.  A weight chunk of n blocks is stored as
//   words 0..3             header: word 0 = index of the first scale word (4 + 8n)
//   words 4 + 8b .. +7     block b's 32 quant bytes: two uvec4, 16-byte aligned
//   words 4 + 8n ..        the n scales d, f16, two per word (block b: half b & 1 of word b / 2)
// so nothing is padded (34 bytes per block, as in GGUF, plus 16 bytes per chunk).
#define QK 32
#define BW 8
#define SPLIT_LAYOUT

float block_scale(uint blk) { return unpackHalf2x16(data_a[data_a[0] + (blk >> 1)])[blk & 1u]; }

const uvec4 SIGN_UP = uvec4(24u, 16u, 8u, 0u);     // move byte i to the top, then sign-extend down
vec4 int8x4(uint w) { return vec4(ivec4(uvec4(w) << SIGN_UP) >> 24); }

void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    float d = block_scale(base / BW);
    a = int8x4(data_a[4u + base + 2u * j]) * d;
    b = int8x4(data_a[5u + base + 2u * j]) * d;
}

#ifdef MATVEC
// sum_i w_i * x_i over block blk, with xv[m] = x[4m .. 4m+3] of the block (xsum unused: no offset)
float block_dot(uint blk, vec4 xv[8], float xsum) {
    uvec4 q0 = data_a4[1u + 2u * blk], q1 = data_a4[2u + 2u * blk];   // two 16-byte loads
    float s = 0.0;
    for (uint m = 0; m < 4; m++) s += dot(int8x4(q0[m]), xv[m]) + dot(int8x4(q1[m]), xv[4 + m]);
    return block_scale(blk) * s;
}

// The lane kernel (matmul_vec.comp, LANES): lane l of a block's LANES threads takes elements 8l..8l+7
// (quant words 2l, 2l + 1; x vec4s 2l, 2l + 1 of the block).
#define LANES 4u
#define LANE_XA(l) (2u * (l))
#define LANE_XB(l) (2u * (l) + 1u)
float lane_dot(uint blk, uint lane, vec4 xa, vec4 xb, float xsum) {
    uint w = 4u + 8u * blk + 2u * lane;
    return block_scale(blk) * (dot(int8x4(data_a[w]), xa) + dot(int8x4(data_a[w + 1u]), xb));
}
#endif
