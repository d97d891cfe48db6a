#version 450
// THROWAWAY (stop 26): every uvec4 of a buffer loaded once (grid-stride), XOR-reduced: the read floor
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer A { uvec4 a[]; };
layout(std430, binding = 1) buffer O { uint o[]; };
layout(push_constant) uniform P { uint n; } pc;
void main() {
    uvec4 acc = uvec4(0);
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint i = gl_GlobalInvocationID.x; i < pc.n; i += stride) acc ^= a[i];
    if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x9e3779b9u) o[0] = 1u;
}
