// Q8_0: 32 weights = f16 d, 32 int8; w = q * d.
// GGUF block is 34 bytes; repacked to 36: word 0 = d (+ padding), words 1..8 = qs.
#define QK 32
#define BW 9
void dequant8v(uint base, uint j, out vec4 a, out vec4 b) {
    float d = unpackHalf2x16(data_a[base]).x;
    uvec4 up = uvec4(24u, 16u, 8u, 0u);            // move byte i to the top, then sign-extend down
    a = vec4(ivec4(uvec4(data_a[base + 1u + 2u * j]) << up) >> 24) * d;
    b = vec4(ivec4(uvec4(data_a[base + 2u + 2u * j]) << up) >> 24) * d;
}
