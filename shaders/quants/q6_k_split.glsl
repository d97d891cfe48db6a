// Q6_K, split layout (the bandwidth mat-vec's, shaders/matmul_vec.comp; GPT4ALL_MATVEC=v2).
// 256 weights = 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales, f16 d;
// w = d * scale * (q - 32).  A weight chunk of n blocks is stored as
//   words 0..3               header: word 0 = index of the first d word (4 + 52n)
//   words 4 + 52b .. +51     block b's ql (words 0..31), qh (32..47), scales (48..51): 13 uvec4s
//   words 4 + 52n ..         the n d's, f16, two per word (block b: half b & 1 of word b / 2)
// so nothing is padded (210 bytes per block, as in GGUF).  Each half of 128 weights uses 64 bytes of
// ql, 32 of qh, 8 scales; within a half, quarter k (32 weights) takes nibble k >= 2 ? high : low of
// ql[l + 32 (k & 1)] and bits 2k..2k+1 of qh[l], with scale 2k + l / 16 (l = 0..31).
#define QK 256
#define BW 52
#define SPLIT_LAYOUT

float block_scale(uint blk) { return unpackHalf2x16(data_a[data_a[0] + (blk >> 1)])[blk & 1u]; }

void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    uint q = 4u + base;                                      // first quant word of the block
    float d = block_scale(base / BW);
    uint e = 8u * j;
    uint n = e / 128u, k = (e % 128u) / 32u, l = e % 32u;
    uint ql0 = (64u * n + l + 32u * (k & 1u)) / 4u;         // word index of ql bytes
    uint qh0 = 32u + (32u * n + l) / 4u;
    uint si = 8u * n + l / 16u + 2u * k;                     // scale index
    float sc = float(byte_s(data_a[q + 48u + si / 4u], si & 3u)) * d;
    uvec4 shl = BYTE_SHIFTS + (k >> 1) * 4u;
    uvec4 shh = BYTE_SHIFTS + 2u * k;
    a = sc * (vec4(((uvec4(data_a[q + ql0]) >> shl) & 0xFu)
                   | (((uvec4(data_a[q + qh0]) >> shh) & 3u) << 4)) - 32.0);
    b = sc * (vec4(((uvec4(data_a[q + ql0 + 1u]) >> shl) & 0xFu)
                   | (((uvec4(data_a[q + qh0 + 1u]) >> shh) & 3u) << 4)) - 32.0);
}

#ifdef MATVEC
// sum_i w_i * x_i over unit u = 32 weights (quarter k of half n of block u / 8), xv[m] = x[4m .. 4m+3]
// of the unit.  Its quants are 2 uvec4 of ql and 2 of qh (the qh vectors are shared by the 4
// quarters of a half: the 4 threads that read them hit the same cache line).
float block_dot(uint u, vec4 xv[8], float xsum) {
    uint blk = u >> 3, n = (u >> 2) & 1u, k = u & 3u;
    uint v = 1u + 13u * blk;                                  // first uvec4 of the block (after the header)
    uvec4 ql[2] = uvec4[2](data_a4[v + 4u * n + 2u * (k & 1u)], data_a4[v + 4u * n + 2u * (k & 1u) + 1u]);
    uvec4 qh[2] = uvec4[2](data_a4[v + 8u + 2u * n], data_a4[v + 8u + 2u * n + 1u]);
    uint sw = data_a4[v + 12u][n * 2u + (k >> 1)];            // the word holding scales 8n + 2k, 8n + 2k + 1
    float sc0 = float(byte_s(sw, (2u * k) & 3u)), sc1 = float(byte_s(sw, (2u * k + 1u) & 3u));
    uvec4 shl = BYTE_SHIFTS + (k >> 1) * 4u, shh = BYTE_SHIFTS + 2u * k;
    float s0 = 0.0, s1 = 0.0;                                 // l < 16 (scale sc0), l >= 16 (sc1)
    for (uint m = 0; m < 8; m++) {
        uint wl = ql[m >> 2][m & 3u], wh = qh[m >> 2][m & 3u];
        vec4 q = vec4(((uvec4(wl) >> shl) & 0xFu) | (((uvec4(wh) >> shh) & 3u) << 4)) - 32.0;
        if (m < 4) s0 += dot(q, xv[m]); else s1 += dot(q, xv[m]);
    }
    return block_scale(blk) * (sc0 * s0 + sc1 * s1);
}
#endif
