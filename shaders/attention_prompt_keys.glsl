// Which keys a batch's query rows see, for the two tiled prompt-attention kernels (attention_prompt.comp in f32,
// attention_prompt_cm.comp on tensor cores), which declare the same push constants (pc.causal, pc.window,
// pc.has_seq) and seq_ids buffer (seq) before including this.  Masks: causal with an optional sliding window, and
// seq_ids (a packed embedding pass: a row sees only its own sequence's rows).

// Row t's visible keys [j_lo, j_hi) (empty past the n active rows) and the union [b_lo, b_hi) over the block of rows
// t0 .. t_last, whose key tiles the workgroup walks.
void visible_keys(uint t, uint t0, uint t_last, uint n, out uint j_lo, out uint j_hi, out uint b_lo, out uint b_hi) {
    bool row_ok = t < n;
    j_lo = 0u;
    j_hi = 0u;
    b_lo = 0u;
    if (pc.causal != 0u) {
        uint p = STEP_POS + t, p0 = STEP_POS + t0;
        if (row_ok) {
            j_hi = p + 1u;
            if (pc.window > 0u && p + 1u > pc.window) j_lo = p + 1u - pc.window;
        }
        b_hi = STEP_POS + t_last + 1u;
        if (pc.window > 0u && p0 + 1u > pc.window) b_lo = p0 + 1u - pc.window;
    } else {
        j_hi = row_ok ? n : 0u;
        b_hi = n;
    }
}

// Whether key j is in [j_lo, j_hi) and, with seq_ids, of the row's sequence my_seq.
bool key_visible(uint j, uint j_lo, uint j_hi, int my_seq) {
    return j >= j_lo && j < j_hi && (pc.has_seq == 0u || seq[j] == my_seq);
}
