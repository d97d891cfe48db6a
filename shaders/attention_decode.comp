#version 450
// Ops.attention for a decode step on a GPU, first half of the split (flash-decoding) path:
// softmax(q k^T * scale [softcap] + mask) v over slice z of the visible keys, for every query head of
// one KV head's group (GQA), written unnormalised as (max m, sum l, acc) to `part`; attention_merge.comp
// then combines the n_split slices, as it does attention.comp's.  -DMERGE_LAST (attention_decode_merge,
// GPT4ALL_ATTENTION_MERGE=last): the last workgroup of a (row, head block) to finish combines them itself
// (see "Merge" below), so the split path is one dispatch; on the H100 that was slower than the second
// dispatch (docs/vulkan.md), so it is opt-in.
//
// Workgroup (x, y, z): x = KV head kvh * nblk + head block (the host launches n_kv_head * nblk
// workgroups along x, nblk = ceil(G / GMAX), G = n_head / n_kv_head; each block takes <= GMAX of the
// G query heads), y = row group (FOR_ROWS), z = key slice.  head_dim % 4 == 0 and head_dim <= 512
// (the host falls back to attention.comp otherwise).
//
// Why this shape (attention.comp's split path gave each thread one key and a scalar loop over
// head_dim, rounded slices up to 64 keys and read K and V once per query head):
//  * K and V are read once per head block, i.e. once for all G query heads of a KV head.
//  * Slices are ceil(n / n_split) keys, not whole tiles, so every slice has work at short depths.
//  * Scores: P consecutive threads share one key (P = the largest power of two with P * keys <= WG_SIZE,
//    P <= head_dim / 4), thread p dotting vec4s p, p + P, ... of the key row with every head's q, so a
//    warp's vec4 loads cover whole key rows (coalesced) and UNROLL_K loads per thread are in flight at once.
//    q is read from global memory (a few KiB, cached), so the K loads need not wait for a barrier.
//    The P partial dots go to shared memory and are summed by the softmax threads.
//  * Softmax of a chunk of <= CHUNK keys: WG_SIZE / gn threads per head take the chunk max and sum
//    (partials in shared memory, no subgroup operations: any subgroup size works); an online softmax
//    across chunks (running m, l per head, acc rescaled by e^(m_old - m_new)) keeps shared memory
//    constant in the slice length.
//  * Output: thread (d4, kp) owns dims 4*d4..4*d4+3 of every head of the block and keys kp, kp + KP, ...
//    of the chunk (KP = WG_SIZE / (head_dim / 4)): one coalesced vec4 load of V per key serves all
//    gn heads; the KP key parts are summed through shared memory once, at the end.  Its first UNROLL_V
//    V rows (all of them for a decode slice of <= UNROLL_V * KP keys) are loaded before the scores,
//    so the V and K loads overlap instead of costing two memory round trips.
//
// Merge (-DMERGE_LAST; "last block" / threadfence reduction): after writing its part entries for row t, a workgroup
// makes them visible device-wide and one thread increments counters[t * gl_NumWorkGroups.x + x]; the
// workgroup that sees n_split - 1 is the last of the row's n_split slices (for this head block) to
// finish, so every slice's part entries are written: it reads them back and writes `out`.  It then
// resets the counter to 0, so the next dispatch (next layer, next decode step: the host shares the
// part and counter buffers between them, ordered by pipeline barriers) starts from zero.  No
// workgroup waits for another (no spinning), so no forward-progress guarantee is needed.
// Memory model (GLSL 450 without the Vulkan memory model): `part` and `counters` are `coherent`
// (their loads and stores bypass non-coherent per-core caches: NVIDIA's L1), memoryBarrierBuffer()
// (OpMemoryBarrier, Device scope, AcquireRelease on buffer memory) orders an invocation's buffer
// accesses before / after it, and the counter is an atomic.  barrier() alone orders shared memory
// only, hence the memoryBarrierBuffer() next to each barrier() that hands buffer data between
// invocations.  Details at each barrier below.
#extension GL_EXT_control_flow_attributes : require
#define WG_SIZE 128                // >= head_dim / 4 for head_dim <= 512 (one thread per vec4 of a row)
#include "common.glsl"

#define GMAX 8                     // query heads per workgroup (vulkan_ops.ATTENTION_DECODE_HEADS)
#define CHUNK 256                  // keys per online-softmax step
#define UNROLL_K 8                 // K vec4 loads per thread issued together
#define UNROLL_V 4                 // V vec4 loads per thread issued together
#define NEG_INF (-1.0 / 0.0)

layout(std430, binding = 1) readonly buffer Q { vec4 q4[]; };     // [rows, n_head * head_dim]
layout(std430, binding = 2) readonly buffer K { vec4 k4[]; };     // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 3) readonly buffer V { vec4 v4[]; };     // [n_ctx, n_kv_head * head_dim]
layout(std430, binding = 4) writeonly buffer O { float out_[]; }; // [rows, n_head * head_dim]
layout(std430, binding = 5) readonly buffer S { int seq[]; };     // [rows, 1] (if has_seq)
#ifdef MERGE_LAST
layout(std430, binding = 6) coherent buffer P { float part[]; };  // [rows, n_head, n_split, 2 + head_dim]
// arrivals per (row, KV head, head block) = [rows_cap, gl_NumWorkGroups.x]; 0 between dispatches
layout(std430, binding = 7) coherent buffer C { uint counters[]; };
#else
layout(std430, binding = 6) buffer P { float part[]; };           // [rows, n_head, n_split, 2 + head_dim]
#endif

layout(push_constant) uniform PC {
    uint n_head; uint n_kv_head; uint head_dim; float scale;
    uint causal; uint window; float softcap; uint has_seq; uint rows_cap; uint n_split;
} pc;

shared float sc[GMAX * CHUNK];     // this chunk, per head g: partial dots [g][k * P + p] -> score -> probability at [g][k * P]
shared float red_m[WG_SIZE];       // chunk max partials, [g * TPR + tt]
shared float red_l[WG_SIZE];       // chunk sum partials
shared vec4 red_v[WG_SIZE];        // the key parts' accumulators of one head, summed at the end
shared float m_sh[GMAX], l_sh[GMAX], mnew_sh[GMAX], corr_sh[GMAX];
shared bool last_sh;               // this workgroup is the row's last slice to finish: it merges

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint G = pc.n_head / pc.n_kv_head;
    uint nblk = gl_NumWorkGroups.x / pc.n_kv_head;         // head blocks per KV head (host: ceil(G / GMAX))
    uint GW = (G + nblk - 1u) / nblk;                      // heads per block, <= GMAX
    uint kvh = gl_WorkGroupID.x / nblk, g0 = (gl_WorkGroupID.x % nblk) * GW;
    if (g0 >= G) return;                                   // (uniform) no heads left for this block
    uint gn = min(GW, G - g0);                             // heads here: kvh * G + g0 + g, g < gn
    uint h0 = kvh * G + g0;
    uint D4 = pc.head_dim / 4u, kvw4 = pc.n_kv_head * D4;
    uint z = gl_WorkGroupID.z;
    uint TPR = WG_SIZE / gn;                               // softmax threads per head
    uint sg = tid / TPR, tt = tid % TPR;                   // softmax: head sg, keys tt, tt + TPR, ...
    bool smax = sg < gn;
    uint KP = WG_SIZE / D4;                                // output: key parts
    uint dv = tid % D4, kp = tid / D4;                     // output: vec4 dv of each head, keys kp, kp + KP, ...
    bool outp = tid < D4 * KP;

    FOR_ROWS(t, pc.rows_cap, y) {
    // visible cache rows [j_lo, j_hi), then this workgroup's slice of them
    uint p = STEP_POS + t;
    uint j_lo = 0u, j_hi;
    if (pc.causal != 0u) {
        j_hi = p + 1u;
        if (pc.window > 0u && p + 1u > pc.window) j_lo = p + 1u - pc.window;
    } else {
        j_hi = active_rows(pc.rows_cap);
    }
    uint per = (j_hi - j_lo + pc.n_split - 1u) / pc.n_split;
    uint a = j_lo + z * per;
    j_hi = min(j_hi, a + per);
    j_lo = min(a, j_hi);
    int my_seq = pc.has_seq != 0u ? seq[t] : 0;
    uint qb = (t * pc.n_head + h0) * D4;                   // q4 index of head h0's row

    barrier();                                             // the previous row's readers of m_sh, l_sh are done
    if (tid < GMAX) { m_sh[tid] = NEG_INF; l_sh[tid] = 0.0; }
    vec4 acc[GMAX];
    [[unroll]] for (uint g = 0; g < GMAX; g++) acc[g] = vec4(0.0);

    for (uint j0 = j_lo; j0 < j_hi; j0 += CHUNK) {
        uint nc = min(uint(CHUNK), j_hi - j0);
        uint P = 1u;                                       // threads per key for the dot products
        while (2u * P * nc <= WG_SIZE && 2u * P <= D4) P *= 2u;
        uint stride = nc * P;                              // sc floats per head
        // the output phase's first V rows, loaded now so that they arrive while the scores are computed
        uint vb = j0 * kvw4 + kvh * D4 + dv;
        vec4 vv[UNROLL_V];
        [[unroll]] for (uint u = 0; u < UNROLL_V; u++) {
            uint k = kp + u * KP;
            vv[u] = outp && k < nc ? v4[vb + k * kvw4] : vec4(0.0);
        }
        barrier();                                         // the previous chunk's readers of sc are done

        // 1. partial dot products: thread (k, pp) takes vec4s pp, pp + P, ... of key j0 + k
        uint pp = tid % P;
        for (uint k = tid / P; k < nc; k += WG_SIZE / P) {
            float dots[GMAX];
            [[unroll]] for (uint g = 0; g < GMAX; g++) dots[g] = 0.0;
            uint kb = (j0 + k) * kvw4 + kvh * D4;
            for (uint i0 = pp; i0 < D4; i0 += UNROLL_K * P) {
                vec4 kv[UNROLL_K];
                [[unroll]] for (uint u = 0; u < UNROLL_K; u++) {
                    uint i = i0 + u * P;
                    kv[u] = i < D4 ? k4[kb + i] : vec4(0.0);
                }
                [[unroll]] for (uint u = 0; u < UNROLL_K; u++) {
                    uint i = i0 + u * P;
                    if (i < D4) {
                        [[unroll]] for (uint g = 0; g < GMAX; g++) {
                            if (g < gn) dots[g] += dot(q4[qb + g * D4 + i], kv[u]);
                        }
                    }
                }
            }
            [[unroll]] for (uint g = 0; g < GMAX; g++) {
                if (g < gn) sc[g * stride + k * P + pp] = dots[g];
            }
        }
        barrier();

        // 2. scores (sum of the P partials, scale, softcap, mask) and the chunk max per head
        if (smax) {
            float mx = NEG_INF;
            for (uint k = tt; k < nc; k += TPR) {
                uint e = sg * stride + k * P;              // only this thread reads key k's partials
                float s = 0.0;
                for (uint c = 0; c < P; c++) s += sc[e + c];
                s *= pc.scale;
                if (pc.softcap > 0.0) s = pc.softcap * tanh(clamp(s / pc.softcap, -15.0, 15.0));
                if (pc.has_seq != 0u && seq[j0 + k] != my_seq) s = NEG_INF;
                sc[e] = s;
                mx = max(mx, s);
            }
            red_m[tid] = mx;
        }
        barrier();

        // 3. probabilities p = e^(s - m_new) in place, their sum, the rescale of what came before
        if (smax) {
            float mc = NEG_INF;
            for (uint c = 0; c < TPR; c++) mc = max(mc, red_m[sg * TPR + c]);
            float m_old = m_sh[sg], m_new = max(m_old, mc);
            float sum = 0.0;
            for (uint k = tt; k < nc; k += TPR) {
                uint e = sg * stride + k * P;
                float s = sc[e];
                float pr = s == NEG_INF ? 0.0 : exp(s - m_new);   // m_new is -inf only if every s is
                sc[e] = pr;
                sum += pr;
            }
            red_l[tid] = sum;
            if (tt == 0u) {
                corr_sh[sg] = m_new == NEG_INF ? 1.0 : exp(m_old - m_new);   // 0 on the first visible chunk
                mnew_sh[sg] = m_new;
            }
        }
        barrier();

        // 4. running (m, l) per head; acc += p * V over the chunk
        if (smax && tt == 0u) {
            float L = 0.0;
            for (uint c = 0; c < TPR; c++) L += red_l[sg * TPR + c];
            l_sh[sg] = l_sh[sg] * corr_sh[sg] + L;
            m_sh[sg] = mnew_sh[sg];
        }
        if (outp) {
            [[unroll]] for (uint g = 0; g < GMAX; g++) {
                if (g < gn) acc[g] *= corr_sh[g];
            }
            for (uint k0 = kp; k0 < nc; k0 += UNROLL_V * KP) {
                if (k0 != kp) {                            // the first batch was loaded before step 1
                    [[unroll]] for (uint u = 0; u < UNROLL_V; u++) {
                        uint k = k0 + u * KP;
                        vv[u] = k < nc ? v4[vb + k * kvw4] : vec4(0.0);
                    }
                }
                [[unroll]] for (uint u = 0; u < UNROLL_V; u++) {
                    uint k = k0 + u * KP;
                    if (k < nc) {
                        [[unroll]] for (uint g = 0; g < GMAX; g++) {
                            if (g < gn) acc[g] += sc[g * stride + k * P] * vv[u];
                        }
                    }
                }
            }
        }
    }

    // (m, l, acc) of each head -> part; an empty slice writes m = -inf, l = 0, acc = 0
    barrier();                                             // l_sh, m_sh final
    uint hs = pc.n_split * (2u + pc.head_dim);             // part floats per head
    uint pb = (t * pc.n_head + h0) * hs + z * (2u + pc.head_dim);
    if (tid < gn) { part[pb + tid * hs] = m_sh[tid]; part[pb + tid * hs + 1u] = l_sh[tid]; }
    for (uint g = 0; g < gn; g++) {
        vec4 v = acc[0];
        [[unroll]] for (uint u = 1; u < GMAX; u++) if (u == g) v = acc[u];   // constant indices: registers
        if (outp) red_v[tid] = v;
        barrier();
        if (tid < D4) {
            vec4 s = vec4(0.0);
            for (uint c = 0; c < KP; c++) s += red_v[c * D4 + tid];
            uint o = pb + g * hs + 2u + 4u * tid;
            part[o] = s.x; part[o + 1u] = s.y; part[o + 2u] = s.z; part[o + 3u] = s.w;
        }
        barrier();
    }

#ifdef MERGE_LAST
    // Merge: is this the last of the row's n_split workgroups (this head block) to get here?
    // Release: each invocation's part stores above must be visible device-wide before the arrival is
    // counted.  memoryBarrierBuffer() orders them before anything this invocation does next; the
    // barrier() then makes every invocation's fence precede thread 0's atomic (and the fence thread 0
    // repeats right before it, so its own release covers what it has observed through the barrier).
    memoryBarrierBuffer();
    barrier();
    uint ci = t * gl_NumWorkGroups.x + gl_WorkGroupID.x;  // (row t, KV head kvh, head block)
    if (tid == 0u) {
        memoryBarrierBuffer();
        last_sh = atomicAdd(counters[ci], 1u) == pc.n_split - 1u;
    }
    barrier();                                             // last_sh is set (shared memory: barrier() suffices)
    if (last_sh) {                                         // uniform across the workgroup
        // Acquire: thread 0's atomic saw every other slice's arrival, and each of those came after its part
        // stores and fences; the barrier above passed that on to every invocation, and this fence keeps
        // each one's part loads below after it (they are `coherent`, so they read L2 / memory, not a stale
        // per-core cache).
        memoryBarrierBuffer();
        uint zs = 2u + pc.head_dim;                        // part floats per slice
        uint hb = (t * pc.n_head + h0) * hs;               // part index of (row t, head h0, slice 0)
        // 1. per head g: M = max m over the non-empty slices (l > 0; an empty one has m = -inf, l = 0),
        //    L = sum l e^(m - M); TPR threads per head, each over slices tt, tt + TPR, ...  (Loads are not
        //    behind the l > 0 tests, so that they can be in flight together: this tail is latency bound.)
        if (smax) {
            float mx = NEG_INF;
            for (uint zz = tt; zz < pc.n_split; zz += TPR) {
                uint e = hb + sg * hs + zz * zs;
                float m = part[e], l = part[e + 1u];
                if (l > 0.0) mx = max(mx, m);
            }
            red_m[tid] = mx;
        }
        barrier();
        if (smax) {
            float M = NEG_INF;
            for (uint c = 0; c < TPR; c++) M = max(M, red_m[sg * TPR + c]);
            float L = 0.0;
            for (uint zz = tt; zz < pc.n_split; zz += TPR) {
                uint e = hb + sg * hs + zz * zs;
                float m = part[e], l = part[e + 1u];
                L += l > 0.0 ? l * exp(m - M) : 0.0;
            }
            red_l[tid] = L;
            if (tt == 0u) mnew_sh[sg] = M;
        }
        barrier();
        if (smax && tt == 0u) {
            float L = 0.0;
            for (uint c = 0; c < TPR; c++) L += red_l[sg * TPR + c];
            l_sh[sg] = L;
        }
        // 2. thread (dv, kp): sum_z acc_z e^(m_z - M) over slices kp, kp + KP, ... for vec4 dv of each head
        //    (an empty slice's weight is 0: its acc is 0 too, so this adds exactly nothing)
        [[unroll]] for (uint g = 0; g < GMAX; g++) acc[g] = vec4(0.0);
        if (outp) {
            for (uint zz = kp; zz < pc.n_split; zz += KP) {
                [[unroll]] for (uint g = 0; g < GMAX; g++) {
                    if (g < gn) {
                        uint e = hb + g * hs + zz * zs, o = e + 2u + 4u * dv;
                        float m = part[e], l = part[e + 1u];
                        vec4 a = vec4(part[o], part[o + 1u], part[o + 2u], part[o + 3u]);
                        acc[g] += (l > 0.0 ? exp(m - mnew_sh[g]) : 0.0) * a;
                    }
                }
            }
        }
        // 3. the KP parts summed through shared memory, / L, to out
        uint ob = (t * pc.n_head + h0) * pc.head_dim;      // out index of (row t, head h0)
        for (uint g = 0; g < gn; g++) {
            vec4 v = acc[0];
            [[unroll]] for (uint u = 1; u < GMAX; u++) if (u == g) v = acc[u];
            barrier();                                     // red_v's previous readers are done; l_sh final
            if (outp) red_v[tid] = v;
            barrier();
            if (tid < D4) {
                vec4 s = vec4(0.0);
                for (uint c = 0; c < KP; c++) s += red_v[c * D4 + tid];
                s /= l_sh[g];
                uint o = ob + g * pc.head_dim + 4u * tid;
                out_[o] = s.x; out_[o + 1u] = s.y; out_[o + 2u] = s.z; out_[o + 3u] = s.w;
            }
        }
        // Every slice has arrived, so nothing else in this dispatch touches this counter: a plain store
        // resets it; the pipeline barrier before the next dispatch that binds the buffer makes it visible.
        if (tid == 0u) counters[ci] = 0u;
    }
#endif
    }
}
