// Q4_0, tile layout (GPT4ALL_MATVEC=v3: the decode mat-vec's, for rows of a multiple of 1024 weights).
// 32 weights = f16 d, 16 bytes of nibbles; w = (q - 8) * d (element i < 16: low nibble of byte i,
// i >= 16: high nibble of byte i - 16).  The split layout's idea (quants apart from scales, 16-byte
// loads) with the weights of every 32 consecutive blocks (a *tile*: 1024 weights, one row's 1024
// consecutive x values) permuted so that the 32 threads sharing a tile each load one uvec4 of quants
// and each quant word holds 8 consecutive weights of one block in the order integer dot products of
// four 8-bit lanes want them: word p (0..3) of thread t (0..31) holds weights 256 p + 8 t + i (i < 8) of
// the tile, i.e. elements 8 (t % 4) + i of block bt = 8 p + t / 4, with byte k's low nibble = element
// 8 (t % 4) + k and its high nibble = element 8 (t % 4) + 4 + k.  So `word & 0x0F0F0F0F` is four weights
// as four bytes and `(word >> 4) & 0x0F0F0F0F` the next four; their x values are x vec4s 64 p + 2 t and
// 64 p + 2 t + 1 of the tile (contiguous 32 bytes per thread and word).  A chunk of n blocks (n % 32 == 0):
//   words 0..3                  header: word 0 = index of the first scale word (4 + 4n)
//   uvec4 1 + 32 i + t          tile i, thread t: quant word p = weights 256 p + 8 t .. + 7
//   uvec2 (4 + 4n) / 2 + 8 i + g   tile i, the 4 scales threads 4g..4g+3 need: d of block 8 p + g as f16,
//                               word p / 2, half p % 2
// so nothing is padded (18 bytes per block, as in GGUF).  Rows must hold whole tiles (the host
// uses this layout only then), so tile i of a chunk is tile i % (K / 1024) of row i / (K / 1024).
// Block b's `base` (for dequant8v, which every other typed kernel reads through) is b * BW; its elements
// 8j .. 8j + 7 are exactly one quant word (tile b / 32, p = (b % 32) / 8, t = 4 (b % 8) + j).
#define QK 32
#define BW 4
#define SPLIT_LAYOUT
#define TILE_LAYOUT
#define TILE_THREADS 32u                         // threads per tile (a layout constant, not a subgroup size)

// dequant8v in two halves, which the coopmat GEMM (matmul_tiled.comp -DCOOPMAT) calls apart: fetch_raw8 issues
// the two loads of elements 8j..8j+7 of block base / BW (their quant word, the scale word holding their d) and
// returns the words as they are; decode_raw8 turns them into the 8 values later, so the loads of the next slab
// are in flight while the tensor cores multiply the current one (dequantising at load time made every thread
// wait for them first).  A zero raw triple decodes to zeros (its scale is 0).
#define HAS_RAW8
uvec3 fetch_raw8(uint base, uint j) {
    uint blk = base / BW, tile = blk >> 5u, bt = blk & 31u;
    uint p = bt >> 3u, g = bt & 7u;
    return uvec3(data_a[4u + 4u * (32u * tile + 4u * g + j) + p],              // quant word p of thread 4 g + j
                 data_a[data_a[0] + 16u * tile + 2u * g + (p >> 1u)], 0u);      // the scale word with its d
}
void decode_raw8(uvec3 raw, uint base, out vec4 a, out vec4 b) {
    uint p = ((base / BW) & 31u) >> 3u;
    float d = unpackHalf2x16(raw.y)[p & 1u];
    a = (vec4((uvec4(raw.x) >> BYTE_SHIFTS) & 0xFu) - 8.0) * d;
    b = (vec4((uvec4(raw.x) >> (BYTE_SHIFTS + 4u)) & 0xFu) - 8.0) * d;
}

void dequant8v(uint base, uint j, out vec4 a, out vec4 b) { decode_raw8(fetch_raw8(base, j), base, a, b); }

#ifdef MATVEC
// The mat-vec's part of a tile (matmul_vec.comp's tile loop): thread t holds x vec4s 64 p + 2 t, + 1 (p < 4) of
// the tile in xv[2 p], xv[2 p + 1] and loads per row one uvec4 of quants and one uvec2 of scales.
uvec2 tile_scales(uint tile, uint t) { return data_a2[(data_a[0] >> 1u) + 8u * tile + (t >> 2u)]; }

#ifdef INT_DOT
// -DINT_DOT (devices with VK_KHR_shader_integer_dot_product): x is rounded to 8-bit integers, 8 values (one quant
// word's) per power-of-two scale, and each word is dotted by two integer dot products of four 8-bit lanes
// (OpSDot: one instruction per four weights, where the float path below spends about three per weight on
// unpacking and multiplying; on an H100 that made 8B decode 12% faster).  The integer sums are exact, so the
// result is the float product of the weight and the rounded x: the op harness's reference
// (tools/op_harness.py, round_x_like_int_dot) rounds x the same way.  glslang 11 has no GLSL name for OpSDot, so
// it is declared by its SPIR-V opcode (4450; capabilities DotProduct 6019 and DotProductInput4x8BitPacked 6018;
// operand 0: PackedVectorFormat4x8Bit).
#extension GL_EXT_spirv_intrinsics : require
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot_4x8(uint a, uint b, spirv_literal int fmt);
#define DOT4(a, b) sdot_4x8(a, b, 0)

const float ROUND_MAGIC = 12582912.0;           // 1.5 * 2^23: v + it has round-to-nearest-even(v) in its low bits
// The thread's x of one tile as integers: for word p, xa[p] / xb[p] = x values 8 p' .. + 3 / + 4 .. + 7 (p' the
// word's 8 values) as four signed bytes, scaled by 2^e so that the largest |x| lands in [64, 128) (127 at most:
// a value rounding to 128 is clamped); xd[p] = 2^-e, the value of one step (0 for an all-zero group), xs[p] =
// 8 * (sum of the 8 integers), the nibbles' offset of 8 folded in: sum (q - 8) x_i = sum q x_i - 8 sum x_i.
struct TileX { uvec4 xa, xb; vec4 xd; ivec4 xs; };
TileX tile_x_int(vec4 xv[8]) {
    TileX r;
    [[unroll]] for (uint p = 0; p < 4; p++) {
        vec4 a = xv[2u * p], b = xv[2u * p + 1u];
        vec4 m4 = max(abs(a), abs(b));
        uint e = floatBitsToUint(max(max(m4.x, m4.y), max(m4.z, m4.w))) >> 23u;   // biased exponent of the max
        bool live = e >= 7u;                      // below 2^-120 the group counts as zero
        float scale = live ? uintBitsToFloat((260u - min(e, 260u)) << 23u) : 0.0;   // 2^(6 - (e - 127))
        r.xd[p] = live ? uintBitsToFloat((e - 6u) << 23u) : 0.0;                    // 1 / scale
        uvec4 ia = floatBitsToUint(min(a * scale + ROUND_MAGIC, ROUND_MAGIC + 127.0)) & 0xFFu;
        uvec4 ib = floatBitsToUint(min(b * scale + ROUND_MAGIC, ROUND_MAGIC + 127.0)) & 0xFFu;
        r.xa[p] = ia.x | (ia.y << 8u) | (ia.z << 16u) | (ia.w << 24u);
        r.xb[p] = ib.x | (ib.y << 8u) | (ib.z << 16u) | (ib.w << 24u);
        r.xs[p] = 8 * (DOT4(r.xa[p], 0x01010101u) + DOT4(r.xb[p], 0x01010101u));
    }
    return r;
}

// Thread t's part of tile `tile` of one row: sum over its 4 words of d * xd * (integer dot - offset).
float tile_dot_int(uint tile, uint t, TileX x) {
    uvec4 q = data_a4[1u + 32u * tile + t];
    uvec2 sc = tile_scales(tile, t);
    float s = 0.0;
    [[unroll]] for (uint p = 0; p < 4; p++) {     // unrolled: constant indices keep q, sc, x in registers
        int dp = DOT4(q[p] & 0x0F0F0F0Fu, x.xa[p]) + DOT4((q[p] >> 4u) & 0x0F0F0F0Fu, x.xb[p]) - x.xs[p];
        s += unpackHalf2x16(sc[p >> 1u])[p & 1u] * x.xd[p] * float(dp);
    }
    return s;
}
#endif

// The float path (devices without integer dot products, and the op harness's portable builds).  Nibbles become
// floats without an int-to-float conversion (those run on a narrow pipe on NVIDIA GPUs): the bits
// 0x4B000000 | (n << s) are the float 2^23 + n 2^s for s + 4 <= 23, so one AND-OR and one subtraction of
// 2^23 + 8 2^s give (n - 8) 2^s exactly, and x comes in divided by 2^s (tile_x, once per x value for all the
// rows it meets).  Bytes 0, 1 of a word are read in place (s = 0, 8; high nibbles 4, 12), bytes 2, 3 from the
// word shifted right by 16.
const uint MAGIC_2_23 = 0x4B000000u;
const uvec4 MASK_LO = uvec4(0xFu, 0xF00u, 0xFu, 0xF00u), MASK_HI = MASK_LO << 4u;
const vec4 POW_LO = vec4(1.0, 256.0, 1.0, 256.0), POW_HI = 16.0 * POW_LO;      // 2^s per lane

// x vec4 m of the thread's 8 (tile_dot's xv[m]) as tile_dot wants it: divided by its nibbles' 2^s (exact)
vec4 tile_x(uint m, vec4 x) { return x * (1.0 / ((m & 1u) == 0u ? POW_LO : POW_HI)); }

float tile_dot(uint tile, uint t, vec4 xv[8]) {
    uvec4 q = data_a4[1u + 32u * tile + t];
    uvec2 sc = tile_scales(tile, t);
    float s = 0.0;
    [[unroll]] for (uint p = 0; p < 4; p++) {     // unrolled: constant indices keep q, sc, xv in registers
        uvec4 w = uvec4(q[p], q[p], q[p] >> 16u, q[p] >> 16u);
        vec4 lo = uintBitsToFloat((w & MASK_LO) | MAGIC_2_23) - (8388608.0 + 8.0 * POW_LO);   // (n - 8) 2^s, exact
        vec4 hi = uintBitsToFloat((w & MASK_HI) | MAGIC_2_23) - (8388608.0 + 8.0 * POW_HI);
        s += unpackHalf2x16(sc[p >> 1u])[p & 1u] * (dot(lo, xv[2u * p]) + dot(hi, xv[2u * p + 1u]));
    }
    return s;
}
#endif
