// The rope rotation, shared by rope.comp (Ops.rope, Ops.rope_qkv) and matmul_vec.comp -DROPE (rope_qkv done
// in the q/k/v mat-vec's epilogue), so both rotate with the same arithmetic: pair i (< n_rot/2) at position p
// turns by the angle p * freq_scale * freq_base^(-2i/n_rot) / factor (factor: freq_factors[i], Llama 3's rope
// scaling, or 1.0 without them: x / 1.0 is exact, so no branch is needed here).

const float TWO_PI = 6.283185307179586;

// (cos, sin) of that angle.
vec2 rope_rotation(uint i, float p, uint n_rot, float freq_base, float freq_scale, float factor) {
    float inv_freq = freq_scale * pow(freq_base, -2.0 * float(i) / float(n_rot)) / factor;
    float angle = p * inv_freq;
    angle -= TWO_PI * floor(angle / TWO_PI);     // sin/cos are only accurate on a small range
    return vec2(cos(angle), sin(angle));
}

// The pair (a, b) rotated by (cos, sin) = cs.
vec2 rotated(float a, float b, vec2 cs) { return vec2(a * cs.x - b * cs.y, a * cs.y + b * cs.x); }
