// Q4_1: 32 weights = f16 d, f16 m, 16 bytes of nibbles; w = q * d + m.
// GGUF block is 20 bytes (already word aligned): word 0 = (d, m), words 1..4 = qs.
#define QK 32
#define BW 5
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    vec2 dm = unpackHalf2x16(data_a[base]);
    uint w0 = data_a[base + 1u + (j & 1u) * 2u];
    uint w1 = data_a[base + 2u + (j & 1u) * 2u];
    uvec4 sh = BYTE_SHIFTS + (j >> 1) * 4u;
    a = vec4((uvec4(w0) >> sh) & 0xFu) * dm.x + dm.y;
    b = vec4((uvec4(w1) >> sh) & 0xFu) * dm.x + dm.y;
}
