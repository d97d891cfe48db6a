// F16: a "block" is 8 halves in 4 words (rows zero-padded to a multiple of 8 at upload).
#define QK 8
#define BW 4
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    a = vec4(unpackHalf2x16(data_a[base]), unpackHalf2x16(data_a[base + 1u]));
    b = vec4(unpackHalf2x16(data_a[base + 2u]), unpackHalf2x16(data_a[base + 3u]));
}
