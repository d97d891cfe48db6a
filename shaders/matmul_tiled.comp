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
// -DCOOPMAT (tensor cores; VulkanOps picks it where the device offers f16 cooperative matrices of
// CM_M x CM_N x CM_K, vulkan_device.GpuInfo.coopmat_shapes, and a subgroup of 32): the slabs are kept
// as f16 and each subgroup multiplies its part of the tile with coopMatMulAddNV into f32 accumulators
// (weights and activations rounded to f16, sums in f32: llama.cpp's f16 mul_mm does the same).  The
// next slab is read from memory into registers while the current one is multiplied (types with fetch_raw8,
// Q4_0's tile layout, as raw words dequantised only when stored).  -DBN=128 -DWG_SIZE=256 is the default
// 'coopmat_wide' (128 x 128 tiles, 8 subgroups), plain -DCOOPMAT 'coopmat' (128 x 64, 4 subgroups).
//
// -DGLU (with COOPMAT; Ops.matmul_glu of a batch, VulkanOps on the 'coopmat_wide' GEMM): W holds the gate rows
// and, up_row_off rows further on, the up rows (the stack the decode mat-vec's GLU reads); a tile's slab takes
// BM / 2 gate rows and the same up rows, so the upper subgroups' sums are the lower ones' up values, and the tile
// writes act(gate) * up for BM / 2 output columns: one GEMM instead of two GEMMs and a glu dispatch.
//
// Split K (pc.k_split > 1, when the tiles alone are too few to fill the GPU: a 128-row batch of a
// 1024-wide projection makes 32 tiles): workgroup z takes row tile z / k_split and the (z % k_split)-th
// part of K, and writes its unscaled partial sums to `part`; matmul_split_sum.comp adds them up, with
// the bias and the accumulate flag, in a second dispatch.
//
// vulkan_ops.VulkanOps.gemm picks it ('tiled', the default on a GPU; H100: mostly 14-22 TFLOP/s on Llama-3-8B
// shaped prompt matmuls of 512 rows, 3-6 for matmul.comp -DBATCH).  On lavapipe a tile costs the
// same whatever its rows hold, so a batch of a few rows pays for 64 and matmul.comp -DBATCH stays the
// default there.
// The tile sizes can be changed with -D for experiments (WG_SIZE, BM, BN, TM, TN below); the host's
// vulkan_ops.GEMM_BM / GEMM_BN must then match BM / BN.
#extension GL_EXT_control_flow_attributes : require     // [[unroll]]
#ifdef COOPMAT
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#ifndef WG_SIZE
#define WG_SIZE 128                  // threads: TX x TY (<= 128: no specialization constant needed)
#endif
#include "common.glsl"

layout(std430, binding = 1) readonly buffer A { uint data_a[]; };      // weight chunk, repacked blocks
layout(std430, binding = 2) readonly buffer X { float x[]; };          // [rows, x_stride]
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };        // the same, 16 bytes at a time
layout(std430, binding = 3) buffer O { float out_[]; };                // [rows, out_stride]
layout(std430, binding = 4) readonly buffer B { float bias[]; };       // [n_rows_of_W] f32 (FLAG_BIAS)
layout(std430, binding = 5) buffer P { float part[]; };                // [k_split, rows_cap, n_out] (k_split > 1)

#include "matmul_pc.glsl"

#include "dequant.glsl"
#ifdef GLU
#if !defined(COOPMAT)
#error "-DGLU is built for the COOPMAT kernel only"
#endif
#include "gelu.glsl"
#endif

// Tile sizes (BM, BN: vulkan_ops.GEMM_BM / GEMM_BN, or COOPMAT_BM / COOPMAT_BN, with which the host sizes the grid)
#ifdef COOPMAT
#ifndef BM
#define BM 128                       // weight rows per tile
#endif
#ifndef BN
#define BN 64                        // x rows per tile
#endif
#else
#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#endif
#ifndef BK
#ifdef COOPMAT
#define BK 64                        // (H100, Llama-3-8B pp512: 3872 tok/s against 3433 with 32: fewer barriers per product)
#else
#define BK 32                        // weights along K per step: a multiple of 32, so a step holds whole
#endif                               // Q4_0 / Q8_0 blocks and an eighth of a K-quant block
#endif
#ifdef GLU
#define TILE_COLS (BM / 2)           // -DGLU: a tile's BM slab rows are BM / 2 gate rows and their up rows
#else
#define TILE_COLS BM                 // output columns per tile
#endif
#define KV (BK / 4)                  // vec4s per slab row
#if (BM * BK / 8) % WG_SIZE != 0 || (BN * KV) % WG_SIZE != 0
#error "tile sizes: the slabs must be whole multiples of WG_SIZE chunks"
#endif
#define W_CHUNKS (BM * (BK / 8) / WG_SIZE)     // 8-weight chunks of the W slab per thread
#define X_VECS (BN * KV / WG_SIZE)            // 4-value pieces of the x slab per thread

// One thread's piece p of the W slab at k0: slab row r, chunk kc (8 weights: elements 8 j .. 8 j + 7 of the
// block whose first word is `base`); false past n_out and past the row's chunks (F32/F16: the row's zero
// padding to a multiple of 8), where the piece is zeros.  Neighbouring threads take the 4 chunks of one row's
// 32 weights (one Q4_0 / Q8_0 block).
bool w_piece(uint j0, uint k0, uint p, out uint r, out uint kc, out uint base, out uint j) {
    const uint CPB = QK / 8;                    // chunks of 8 weights per block
    uint c = gl_LocalInvocationID.x + p * WG_SIZE;
    r = c / (BK / 8);
    kc = c % (BK / 8);
    uint chunk = k0 / 8u + kc;
#ifdef GLU
    // -DGLU: slab rows 0 .. BM / 2 - 1 are gate rows j0 .., rows BM / 2 .. their up rows, up_row_off further on
    uint col = j0 + r % (BM / 2u);              // the output column the row serves
    uint row = r < BM / 2u ? col : pc.up_row_off + col;
#else
    uint col = j0 + r, row = col;
#endif
    base = ((pc.w_row0 + row) * pc.nb + chunk / CPB) * BW;
    j = chunk % CPB;
    return col < pc.n_out && chunk < pc.nb * CPB;
}

// piece p dequantised (dequant8v)
void fetch_w(uint j0, uint k0, uint p, out uint r, out uint kc, out vec4 a, out vec4 b) {
    uint base, j;
    a = vec4(0.0);
    b = vec4(0.0);
    if (w_piece(j0, k0, p, r, kc, base, j)) dequant8v(base, j, a, b);
}

#if defined(COOPMAT) && defined(HAS_RAW8) && !defined(GEMM_DEQUANT_AT_LOAD)
#define RAW_PREFETCH
// fetch_w's loads only (the type's fetch_raw8): the words of piece p, zeros outside the weight; decode_raw8(raw,
// base) later gives fetch_w's a, b.  -DGEMM_DEQUANT_AT_LOAD keeps fetch_w in the prefetch (an A/B switch).
uvec3 fetch_w_raw(uint j0, uint k0, uint p, out uint r, out uint kc, out uint base) {
    uint j;
    return w_piece(j0, k0, p, r, kc, base, j) ? fetch_raw8(base, j) : uvec3(0u);
}
#endif

// One thread's piece p of the x slab at k0: slab row t, vec4 q, consecutive threads at consecutive addresses:
// one 16-byte load where x_stride is a multiple of 4 (every real model's), else scalar loads.  Zeros past
// the active rows and past K (odd F32/F16 widths).
vec4 fetch_x(uint t0, uint k0, uint n_rows, uint p, out uint t, out uint q) {
    uint c = gl_LocalInvocationID.x + p * WG_SIZE;
    t = c / KV;
    q = c % KV;
    uint k = k0 + 4u * q;
    uint xo = (t0 + t) * pc.x_stride + k;
    vec4 v = vec4(0.0);
    if (t0 + t < n_rows) {
        if (k + 4u <= pc.K && (pc.x_stride & 3u) == 0u) {
            v = x4[xo >> 2];
        } else if (k + 4u <= pc.K) {
            v = vec4(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
        } else {
            [[unroll]] for (uint i = 0; i < 4; i++) if (k + i < pc.K) v[i] = x[xo + i];
        }
    }
    return v;
}

// This workgroup's share of the work: its row tiles start at t_first and step by t_step; its K range is
// [k_lo, k_hi) (all of K unless pc.k_split > 1), and k_part says which part it is.
uint t_first, t_step, k_lo, k_hi, k_part;
void split_work() {
    uint nz = gl_NumWorkGroups.z / pc.k_split;
    k_part = gl_WorkGroupID.z % pc.k_split;
    t_first = (gl_WorkGroupID.z / pc.k_split) * BN;
    t_step = nz * BN;
    uint per = ((pc.K + BK - 1u) / BK + pc.k_split - 1u) / pc.k_split * BK;     // whole steps per part
    k_lo = min(pc.K, k_part * per);
    k_hi = min(pc.K, k_lo + per);
}

// out[t, out_col0 + j] = value (+ bias) (+ the old value with FLAG_ACC), for j, t inside the tile's bounds;
// with K split, the partial sum goes to part[k_part, t, j] instead
void store_out(uint j, uint t, uint n_rows, float value) {
    if (j >= pc.n_out || t >= n_rows) return;
    if (pc.k_split > 1u) {
        part[(k_part * pc.rows_cap + t) * pc.n_out + j] = value;
        return;
    }
    uint o = t * pc.out_stride + pc.out_col0 + j;
    float total = value + ((pc.flags & FLAG_BIAS) != 0u ? bias[pc.bias_row0 + j] : 0.0);
    out_[o] = (pc.flags & FLAG_ACC) != 0u ? out_[o] + total : total;
}

#ifdef COOPMAT
// ---- tensor cores: subgroups of 32 (the host checks), WARPS_M x WARPS_N of them over the tile ----------
#ifndef CM_M
#define CM_M 16                      // the cooperative matrix shape: A is CM_M x CM_K, B CM_K x CM_N
#define CM_N 8
#define CM_K 16
#endif
#define WARPS_M 2                    // subgroups along the weight rows
#define WARPS_N (WG_SIZE / 32 / WARPS_M)
#define WM (BM / WARPS_M)            // 64 weight rows per subgroup
#define WN (BN / WARPS_N)            // 32 x rows per subgroup
#define FM (WM / CM_M)               // 4 x 4 accumulator matrices per subgroup
#define FN (WN / CM_N)
#define LDH (BK + 8)                 // f16 per shared row: 8 of padding keeps rows 16-byte aligned and
                                     // spreads the rows of a matrix load over the banks
#define LDU (LDH / 2)                // ... as uints: the slabs are stored as f16 pairs (packHalf2x16), one
                                     // 32-bit store per two values, and the matrices loaded from the uints
#define SCOPE 3                      // gl_ScopeSubgroup (its name needs the memory-scope extension)
#if WM % CM_M != 0 || WN % CM_N != 0 || BK % CM_K != 0 || WARPS_N * WARPS_M * 32 != WG_SIZE
#error "COOPMAT tile sizes"
#endif

shared uint w_h[BM * LDU];           // [BM][LDH] f16: W[j0 + r, k0 + k] is half k % 2 of w_h[r * LDU + k / 2]  (18 KiB)
shared uint x_h[BN * LDU];           // [BN][LDH] f16: x[t0 + t, k0 + k] likewise                      (9 / 18 KiB)
shared float c_s[WG_SIZE / 32][CM_M * CM_N];   // per subgroup: one accumulator on its way out, column-major

// The next slabs, held in registers while the current ones are multiplied: x as f16 pairs, rounded as soon as
// they are loaded (the same values store_slabs stored before; H100, 8B pp512: 4334 tok/s against 4263 and 4171 with
// the f32 values held until then), W as loaded.  Rounding W to f16 at once made each thread wait for its loads
// before the products they are meant to overlap (8B prompt GEMMs ~20% slower).  Piece p of this thread: W slab row
// wr[p], chunk wk[p]; x slab row xt[p], vec4 xq[p].
uvec2 xv[X_VECS];
uint wr[W_CHUNKS], wk[W_CHUNKS], xt[X_VECS], xq[X_VECS];
#ifdef RAW_PREFETCH
uvec3 wraw[W_CHUNKS];                        // W as loaded, dequantised only when stored to w_h
uint wbase[W_CHUNKS];
#else
vec4 wa[W_CHUNKS], wb[W_CHUNKS];
#endif

// issue the loads of the slabs at k0 (tile j0 x rows t0..)
void fetch_slabs(uint j0, uint t0, uint k0, uint n_rows) {
#ifdef RAW_PREFETCH
    [[unroll]] for (uint p = 0; p < W_CHUNKS; p++) wraw[p] = fetch_w_raw(j0, k0, p, wr[p], wk[p], wbase[p]);
#else
    [[unroll]] for (uint p = 0; p < W_CHUNKS; p++) fetch_w(j0, k0, p, wr[p], wk[p], wa[p], wb[p]);
#endif
    [[unroll]] for (uint p = 0; p < X_VECS; p++) {
        vec4 v = fetch_x(t0, k0, n_rows, p, xt[p], xq[p]);
        xv[p] = uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
    }
}

// the fetched slabs as f16 pairs into w_h and x_h
void store_slabs() {
#ifdef RAW_PREFETCH
    vec4 wa[W_CHUNKS], wb[W_CHUNKS];
    [[unroll]] for (uint p = 0; p < W_CHUNKS; p++) decode_raw8(wraw[p], wbase[p], wa[p], wb[p]);
#endif
    [[unroll]] for (uint p = 0; p < W_CHUNKS; p++) {
        uint o = wr[p] * LDU + 4u * wk[p];
        w_h[o] = packHalf2x16(wa[p].xy);
        w_h[o + 1u] = packHalf2x16(wa[p].zw);
        w_h[o + 2u] = packHalf2x16(wb[p].xy);
        w_h[o + 3u] = packHalf2x16(wb[p].zw);
    }
    [[unroll]] for (uint p = 0; p < X_VECS; p++) {
        uint o = xt[p] * LDU + 2u * xq[p];
        x_h[o] = xv[p].x;
        x_h[o + 1u] = xv[p].y;
    }
}

// The accumulators and the A / B fragments are separate variables, not arrays: NVIDIA's driver kept arrays of
// cooperative matrices in local memory even where every index is a constant (H100, Llama-3-8B prompt GEMMs: 2.7x
// slower; the products alone 8x).  These macros spell out the FM x FN = 4 x 4 of them: X(i) / X(i, u) for each.
#if FM != 4 || FN != 4
#error "COOPMAT: FOR_FM / FOR_FM_FN spell out FM = FN = 4"
#endif
#define FOR_FM(X) X(0) X(1) X(2) X(3)
#define FOR_FM_FN(X) X(0, 0) X(0, 1) X(0, 2) X(0, 3) X(1, 0) X(1, 1) X(1, 2) X(1, 3) \
                     X(2, 0) X(2, 1) X(2, 2) X(2, 3) X(3, 0) X(3, 1) X(3, 2) X(3, 3)
#define MAT_A fcoopmatNV<16, SCOPE, CM_M, CM_K>      // CM_M weight rows x CM_K, f16
#define MAT_B fcoopmatNV<16, SCOPE, CM_K, CM_N>      // CM_K x CM_N x rows, f16
#define MAT_C fcoopmatNV<32, SCOPE, CM_M, CM_N>      // the f32 accumulator
#define ZERO_C(i, u) MAT_C acc##i##u = MAT_C(0.0);
// A = W rows (row-major in w_h), B = x rows as columns (column-major in x_h); offsets and strides in uints
#define LOAD_A(i) MAT_A a##i; coopMatLoadNV(a##i, w_h, (wm * WM + i * CM_M) * LDU + kk / 2u, LDU, false);
#define LOAD_B(u) MAT_B b##u; coopMatLoadNV(b##u, x_h, (wn * WN + u * CM_N) * LDU + kk / 2u, LDU, true);
#define MUL_ADD(i, u) acc##i##u = coopMatMulAddNV(a##i, b##u, acc##i##u);
#define STORE_C(i, u) store_acc(acc##i##u, wm * WM + i * CM_M, wn * WN + u * CM_N, j0, t0, n_rows);

#ifdef GLU
// GLU: the up subgroup wn's sums (tile rows BM / 2 + row, its x rows wn * WN + col) at UP_AT(wn, col, row) of
// w_h (wn < 2) or x_h (the others), each array holding two subgroups' WN x BM / 2 floats, column-major
#if 2 * WN * (BM / 2) > BM * LDU || WARPS_N != 4 || WARPS_M != 2
#error "COOPMAT GLU: the up sums must fit the slab arrays, 2 x 4 subgroups"
#endif
#define UP_AT(wn, col, row) (((wn) & 1u) * WN * (BM / 2) + (col) * (BM / 2) + (row))
#define PUT_UP(i, u) if (wn < 2u) coopMatStoreNV(acc##i##u, w_h, UP_AT(wn, u * CM_N, i * CM_M), BM / 2, true); \
                     else coopMatStoreNV(acc##i##u, x_h, UP_AT(wn, u * CM_N, i * CM_M), BM / 2, true);
#endif

// Accumulator m (tile rows r0.., x rows c0..) to out: through the subgroup's c_s, so that bias, accumulate and the
// tile's edges are handled per element; neighbouring lanes, neighbouring j.  -DGLU: m holds gate sums (r0 < BM / 2)
// and out gets act(gate) * the matching up sum (the host passes no bias, no accumulate and no split K there).
void store_acc(MAT_C m, uint r0, uint c0, uint j0, uint t0, uint n_rows) {
    uint warp = gl_SubgroupID;
    coopMatStoreNV(m, c_s[warp], 0, CM_M, true);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint e = gl_SubgroupInvocationID; e < CM_M * CM_N; e += 32u) {
        uint r = r0 + e % CM_M, c = c0 + e / CM_M;
        float v = c_s[warp][e];
#ifdef GLU
        uint wn = warp / WARPS_M, at = UP_AT(wn, c - wn * WN, r);
        v = glu_act(v, pc.act) * uintBitsToFloat(wn < 2u ? w_h[at] : x_h[at]);
#endif
        store_out(j0 + r, t0 + c, n_rows, v);
    }
    subgroupBarrier();                          // c_s is read before the next accumulator overwrites it
}

void main() {
    uint n_rows = active_rows(pc.rows_cap);     // the step's n_tokens: read at run time
    split_work();
    uint warp = gl_SubgroupID;
    uint wm = warp % WARPS_M, wn = warp / WARPS_M;
    uint n_tiles = (pc.n_out + TILE_COLS - 1) / TILE_COLS;
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint tile = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; tile < n_tiles; tile += n_wg) {
    uint j0 = tile * TILE_COLS;
    for (uint t0 = t_first; t0 < n_rows; t0 += t_step) {

    FOR_FM_FN(ZERO_C)

    fetch_slabs(j0, t0, k_lo, n_rows);
    store_slabs();                              // (the previous tile's K loop, if any, ended with a barrier)
    barrier();
    for (uint k0 = k_lo; k0 < k_hi; k0 += BK) {
        bool more = k0 + BK < k_hi;             // uniform
        if (more) fetch_slabs(j0, t0, k0 + BK, n_rows);   // the loads land during the products
        [[unroll]] for (uint kk = 0; kk < BK; kk += CM_K) {
            FOR_FM(LOAD_A)
            FOR_FM(LOAD_B)
            FOR_FM_FN(MUL_ADD)
        }
        barrier();                              // every subgroup is done reading the slabs
        if (more) store_slabs();
        barrier();
    }

#ifdef GLU
    // the up subgroups (wm = 1) hand their sums to the gate subgroups (wm = 0, same wn) through the slab arrays,
    // which the K loop's last barrier freed; those then store act(gate) * up
    if (wm == 1u) { FOR_FM_FN(PUT_UP) }
    barrier();
    if (wm == 0u) { FOR_FM_FN(STORE_C) }
    barrier();                                  // the slab arrays are read before the next tile's slabs
#else
    FOR_FM_FN(STORE_C)
#endif
    }
    }
}

#else
// ---- the portable kernel: a TM x TN register tile per thread -----------------------------------------
#ifndef TM
#define TM 4                         // weight rows per thread: tx, tx + TX, ... (strided: coalesced stores)
#endif
#ifndef TN
#define TN 8                         // x rows per thread: ty, ty + TY, ...
#endif
#define TX (BM / TM)                 // 16 threads along the weight rows
#define TY (BN / TN)                 // 8 along the x rows
#if TX * TY != WG_SIZE
#error "tile sizes: TX * TY must be WG_SIZE"
#endif
#define LDS (KV + 1)                 // vec4s per shared row: one vec4 of padding, so the 8 threads of a
                                     // 128-bit shared access phase (rows tx .. tx + 7, 36 floats apart)
                                     // hit 8 different groups of 4 banks

// the two slabs, k contiguous within a row (4 weights per vec4): 2 x 64 x 9 x 16 bytes = 18 KiB
shared vec4 w_s[BM * LDS];           // [BM][LDS]: W[j0 + r, k0 + 4q .. 4q + 3] at w_s[r * LDS + q]
shared vec4 x_s[BN * LDS];           // [BN][LDS]: x[t0 + t, k0 + 4q .. 4q + 3] at x_s[t * LDS + q]

void main() {
    uint n_rows = active_rows(pc.rows_cap);     // the step's n_tokens: read at run time
    split_work();
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % TX, ty = tid / TX;
    uint n_tiles = (pc.n_out + BM - 1) / BM;
    // tiles of BM weight rows: this workgroup takes tile g, g + groups_xy, ... (the host splits the
    // groups over x and y past MAX_GROUPS_X, and launches fewer than n_tiles on a CPU device)
    uint n_wg = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint tile = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; tile < n_tiles; tile += n_wg) {
    uint j0 = tile * BM;
    // tiles of BN x rows: tile z, z + groups_z, ... (z / k_split with K split).  The host launches
    // ceil(capacity / BN) of them and the ones past this step's active rows skip the loop (the condition
    // is uniform: barriers are safe)
    for (uint t0 = t_first; t0 < n_rows; t0 += t_step) {

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint u = 0; u < TN; u++) acc[i][u] = 0.0;

    for (uint k0 = k_lo; k0 < k_hi; k0 += BK) {
        barrier();                              // every thread is done reading the previous slabs
        [[unroll]] for (uint p = 0; p < W_CHUNKS; p++) {
            uint r, kc;
            vec4 a, b;
            fetch_w(j0, k0, p, r, kc, a, b);
            w_s[r * LDS + 2u * kc] = a;
            w_s[r * LDS + 2u * kc + 1u] = b;
        }
        [[unroll]] for (uint p = 0; p < X_VECS; p++) {
            uint t, q;
            vec4 v = fetch_x(t0, k0, n_rows, p, t, q);
            x_s[t * LDS + q] = v;
        }
        barrier();
        // the register tile: per 4 weights along K, TM + TN shared vec4 loads for TM x TN x 4 multiply-adds
        [[unroll]] for (uint q = 0; q < KV; q++) {
            vec4 a[TM], b[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = w_s[(tx + i * TX) * LDS + q];
            [[unroll]] for (uint u = 0; u < TN; u++) b[u] = x_s[(ty + u * TY) * LDS + q];
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint u = 0; u < TN; u++) {
                    float s = acc[i][u];                      // four fused multiply-adds, no separate dot
                    s = fma(a[i].x, b[u].x, s);
                    s = fma(a[i].y, b[u].y, s);
                    s = fma(a[i].z, b[u].z, s);
                    acc[i][u] = fma(a[i].w, b[u].w, s);
                }
        }
    }

    // epilogue: neighbouring threads write neighbouring output columns
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint u = 0; u < TN; u++)
            store_out(j0 + tx + i * TX, t0 + ty + u * TY, n_rows, acc[i][u]);
    }
    }
}
#endif
