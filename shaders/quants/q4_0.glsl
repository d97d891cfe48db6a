// Q4_0: 32 weights = f16 d, 16 bytes of nibbles; w = (q - 8) * d.
// GGUF block is 18 bytes; repacked to 20: word 0 = d (low half, high half padding), words 1..4 = qs.
// Element i < 16 is the low nibble of qs[i], element i >= 16 the high nibble of qs[i - 16].
#define QK 32
#define BW 5
void dequant8(uint base, uint j, out float v[8]) {
    float d = unpackHalf2x16(data_a[base]).x;
    uint w0 = data_a[base + 1u + (j & 1u) * 2u];
    uint w1 = data_a[base + 2u + (j & 1u) * 2u];
    uint sh = (j >> 1) * 4u;
    for (uint i = 0; i < 4; i++) {
        v[i]     = (float((byte_u(w0, i) >> sh) & 0xFu) - 8.0) * d;
        v[i + 4] = (float((byte_u(w1, i) >> sh) & 0xFu) - 8.0) * d;
    }
}
