// Q8_0: 32 weights = f16 d, 32 int8; w = q * d.
// GGUF block is 34 bytes; repacked to 36: word 0 = d (+ padding), words 1..8 = qs.
#define QK 32
#define BW 9
void dequant8(uint base, uint j, out float v[8]) {
    float d = unpackHalf2x16(data_a[base]).x;
    uint w0 = data_a[base + 1u + 2u * j];
    uint w1 = data_a[base + 2u + 2u * j];
    for (uint i = 0; i < 4; i++) {
        v[i]     = float(byte_s(w0, i)) * d;
        v[i + 4] = float(byte_s(w1, i)) * d;
    }
}
