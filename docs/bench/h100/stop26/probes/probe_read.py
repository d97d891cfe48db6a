"""THROWAWAY (stop 26): what a plain CUDA read of the 8B decode mat-vecs' weight bytes costs on this GPU.
Each kernel XOR-reduces a buffer of uint4s (every byte loaded once, from DRAM: buffers rotate over > 1 GB);
timed with CUDA events over a CUDA graph of many launches (no host gaps)."""
import sys
import cupy as cp

SRC = r'''
extern "C" __global__ void rd(const uint4* __restrict__ p, unsigned long long n, unsigned* out) {
    uint4 a = make_uint4(0, 0, 0, 0);
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint4 v = p[i]; a.x ^= v.x; a.y ^= v.y; a.z ^= v.z; a.w ^= v.w;
    }
    if ((a.x ^ a.y ^ a.z ^ a.w) == 0x9e3779b9u) out[0] = 1u;
}
'''
rd = cp.RawKernel(SRC, "rd")
out = cp.zeros(1, cp.uint32)
MB = 1e6
SIZES = {"qkv": 14.16 * MB, "o": 9.44 * MB, "gate_up": 66.06 * MB, "down": 33.03 * MB, "lm_head": 295.5 * MB}


def bufs(nbytes, count):
    n = int(nbytes) // 16
    return [cp.random.randint(0, 2**31, size=4 * n, dtype=cp.uint32).view(cp.uint32) for _ in range(count)], n


def timed(launches, reps=3):
    """launches: list of (buf, n, blocks, threads); µs per pass over the list, best of reps, inside a CUDA graph."""
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        s.begin_capture()
        for b, n, g, t in launches:
            rd((g,), (t,), (b, cp.uint64(n), out))
        graph = s.end_capture()
        graph.launch(s)
        s.synchronize()
        best = 1e30
        for _ in range(reps):
            e0, e1 = cp.cuda.Event(), cp.cuda.Event()
            e0.record(s)
            graph.launch(s)
            e1.record(s)
            e1.synchronize()
            best = min(best, cp.cuda.get_elapsed_time(e0, e1) * 1000)
    return best


def main():
    dev = cp.cuda.Device()
    sms = dev.attributes["MultiProcessorCount"]
    print(f"device {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()} SMs {sms}")
    pools = {k: bufs(v, max(2, int(1.2e9 // v))) for k, v in SIZES.items()}
    for name, (bl, n) in pools.items():
        for g_per_sm, t in ((4, 256), (8, 256), (16, 128), (32, 128)):
            g = g_per_sm * sms
            launches = [(bl[i % len(bl)], n, g, t) for i in range(64)]
            us = timed(launches) / 64
            print(f"{name:8s} {SIZES[name] / MB:7.2f} MB grid {g:5d}x{t:3d}: {us:8.2f} us per kernel, "
                  f"{SIZES[name] / us / 1e6:6.3f} TB/s")
    # one decode layer's mat-vec weights, 32 layers back to back (each buffer distinct: DRAM reads)
    for g_per_sm, t in ((8, 256), (16, 128)):
        g = g_per_sm * sms
        launches = []
        for layer in range(32):
            for k in ("qkv", "o", "gate_up", "down"):
                bl, n = pools[k]
                launches.append((bl[layer % len(bl)], n, g, t))
        us = timed(launches)
        total = sum(SIZES[k] for k in ("qkv", "o", "gate_up", "down")) * 32
        print(f"32 layers x (qkv, o, gate_up, down), grid {g}x{t}: {us:9.1f} us, {us / 32:6.2f} us a layer, "
              f"{total / us / 1e6:6.3f} TB/s; + lm_head at the row above's rate")


if __name__ == "__main__":
    sys.exit(main())
