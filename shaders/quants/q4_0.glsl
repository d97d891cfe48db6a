// Q4_0: 32 weights = f16 d, 16 bytes of nibbles; w = (q - 8) * d.
// GGUF block is 18 bytes; repacked to 20: word 0 = d (low half, high half padding), words 1..4 = qs.
// Element i < 16 is the low nibble of qs[i], element i >= 16 the high nibble of qs[i - 16].
#define QK 32
#define BW 5
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    float d = unpackHalf2x16(data_a[base]).x;
    uint w0 = data_a[base + 1u + (j & 1u) * 2u];
    uint w1 = data_a[base + 2u + (j & 1u) * 2u];
    uvec4 sh = BYTE_SHIFTS + (j >> 1) * 4u;        // low nibbles for j < 2, high for j >= 2
    a = (vec4((uvec4(w0) >> sh) & 0xFu) - 8.0) * d;
    b = (vec4((uvec4(w1) >> sh) & 0xFu) - 8.0) * d;
}
