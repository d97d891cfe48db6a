// Q6_K: 256 weights = 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales,
// f16 d.  GGUF block is 210 bytes; repacked to 212: words 0..31 ql, 32..47 qh, 48..51 scales,
// word 52 = d (+ padding).  Each half of 128 weights uses 64 bytes of ql, 32 of qh, 8 scales;
// within a half, quarter k (32 weights) takes ql[l + 32 (k & 1)] nibble (k >= 2 ? high : low)
// and bits 2k..2k+1 of qh[l].  w = d * scale * (q - 32).
#define QK 256
#define BW 53
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    float d = unpackHalf2x16(data_a[base + 52u]).x;
    uint e = 8u * j;
    uint n = e / 128u;
    uint k = (e % 128u) / 32u;
    uint l = e % 32u;
    uint ql0 = (64u * n + l + 32u * (k & 1u)) / 4u;          // word index of ql bytes
    uint qh0 = 32u + (32u * n + l) / 4u;
    uint si = 8u * n + l / 16u + 2u * k;                      // scale index
    float sc = float(byte_s(data_a[base + 48u + si / 4u], si & 3u)) * d;
    uvec4 shl = BYTE_SHIFTS + (k >> 1) * 4u;
    uvec4 shh = BYTE_SHIFTS + 2u * k;
    a = sc * (vec4(((uvec4(data_a[base + ql0]) >> shl) & 0xFu)
                   | (((uvec4(data_a[base + qh0]) >> shh) & 3u) << 4)) - 32.0);
    b = sc * (vec4(((uvec4(data_a[base + ql0 + 1u]) >> shl) & 0xFu)
                   | (((uvec4(data_a[base + qh0 + 1u]) >> shh) & 3u) << 4)) - 32.0);
}
