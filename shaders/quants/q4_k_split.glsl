// Q4_K, split layout (the bandwidth mat-vec's, shaders/matmul_vec.comp; GPT4ALL_MATVEC=v2).
// 256 weights = f16 d, f16 dmin, 12 bytes of packed 6-bit (scale, min) for 8 sub-blocks of 32, 128
// bytes of nibbles; w = d * sc * q - dmin * m.  A weight chunk of n blocks is stored as
//   words 0..3               header: word 0 = index of the first meta word (4 + 32n)
//   words 4 + 32b .. +31     block b's 128 quant bytes: 8 uvec4s
//   words 4 + 32n + 4b ..    block b's meta: (d, dmin), then the 12 scale bytes: one uvec4
// so nothing is padded (144 bytes per block, as in GGUF).  Sub-block s (32 weights) uses quant
// bytes 32 (s / 2) .. + 31, low nibbles for even s, high for odd s.
#define QK 256
#define BW 32
#define SPLIT_LAYOUT

// byte i (0..11) of the packed scales, i.e. byte 4 + i of the meta vector
uint scale_byte(uvec4 meta, uint i) { return (meta[1u + i / 4u] >> (8u * (i & 3u))) & 0xFFu; }

// (d * scale, dmin * min) of sub-block s, from the block's meta
vec2 sub_block_dm(uvec4 meta, uint s) {
    vec2 dm = unpackHalf2x16(meta.x);
    uint sc, mn;
    if (s < 4u) {
        sc = scale_byte(meta, s) & 63u;
        mn = scale_byte(meta, s + 4u) & 63u;
    } else {
        sc = (scale_byte(meta, s + 4u) & 0xFu) | ((scale_byte(meta, s - 4u) >> 6) << 4);
        mn = (scale_byte(meta, s + 4u) >> 4) | ((scale_byte(meta, s) >> 6) << 4);
    }
    return vec2(dm.x * float(sc), dm.y * float(mn));
}

uvec4 block_meta(uint blk) {
    uint w = data_a[0] + 4u * blk;
    return uvec4(data_a[w], data_a[w + 1u], data_a[w + 2u], data_a[w + 3u]);
}

void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    uint e = 8u * j;
    uint g = e / 64u, hi = (e % 64u) / 32u, l = e % 32u;        // group of 64, nibble half, offset
    vec2 dm = sub_block_dm(block_meta(base / BW), 2u * g + hi);
    uint q0 = 4u + base + (32u * g + l) / 4u;                   // word of the first quant byte
    uvec4 sh = BYTE_SHIFTS + 4u * hi;
    a = vec4((uvec4(data_a[q0]) >> sh) & 0xFu) * dm.x - dm.y;
    b = vec4((uvec4(data_a[q0 + 1u]) >> sh) & 0xFu) * dm.x - dm.y;
}

#ifdef MATVEC
// sum_i w_i * x_i over unit u = sub-block u % 8 of block u / 8, xv[m] = x[4m .. 4m+3] of the unit and
// xsum their sum: sum (d sc q - dmin m) x = d sc (sum q x) - dmin m xsum.
float block_dot(uint u, vec4 xv[8], float xsum) {
    uint blk = u >> 3, s = u & 7u;
    uint v = 1u + 8u * blk + 2u * (s >> 1);                      // the sub-block's 2 quant uvec4s
    uvec4 q[2] = uvec4[2](data_a4[v], data_a4[v + 1u]);
    vec2 dm = sub_block_dm(data_a4[(data_a[0] >> 2) + blk], s);
    uvec4 sh = BYTE_SHIFTS + 4u * (s & 1u);
    float acc = 0.0;
    for (uint m = 0; m < 8; m++) acc += dot(vec4((uvec4(q[m >> 2][m & 3u]) >> sh) & 0xFu), xv[m]);
    return dm.x * acc - dm.y * xsum;
}
#endif
