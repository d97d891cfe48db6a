// F32: a "block" is 8 floats (rows are zero-padded to a multiple of 8 at upload).
#define QK 8
#define BW 8
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    a = uintBitsToFloat(uvec4(data_a[base], data_a[base + 1u], data_a[base + 2u], data_a[base + 3u]));
    b = uintBitsToFloat(uvec4(data_a[base + 4u], data_a[base + 5u], data_a[base + 6u], data_a[base + 7u]));
}
