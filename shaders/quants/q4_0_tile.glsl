// Q4_0, tile layout (GPT4ALL_MATVEC=v3: the decode mat-vec's, for rows of a multiple of 1024 weights).
// 32 weights = f16 d, 16 bytes of nibbles; w = (q - 8) * d (element i < 16: low nibble of byte i,
// i >= 16: high nibble of byte i - 16).  The split layout's idea (quants apart from scales, 16-byte
// loads) with the weights of every 32 consecutive blocks (a *tile*: 1024 weights, one row's 1024
// consecutive x values) permuted so that the 32 threads sharing a tile each load one uvec4 of quants
// and their x loads are contiguous too: thread t (0..31) takes, for m = 0..7, the four weights
// 128 m + 4 t .. + 3 of the tile, i.e. x vec4 number 32 m + t.  Those four weights sit in block
// bt = 4 m + t / 8 at offset e = 4 (t % 8).  A chunk of n blocks (n % 32 == 0) is stored as
//   words 0..3                 header: word 0 = index of the first scale word (4 + 4n)
//   uvec4 1 + 32 i + t         tile i, thread t: 16 bits per m (word m / 2, half m % 2), nibble j
//                              (bits 4j..4j+3) = weight 128 m + 4 t + j of the tile
//   uvec4 (4 + 4n) / 4 + 4 i + g   tile i, the 8 scales threads 8g..8g+7 need: d of block 4 m + g
//                              as f16, word m / 2, half m % 2
// so nothing is padded (18 bytes per block, as in GGUF).  Rows must hold whole tiles (the host
// uses this layout only then), so tile i of a chunk is tile i % (K / 1024) of row i / (K / 1024).
// Block b's `base` (for dequant8v, which every other typed kernel reads through) is b * BW.
#define QK 32
#define BW 4
#define SPLIT_LAYOUT
#define TILE_LAYOUT
#define TILE_THREADS 32u                         // threads per tile (a layout constant, not a subgroup size)

const uvec4 NIBBLE_SHIFTS = uvec4(0u, 4u, 8u, 12u);

// dequant8v in two halves, which the coopmat GEMM (matmul_tiled.comp -DCOOPMAT) calls apart: fetch_raw8 issues
// the three loads of elements 8j..8j+7 of block base / BW and returns the words as they are; decode_raw8 turns
// them into the 8 values later, so the loads of the next slab are in flight while the tensor cores multiply
// the current one (dequantising at load time made every thread wait for them first).  A zero raw triple
// decodes to zeros (its scale is 0).
#define HAS_RAW8
uvec3 fetch_raw8(uint base, uint j) {
    uint blk = base / BW, tile = blk >> 5u, bt = blk & 31u;
    uint g = bt & 3u, m = bt >> 2u;
    uint t = 8u * g + 2u * j;                    // elements 8j..8j+3 belong to thread t, 8j+4.. to t + 1
    return uvec3(data_a[4u + 4u * (32u * tile + t) + (m >> 1u)], data_a[4u + 4u * (32u * tile + t + 1u) + (m >> 1u)],
                 data_a[data_a[0] + 4u * (4u * tile + g) + (m >> 1u)]);
}
void decode_raw8(uvec3 raw, uint base, out vec4 a, out vec4 b) {
    uint m = ((base / BW) & 31u) >> 2u, sh = 16u * (m & 1u);
    float d = unpackHalf2x16(raw.z)[m & 1u];
    a = (vec4((uvec4(raw.x >> sh) >> NIBBLE_SHIFTS) & 0xFu) - 8.0) * d;
    b = (vec4((uvec4(raw.y >> sh) >> NIBBLE_SHIFTS) & 0xFu) - 8.0) * d;
}

void dequant8v(uint base, uint j, out vec4 a, out vec4 b) { decode_raw8(fetch_raw8(base, j), base, a, b); }

#ifdef MATVEC
// Nibbles become floats without an int-to-float conversion (those run on a narrow pipe: on NVIDIA GPUs
// 16 a clock per multiprocessor against 128 FP32 operations, and the mat-vec made 32 of them per 32
// weights and row; doing without them gained 3-4% of decode speed on an H100).  The bits 0x4B000000 | (n << s) are the
// float 2^23 + n 2^s for s + 4 <= 23 (2^23's exponent, n 2^s in the mantissa), so one AND-OR and one
// subtraction of 2^23 + 8 2^s give (n - 8) 2^s exactly; x comes in divided by 2^s (tile_x, once per x
// value for all the rows it meets), so the product is (n - 8) x, as before.  Sub-tile m takes half m % 2
// of quant word m / 2: nibbles at bits 0, 4, 8, 12 for even m; for odd m the word shifted right by 12
// puts bits 16..31 at 4..19, inside the mantissa.
const uint MAGIC_2_23 = 0x4B000000u;
const uvec4 MASK_EVEN = uvec4(0xFu, 0xF0u, 0xF00u, 0xF000u), MASK_ODD = MASK_EVEN << 4u;
const vec4 POW_EVEN = vec4(1.0, 16.0, 256.0, 4096.0), POW_ODD = 16.0 * POW_EVEN;   // 2^s per nibble

// x vec4 32 m + t of a tile as tile_dot wants it: divided by its nibbles' 2^s (exact: powers of two)
vec4 tile_x(uint m, vec4 x) { return x * (1.0 / ((m & 1u) == 0u ? POW_EVEN : POW_ODD)); }

// Thread t's part of tile `tile`: sum over m of d_m (q_m - 8) . x_m, with xv[m] = tile_x(m, x vec4 32 m + t
// of the tile).  Two 16-byte loads.
float tile_dot(uint tile, uint t, vec4 xv[8]) {
    uvec4 q = data_a4[1u + 32u * tile + t];
    uvec4 sc = data_a4[(data_a[0] >> 2u) + 4u * tile + (t >> 3u)];
    float s = 0.0;
    [[unroll]] for (uint m = 0; m < 8; m++) {     // unrolled: constant indices keep q, sc, xv in registers
        bool odd = (m & 1u) != 0u;
        uvec4 w = uvec4(odd ? q[m >> 1u] >> 12u : q[m >> 1u]);
        vec4 qv = uintBitsToFloat((w & (odd ? MASK_ODD : MASK_EVEN)) | MAGIC_2_23)
                - (8388608.0 + 8.0 * (odd ? POW_ODD : POW_EVEN));          // (n - 8) 2^s, exact
        s += unpackHalf2x16(sc[m >> 1u])[m & 1u] * dot(qv, xv[m]);
    }
    return s;
}
#endif
