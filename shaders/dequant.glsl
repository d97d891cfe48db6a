// Per-type dequantisation, chosen by a define (-DDATA_A_Q4_0, ...), llama.cpp style.
//
// Every weight is stored as uint32 words (kp 0.9 enables no 8/16-bit storage feature).
// At upload (engine/backends/vulkan_ops.py: repack) each GGUF block is padded to a whole
// number of 32-bit words so every field is word aligned.  Each type defines
//   QK  - elements per block,   BW - 32-bit words per (repacked) block,
//   void dequant8v(uint base, uint j, out vec4 a, out vec4 b)
//       - elements 8j .. 8j+3 (a) and 8j+4 .. 8j+7 (b) of the block whose first word is data_a[base],
//         unpacked four bytes at a time with vector shifts (BYTE_SHIFTS).
// dequant8 below is the same as an array, for the shaders that index values one by one.
// The including shader declares `uint data_a[]` before including this file.
// The split layouts (DATA_A_Q4_0_SPLIT, DATA_A_Q8_0_SPLIT, DATA_A_Q4_K_SPLIT, DATA_A_Q6_K_SPLIT; GPT4ALL_MATVEC=v2) keep the quants of each
// block in 16-byte vectors and the f16 scales in their own array, unpadded (quants/<type>_split.glsl);
// dequant8v reads them too, and with -DMATVEC they add block_dot for shaders/matmul_vec.comp.
// DATA_A_Q4_0_TILE (GPT4ALL_MATVEC=v3, rows of whole 1024-weight tiles) permutes each tile's weights
// so the mat-vec loads 16 bytes per thread, each word 8 weights of one block as integer dot products want
// them (quants/q4_0_tile.glsl: tile_dot, tile_dot_int).

// Byte b (0..3) of a word, as unsigned / signed.
uint  byte_u(uint w, uint b) { return (w >> (8u * b)) & 0xFFu; }
int   byte_s(uint w, uint b) { return int(w << (24u - 8u * b)) >> 24; }
// Byte at byte offset `off` from word `base`.
uint  byte_at(uint base, uint off) { return byte_u(data_a[base + (off >> 2)], off & 3u); }
// Shift of each byte of a word: (uvec4(w) >> BYTE_SHIFTS) & 0xFF are its four bytes.
const uvec4 BYTE_SHIFTS = uvec4(0u, 8u, 16u, 24u);

#if defined(DATA_A_F32)
#include "quants/f32.glsl"
#elif defined(DATA_A_F16)
#include "quants/f16.glsl"
#elif defined(DATA_A_Q4_0)
#include "quants/q4_0.glsl"
#elif defined(DATA_A_Q4_0_SPLIT)
#include "quants/q4_0_split.glsl"
#elif defined(DATA_A_Q4_0_TILE)
#include "quants/q4_0_tile.glsl"
#elif defined(DATA_A_Q8_0_SPLIT)
#include "quants/q8_0_split.glsl"
#elif defined(DATA_A_Q4_K_SPLIT)
#include "quants/q4_k_split.glsl"
#elif defined(DATA_A_Q6_K_SPLIT)
#include "quants/q6_k_split.glsl"
#elif defined(DATA_A_Q4_1)
#include "quants/q4_1.glsl"
#elif defined(DATA_A_Q5_0)
#include "quants/q5_0.glsl"
#elif defined(DATA_A_Q8_0)
#include "quants/q8_0.glsl"
#elif defined(DATA_A_Q4_K)
#include "quants/q4_k.glsl"
#elif defined(DATA_A_Q6_K)
#include "quants/q6_k.glsl"
#else
#error "define one DATA_A_<type>"
#endif

void dequant8(uint base, uint j, out float v[8]) {
    vec4 a, b;
    dequant8v(base, j, a, b);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
