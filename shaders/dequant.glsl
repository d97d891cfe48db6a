// Per-type dequantisation, chosen by a define (-DDATA_A_Q4_0, ...), llama.cpp style.
//
// Every weight is stored as uint32 words (kp 0.9 enables no 8/16-bit storage feature).
// At upload (engine/backends/vulkan_ops.py: repack) each GGUF block is padded to a whole
// number of 32-bit words so every field is word aligned.  Each type defines
//   QK  - elements per block,   BW - 32-bit words per (repacked) block,
//   void dequant8(uint base, uint j, out float v[8])
//       - elements 8j .. 8j+7 of the block whose first word is data_a[base].
// The including shader declares `uint data_a[]` before including this file.

// Byte b (0..3) of a word, as unsigned / signed.
uint  byte_u(uint w, uint b) { return (w >> (8u * b)) & 0xFFu; }
int   byte_s(uint w, uint b) { return int(w << (24u - 8u * b)) >> 24; }
// Byte at byte offset `off` from word `base`.
uint  byte_at(uint base, uint off) { return byte_u(data_a[base + (off >> 2)], off & 3u); }

#if defined(DATA_A_F32)
#include "quants/f32.glsl"
#elif defined(DATA_A_F16)
#include "quants/f16.glsl"
#elif defined(DATA_A_Q4_0)
#include "quants/q4_0.glsl"
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
