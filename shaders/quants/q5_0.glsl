// Q5_0: 32 weights = f16 d, 32 high bits qh, 16 bytes of low nibbles; w = (q - 16) * d,
// q = nibble | (bit i of qh) << 4.  GGUF block is 22 bytes; repacked to 24:
// word 0 = d (+ padding), word 1 = qh, words 2..5 = qs.
#define QK 32
#define BW 6
void dequant8(uint base, uint j, out float v[8]) {
    float d = unpackHalf2x16(data_a[base]).x;
    uint qh = data_a[base + 1u];
    uint w0 = data_a[base + 2u + (j & 1u) * 2u];
    uint w1 = data_a[base + 3u + (j & 1u) * 2u];
    uint sh = (j >> 1) * 4u;
    for (uint i = 0; i < 8; i++) {
        uint e = 8u * j + i;                               // element index in the block
        uint lo = (byte_u(i < 4u ? w0 : w1, i & 3u) >> sh) & 0xFu;
        uint hi = (qh >> e) & 1u;
        v[i] = (float(lo | (hi << 4)) - 16.0) * d;
    }
}
