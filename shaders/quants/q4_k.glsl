// Q4_K: 256 weights = f16 d, f16 dmin, 12 bytes of packed 6-bit (scale, min) for 8 sub-blocks
// of 32, 128 bytes of nibbles.  144 bytes, word aligned: word 0 = (d, dmin), words 1..3 = scales,
// words 4..35 = qs.  Each 64 weights use 32 bytes of qs: low nibbles for sub-block 2g,
// high nibbles for sub-block 2g + 1.  w = d * sc * q - dmin * m.
#define QK 256
#define BW 36
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    vec2 dm = unpackHalf2x16(data_a[base]);
    uint e = 8u * j;
    uint g = e / 64u;                 // group of 64
    uint hi = (e % 64u) / 32u;        // 0: low nibbles, 1: high nibbles
    uint l = e % 32u;
    uint sb = 2u * g + hi;            // sub-block 0..7
    // 6-bit scale and min of sub-block sb (12 bytes at byte offset 4)
    uint sc, mn;
    if (sb < 4u) {
        sc = byte_at(base, 4u + sb) & 63u;
        mn = byte_at(base, 4u + sb + 4u) & 63u;
    } else {
        sc = (byte_at(base, 4u + sb + 4u) & 0xFu) | ((byte_at(base, 4u + sb - 4u) >> 6) << 4);
        mn = (byte_at(base, 4u + sb + 4u) >> 4)   | ((byte_at(base, 4u + sb) >> 6) << 4);
    }
    float d = dm.x * float(sc);
    float m = dm.y * float(mn);
    uint q0 = 4u + (32u * g + l) / 4u;   // word of the first qs byte
    uvec4 sh = BYTE_SHIFTS + 4u * hi;
    a = vec4((uvec4(data_a[base + q0]) >> sh) & 0xFu) * d - m;
    b = vec4((uvec4(data_a[base + q0 + 1u]) >> sh) & 0xFu) * d - m;
}
