// F16: a "block" is 8 halves in 4 words (rows zero-padded to a multiple of 8 at upload).
#define QK 8
#define BW 4
void dequant8(uint base, uint j, out float v[8]) {
    for (uint i = 0; i < 4; i++) {
        vec2 h = unpackHalf2x16(data_a[base + i]);
        v[2 * i] = h.x; v[2 * i + 1] = h.y;
    }
}
