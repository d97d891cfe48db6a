// Radix selection over the logits' order-preserving integer keys, shared by sample.comp and
// sample_partial.comp: the k-th largest of many values is found 8 bits at a time (a shared-memory
// histogram of the next 8 bits of the keys that match the bits found so far, then the bin that holds
// the k-th), with no sort of the whole vocabulary.

// float -> uint whose unsigned order is the float order
uint okey(float f) {
    uint u = floatBitsToUint(f);
    return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}
float unkey(uint k) {
    return uintBitsToFloat((k & 0x80000000u) != 0u ? (k & 0x7FFFFFFFu) : ~k);
}

shared uint hist[256];
shared uint grp_sum[16];
shared uint sel_bin, sel_above, sel_count;

// With hist[] filled: the bin b holding the need-th largest key (1 <= need <= the keys counted), with
// sel_above = the keys in bins above b and sel_count = hist[b], for every thread.  A scan of the 256 bins
// by one thread would be a chain of 256 shared loads (four times per select); here 16 threads
// sum 16 bins each, each finds how many keys lie in the groups above its own, and the one whose group
// holds the need-th key scans its 16 bins: about 48 dependent loads.  Needs >= 16 threads; ends with a barrier.
void pick_bin(uint need) {
    uint tid = gl_LocalInvocationID.x;
    if (tid < 16u) {
        uint s = 0u;
        for (uint c = 0u; c < 16u; c++) s += hist[16u * tid + c];
        grp_sum[tid] = s;
    }
    barrier();
    if (tid < 16u) {
        uint above = 0u;
        for (uint g = tid + 1u; g < 16u; g++) above += grp_sum[g];
        if (above < need && need <= above + grp_sum[tid]) {
            for (int c = 15; c >= 0; c--) {
                uint h = hist[16u * tid + uint(c)];
                if (above + h >= need) {
                    sel_bin = 16u * tid + uint(c); sel_above = above; sel_count = h;
                    break;
                }
                above += h;
            }
        }
    }
    barrier();
}
