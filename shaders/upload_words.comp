#version 450
// Weight upload, not an op: dst[i] = src[i] for the chunk's n words, src a temporary host-visible buffer,
// dst the device-local buffer the weight lives in.  A shader, not vkCmdCopyBuffer (kp.OpTensorCopy): kp
// creates device-local ('storage') tensors without the transfer usage flags a copy needs, so a copy into
// one is invalid usage that drivers only happen to accept (the validation layer reports it);
// VulkanOps._written_by.
// No step buffer: bindings 0 and 1 are the two buffers.  One thread per uvec4; the n % 4 words past the
// last whole uvec4 go one per thread to the first threads.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer S { uint src[]; };
layout(std430, binding = 0) readonly buffer S4 { uvec4 src4[]; };
layout(std430, binding = 1) writeonly buffer D { uint dst[]; };
layout(std430, binding = 1) writeonly buffer D4 { uvec4 dst4[]; };

layout(push_constant) uniform PC { uint n; } pc;                  // words to copy

void main() {
    uint id = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
    uint n4 = pc.n / 4u;
    if (id < n4) dst4[id] = src4[id];
    if (id < pc.n % 4u) dst[4u * n4 + id] = src[4u * n4 + id];
}
