// F32: a "block" is 8 floats (rows are zero-padded to a multiple of 8 at upload).
#define QK 8
#define BW 8
void dequant8(uint base, uint j, out float v[8]) {
    for (uint i = 0; i < 8; i++) v[i] = uintBitsToFloat(data_a[base + i]);
}
