// Q4_1: 32 weights = f16 d, f16 m, 16 bytes of nibbles; w = q * d + m.
// GGUF block is 20 bytes (already word aligned): word 0 = (d, m), words 1..4 = qs.
#define QK 32
#define BW 5
void dequant8(uint base, uint j, out float v[8]) {
    vec2 dm = unpackHalf2x16(data_a[base]);
    uint w0 = data_a[base + 1u + (j & 1u) * 2u];
    uint w1 = data_a[base + 2u + (j & 1u) * 2u];
    uint sh = (j >> 1) * 4u;
    for (uint i = 0; i < 4; i++) {
        v[i]     = float((byte_u(w0, i) >> sh) & 0xFu) * dm.x + dm.y;
        v[i + 4] = float((byte_u(w1, i) >> sh) & 0xFu) * dm.x + dm.y;
    }
}
