// The float32 sampling buffer (engine/ops.py SAMPLE_*), binding 1 of the sample shaders.
#define SAMPLE_TEMP 0
#define SAMPLE_TOP_K 1
#define SAMPLE_TOP_P 2
#define SAMPLE_MIN_P 3
#define SAMPLE_REPEAT_PENALTY 4
#define SAMPLE_REPEAT_LAST_N 5
#define SAMPLE_UNIFORMS 8
layout(std430, binding = 1) readonly buffer SampBuf { float samp[]; };   // the host's (never written here)
