// Shared by every compute shader: the workgroup size and the step buffer.
//
// Binding 0 of every shader is the int32 step buffer written by the host before each run
// (engine/ops.py STEP_*).  Ops are recorded once for a buffer *capacity*; the number of real
// rows (n_tokens) and the position are read from here at run time, so one recorded
// command buffer serves every decode step.
#extension GL_GOOGLE_include_directive : require

#ifdef WG_SPEC
// The host picks the workgroup size when it builds the pipeline (specialization constant 0, default
// 64), so one SPIR-V file can be tuned per device (shaders/matmul_vec.comp; vulkan_ops.MatvecKernel).
layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;
layout(local_size_x_id = 0) in;
#define WG_SIZE gl_WorkGroupSize.x
#else
#ifndef WG_SIZE
#define WG_SIZE 64          // <= 128, the smallest maxComputeWorkGroupInvocations Vulkan allows
#endif
layout(local_size_x = WG_SIZE, local_size_y = 1, local_size_z = 1) in;
#endif

#ifdef STEP_WRITABLE          // only advance.comp moves the step on, on the device
layout(std430, binding = 0) buffer StepBuf { int step_buf[]; };            // [8]
#else
layout(std430, binding = 0) readonly buffer StepBuf { int step_buf[]; };   // [8]
#endif
#define STEP_N_TOKENS uint(step_buf[0])
#define STEP_POS      uint(step_buf[1])
#define STEP_N_KV     uint(step_buf[2])
#define STEP_N_HISTORY uint(step_buf[3])   // decode: valid entries of the penalty's history (advance.comp)

// Rows an op processes: the step's n_tokens, clipped to the buffer's capacity.
uint active_rows(uint capacity) { return min(STEP_N_TOKENS, capacity); }

// Loop a workgroup over rows t = its id, id + number of groups, ... < active rows.  Dispatches are
// recorded once for a buffer's capacity, so instead of one workgroup per capacity row (most of them
// idle for a short prompt, and an idle workgroup is not free on every driver) the host launches a
// few row groups along dimension `dim` and each strides over the rows that are real this step.
#define FOR_ROWS(t, cap, dim) for (uint t = gl_WorkGroupID.dim; t < active_rows(cap); t += gl_NumWorkGroups.dim)

// Workgroup reductions.  Portable path: a shared-memory tree (no subgroup size assumed).
// -DUSE_SUBGROUP (chosen at run time only where the device reports subgroup arithmetic in compute
// shaders): subgroupAdd/Max inside each subgroup, then one shared slot per subgroup -- two
// barriers instead of log2(WG_SIZE) + 1.  gl_SubgroupSize is whatever the device uses.
shared float red_buf[WG_SIZE];

#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
float wg_sum(float v) {
    float s = subgroupAdd(v);
    barrier();                       // red_buf may still be read by a previous reduction
    if (subgroupElect()) red_buf[gl_SubgroupID] = s;
    barrier();
    float total = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) total += red_buf[i];
    return total;
}
float wg_max(float v) {
    float s = subgroupMax(v);
    barrier();
    if (subgroupElect()) red_buf[gl_SubgroupID] = s;
    barrier();
    float m = red_buf[0];
    for (uint i = 1; i < gl_NumSubgroups; i++) m = max(m, red_buf[i]);
    return m;
}
#else
float wg_sum(float v) {
    uint tid = gl_LocalInvocationID.x;
    barrier();                       // red_buf may still be read by a previous reduction
    red_buf[tid] = v;
    barrier();
    for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (tid < s) red_buf[tid] += red_buf[tid + s];
        barrier();
    }
    return red_buf[0];
}

float wg_max(float v) {
    uint tid = gl_LocalInvocationID.x;
    barrier();
    red_buf[tid] = v;
    barrier();
    for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (tid < s) red_buf[tid] = max(red_buf[tid], red_buf[tid + s]);
        barrier();
    }
    return red_buf[0];
}
#endif
