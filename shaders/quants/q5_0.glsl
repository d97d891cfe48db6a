// Q5_0: 32 weights = f16 d, 32 high bits qh, 16 bytes of low nibbles; w = (q - 16) * d,
// q = nibble | (bit i of qh) << 4.  GGUF block is 22 bytes; repacked to 24:
// word 0 = d (+ padding), word 1 = qh, words 2..5 = qs.
#define QK 32
#define BW 6
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    float d = unpackHalf2x16(data_a[base]).x;
    uint qh = data_a[base + 1u];
    uint w0 = data_a[base + 2u + (j & 1u) * 2u];
    uint w1 = data_a[base + 3u + (j & 1u) * 2u];
    uvec4 sh = BYTE_SHIFTS + (j >> 1) * 4u;
    uvec4 e = uvec4(0u, 1u, 2u, 3u) + 8u * j;      // element indices of a; b's are e + 4
    a = (vec4(((uvec4(w0) >> sh) & 0xFu) | (((uvec4(qh) >> e) & 1u) << 4)) - 16.0) * d;
    b = (vec4(((uvec4(w1) >> sh) & 0xFu) | (((uvec4(qh) >> (e + 4u)) & 1u) << 4)) - 16.0) * d;
}
