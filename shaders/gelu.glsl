// The activations of the GLU ops (Ops.glu, Ops.matmul_glu).
// GELU, tanh approximation (as ggml): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// The tanh argument is clamped: some drivers compute tanh through exp and overflow to NaN.
float gelu_tanh(float x) {
    const float SQRT_2_OVER_PI = 0.7978845608028654;
    float u = clamp(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(u));
}

float silu(float x) { return x / (1.0 + exp(-x)); }

// act(gate) of the fused GLU kernels, whose push constant `act` picks it: 0 silu (SwiGLU), 1 gelu (GeGLU)
float glu_act(float g, uint act) { return act == 0u ? silu(g) : gelu_tanh(g); }
