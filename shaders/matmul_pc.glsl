// Push constants of the mat-mul shaders (matmul.comp, matmul_vec.comp): one struct, so the host
// (vulkan_ops.VulkanOps.matmul) passes the same values to every variant.
layout(push_constant) uniform PC {
    uint K;          // weights per row (= x width used)
    uint nb;         // blocks per weight row
    uint w_row0;     // first weight row (inside this chunk)
    uint n_out;      // output columns computed by this dispatch
    uint out_col0;   // first output column
    uint x_stride;
    uint out_stride;
    uint flags;      // FLAG_* below
    uint bias_row0;  // bias index of output column 0 (global weight row)
    uint rows_cap;   // capacity of x / out
    float eps;       // the pre-norm's epsilon (FLAG_NORM)
    uint act;        // -DGLU: the gate's activation, 0 silu, 1 gelu (tanh approximation)
    uint up_row_off; // -DGLU: rows from a gate row to its up row
    uint out1_row;   // -DSTACK: rows >= out1_row go to out1 (row - out1_row), ...
    uint out2_row;   // ... rows >= out2_row to out2 (row - out2_row); the rest to out
    uint k_split;    // matmul_tiled.comp: workgroups along K (> 1: partial sums to `part`, added up by
                     // matmul_split_sum.comp); 1 elsewhere
#ifdef ROPE
    // matmul_vec.comp -DSTACK -DROPE (Ops.rope_qkv in the q/k/v mat-vec's epilogue; neox = false): out is q,
    // out1 k, out2 v, whose heads are head_dim wide; k's and v's rows also go to the caches at row pos
    uint head_dim;
    uint n_rot;      // rotated dims per head (pairs (2i, 2i+1), i < n_rot / 2); the rest copied as they are
    float freq_base;
    float freq_scale;
    uint has_ff;     // freq_factors bound (binding 10)
#endif
} pc;

#define FLAG_BIAS 1u     // add bias[bias_row0 + j]
#define FLAG_ACC 2u      // out += the product (Ops.matmul accumulate)
#define FLAG_NORM 4u     // x is pre-normed: rms_norm(x) * g (Ops.matmul norm; matmul_vec.comp only)
