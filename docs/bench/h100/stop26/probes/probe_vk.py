"""THROWAWAY (stop 26): the read floor of probe_read.py, through Vulkan / kp with the engine's global barriers:
32 layers x (qkv, o, gate_up, down) weight-sized plain reads (probe_read.comp), recorded once, with and without
a barrier after each dispatch.  Per-layer time = (wall of 64 layers - wall of 32 layers) / 32 (removes the
submit-and-wait round trip)."""
import os
import time

import numpy as np
import kp

from engine.backends.vulkan_ops import (push_constants, _ACCESS_SHADER_READ, _ACCESS_SHADER_WRITE,
                                        _ACCESS_TRANSFER_WRITE, _STAGE_COMPUTE_SHADER, _STAGE_TRANSFER)

MB = 1e6 * float(os.environ.get("PROBE_SCALE", "1"))
SIZES = {"qkv": 14.16 * MB, "o": 9.44 * MB, "gate_up": 66.06 * MB, "down": 33.03 * MB}
SPV = open("probe_spv/read.spv", "rb").read()


def main():
    mgr = kp.Manager(0)
    out = mgr.tensor_t(np.zeros(16, np.uint32), kp.TensorTypes.storage)
    pools = {}
    for k, v in SIZES.items():
        n = int(v) // 16
        count = max(2, int(1.2e9 * float(os.environ.get("PROBE_SCALE", "1")) // v))
        pools[k] = ([mgr.tensor_t(np.zeros(4 * n, np.uint32), kp.TensorTypes.storage) for _ in range(count)], n)
    barrier = kp.OpGlobalBarrier(_ACCESS_SHADER_WRITE | _ACCESS_TRANSFER_WRITE, _ACCESS_SHADER_READ | _ACCESS_SHADER_WRITE,
                                 _STAGE_COMPUTE_SHADER | _STAGE_TRANSFER, _STAGE_COMPUTE_SHADER)
    algos = {}

    def algo(t, n, groups, wg):
        key = (id(t), groups, wg)
        if key not in algos:
            algos[key] = mgr.algorithm([t, out], SPV, [groups, 1, 1], push_constants(wg), push_constants(n))
        return algos[key]

    def seq_for(layers, groups, wg, barriers, only=None):
        s = mgr.sequence()
        for layer in range(layers):
            for k in (only or ("qkv", "o", "gate_up", "down")):
                bl, n = pools[k]
                s.record(kp.OpAlgoDispatch(algo(bl[layer % len(bl)], n, groups, wg)))
                if barriers:
                    s.record(barrier)
        return s

    def wall(s, reps=7):
        s.eval()
        best = 1e30
        for _ in range(reps):
            t0 = time.perf_counter()
            s.eval()
            best = min(best, time.perf_counter() - t0)
        return best * 1e6

    for groups, wg in ((1056, 256), (4224, 128), (1024, 128)):
        for barriers in (True, False):
            a, b = seq_for(32, groups, wg, barriers), seq_for(64, groups, wg, barriers)
            per_layer = (wall(b) - wall(a)) / 32
            print(f"vulkan read floor, grid {groups}x{wg}, barriers {barriers}: {per_layer:6.2f} us a layer "
                  f"(4 dispatches), {sum(SIZES.values()) / per_layer / 1e6:5.3f} TB/s", flush=True)
        for k in SIZES:
            a, b = seq_for(32, groups, wg, True, (k,)), seq_for(64, groups, wg, True, (k,))
            per = (wall(b) - wall(a)) / 32
            print(f"   {k:8s} {SIZES[k] / MB:6.2f} MB + barrier: {per:6.2f} us, {SIZES[k] / per / 1e6:5.3f} TB/s", flush=True)


if __name__ == "__main__":
    main()
