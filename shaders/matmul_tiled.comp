#version 450
// Ops.matmul for batches (prompt processing) as a classic shared-memory tiled GEMM:
//     out[t, out_col0 + j] (+)= sum_k W[w_row0 + j, k] * x[t, k] (+ bias[bias_row0 + j])
// Same bindings and push constants as matmul.comp, one generic kernel for every weight type (the
// type's dequant8v from dequant.glsl, -DDATA_A_<TYPE>; the split layouts too).
//
// A workgroup computes a tile of BM weight rows (output columns) x BN x rows.  Per step of BK weights
// along K it dequantises the BM x BK slab of W and copies the BN x BK slab of x into shared memory,
// then each thread accumulates a TM x TN register tile from them: TM + TN shared vec4 loads per
// TM x TN x 4 multiply-adds.  Each weight is dequantised once per BN x rows (matmul.comp -DBATCH: once
// per 4 rows) and each x value read from memory once per BM weight rows.
//
// vulkan_ops.VulkanOps.gemm picks it ('tiled', the default on a GPU; H100: mostly 14-22 TFLOP/s on Llama-3-8B
// shaped prompt matmuls of 512 rows, 3-6 for matmul.comp -DBATCH).  On lavapipe a tile costs the
// same whatever its rows hold, so a batch of a few rows pays for 64 and matmul.comp -DBATCH stays the
// default there.
// The tile sizes can be changed with -D for experiments (WG_SIZE, BM, BN, TM, TN below); the host's
// vulkan_ops.GEMM_BM / GEMM_BN must then match BM / BN.
#ifndef WG_SIZE
#define WG_SIZE 128                  // threads: TX x TY (<= 128: no specialization constant needed)
#endif
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, repacked blocks
layout(std430, binding = 2) readonly buffer X { float x[]; };          // [rows, x_stride]
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (FLAG_BIAS)

#include "matmul_pc.glsl"

#include "dequant.glsl"

// Tile sizes (BM, BN: vulkan_ops.GEMM_BM / GEMM_BN, with which the host sizes the grid)
#ifndef BM
#define BM 64                        // weight rows per tile
#endif
#ifndef BN
#define BN 64                        // x rows per tile
#endif
#define BK 32                        // weights along K per step: a multiple of 32, so a step holds whole
                                     // Q4_0 / Q8_0 blocks and an eighth of a K-quant block
#ifndef TM
#define TM 4                         // weight rows per thread: tx, tx + TX, ... (strided: coalesced stores)
#endif
#ifndef TN
#define TN 8                         // x rows per thread: ty, ty + TY, ...
#endif
#define TX (BM / TM)                 // 16 threads along the weight rows
#define TY (BN / TN)                 // 8 along the x rows
#if TX * TY != WG_SIZE || (BM * BK / 8) % WG_SIZE != 0 || (BN * BK / 4) % WG_SIZE != 0
#error "tile sizes: TX * TY must be WG_SIZE, and the slabs whole multiples of WG_SIZE chunks"
#endif
#define KV (BK / 4)                  // vec4s per slab row
#define LDS (KV + 1)                 // vec4s per shared row: one vec4 of padding, so the 8 threads of a
                                     // 128-bit shared access phase (rows tx .. tx + 7, 36 floats apart)
                                     // hit 8 different groups of 4 banks

// the two slabs, k contiguous within a row (4 weights per vec4): 2 x 64 x 9 x 16 bytes = 18 KiB
shared vec4 w_s[BM * LDS];           // [BM][LDS]: W[j0 + r, k0 + 4q .. 4q + 3] at w_s[r * LDS + q]
shared vec4 x_s[BN * LDS];           // [BN][LDS]: x[t0 + t, k0 + 4q .. 4q + 3] at x_s[t * LDS + q]

void main() {
    uint n_rows = active_rows(pc.rows_cap);     // the step's n_tokens: read at run time
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % TX, ty = tid / TX;
    const uint CPB = QK / 8;                    // chunks of 8 weights per block
    uint n_chunks = pc.nb * CPB;                // chunks per weight row (F32/F16: the last ones are the
                                                // row's zero padding to a multiple of 8)
    uint n_tiles = (pc.n_out + BM - 1) / BM;
    // tiles of BM weight rows: this workgroup takes tile g, g + groups_xy, ... (the host splits the
    // groups over x and y past MAX_GROUPS_X, and launches fewer than n_tiles on a CPU device)
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint tile = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; tile < n_tiles; tile += n_wg) {
    uint j0 = tile * BM;
    // tiles of BN x rows: tile z, z + groups_z, ...  The host launches ceil(capacity / BN) of them and the
    // ones past this step's active rows skip the loop (the condition is uniform: barriers are safe)
    for (uint t0 = gl_WorkGroupID.z * BN; t0 < n_rows; t0 += gl_NumWorkGroups.z * BN) {

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint u = 0; u < TN; u++) acc[i][u] = 0.0;

    for (uint k0 = 0; k0 < pc.K; k0 += BK) {
        barrier();                              // every thread is done reading the previous slabs
        // W slab: BM rows x BK / 8 chunks, one dequant8v each; 4 neighbouring threads take the 4 chunks
        // of one row's 32 weights (one Q4_0 / Q8_0 block).  Zeros past n_out and past the row's chunks.
        for (uint p = 0; p < BM * (BK / 8) / WG_SIZE; p++) {
            uint c = tid + p * WG_SIZE;
            uint r = c / (BK / 8), kc = c % (BK / 8);
            uint chunk = k0 / 8u + kc;
            vec4 a = vec4(0.0), b = vec4(0.0);
            if (j0 + r < pc.n_out && chunk < n_chunks)
                dequant8v(((pc.w_row0 + j0 + r) * pc.nb + chunk / CPB) * BW, chunk % CPB, a, b);
            w_s[r * LDS + 2u * kc] = a;
            w_s[r * LDS + 2u * kc + 1u] = b;
        }
        // x slab: BN rows x BK / 4 vec4s (x_stride need not be a multiple of 4: scalar loads, consecutive
        // threads at consecutive addresses).  Zeros past the active rows and past K (odd F32/F16 widths).
        for (uint p = 0; p < BN * KV / WG_SIZE; p++) {
            uint c = tid + p * WG_SIZE;
            uint t = c / KV, q = c % KV;
            uint k = k0 + 4u * q;
            uint xo = (t0 + t) * pc.x_stride + k;
            vec4 v = vec4(0.0);
            if (t0 + t < n_rows) {
                if (k + 4u <= pc.K) {
                    v = vec4(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
                } else {
                    for (uint i = 0; i < 4; i++) if (k + i < pc.K) v[i] = x[xo + i];
                }
            }
            x_s[t * LDS + q] = v;
        }
        barrier();
        // the register tile: per 4 weights along K, TM + TN shared vec4 loads for TM x TN x 4 multiply-adds
        for (uint q = 0; q < KV; q++) {
            vec4 a[TM], b[TN];
            for (uint i = 0; i < TM; i++) a[i] = w_s[(tx + i * TX) * LDS + q];
            for (uint u = 0; u < TN; u++) b[u] = x_s[(ty + u * TY) * LDS + q];
            for (uint i = 0; i < TM; i++)
                for (uint u = 0; u < TN; u++) {
                    float s = acc[i][u];                      // four fused multiply-adds, no separate dot
                    s = fma(a[i].x, b[u].x, s);
                    s = fma(a[i].y, b[u].y, s);
                    s = fma(a[i].z, b[u].z, s);
                    acc[i][u] = fma(a[i].w, b[u].w, s);
                }
        }
    }

    // epilogue: neighbouring threads write neighbouring output columns
    for (uint i = 0; i < TM; i++) {
        uint j = j0 + tx + i * TX;
        if (j >= pc.n_out) continue;
        float bj = (pc.flags & FLAG_BIAS) != 0u ? bias[pc.bias_row0 + j] : 0.0;
        for (uint u = 0; u < TN; u++) {
            uint t = t0 + ty + u * TY;
            if (t >= n_rows) continue;
            uint o = t * pc.out_stride + pc.out_col0 + j;
            float total = acc[i][u] + bj;
            out_[o] = (pc.flags & FLAG_ACC) != 0u ? out_[o] + total : total;
        }
    }
    }
    }
}
