// Q6_K: 256 weights = 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales,
// f16 d.  GGUF block is 210 bytes; repacked to 212: words 0..31 ql, 32..47 qh, 48..51 scales,
// word 52 = d (+ padding).  Each half of 128 weights uses 64 bytes of ql, 32 of qh, 8 scales;
// within a half, quarter k (32 weights) takes ql[l + 32 (k & 1)] nibble (k >= 2 ? high : low)
// and bits 2k..2k+1 of qh[l].  w = d * scale * (q - 32).
#define QK 256
#define BW 53
void dequant8(uint base, uint j, out float v[8]) {
    float d = unpackHalf2x16(data_a[base + 52u]).x;
    uint e = 8u * j;
    uint n = e / 128u;
    uint k = (e % 128u) / 32u;
    uint l = e % 32u;
    uint ql0 = (64u * n + l + 32u * (k & 1u)) / 4u;          // word index of ql bytes
    uint qh0 = 32u + (32u * n + l) / 4u;
    float sc = float(byte_s(data_a[base + 48u + (8u * n + l / 16u + 2u * k) / 4u],
                            (8u * n + l / 16u + 2u * k) & 3u)) * d;
    uint shl = (k >> 1) * 4u;
    uint shh = 2u * k;
    for (uint i = 0; i < 8; i++) {
        uint lo = (byte_u(data_a[base + ql0 + i / 4u], i & 3u) >> shl) & 0xFu;
        uint hb = (byte_u(data_a[base + qh0 + i / 4u], i & 3u) >> shh) & 3u;
        v[i] = sc * (float(lo | (hb << 4)) - 32.0);
    }
}
