"""What the Vulkan driver made of our compute shaders: registers, shared memory, instruction counts, ...

    python tools/shader_stats.py matmul_vec_glu_q4_0_tile_sg --spec 128,4,1      # one variant (spec constants 0, 1, ...)
    python tools/shader_stats.py --model llama-3.2-1b-q4_0 --cache-dir /tmp/bench-models   # every pipeline of a decode step

The driver compiles a pipeline with VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR and reports, through
VK_KHR_pipeline_executable_properties, whatever statistics it keeps (NVIDIA: register count, shared memory,
binary size; lavapipe offers no statistics, so there the tool only builds each pipeline).  On a GPU the register count bounds how many threads a compute unit keeps in
flight (occupancy), the first thing to look at when a memory-bound kernel streams below the device's bandwidth.
With --model the tool records the model's one-token decode program on the same device (tools/bench.py's model
names and cache) and lists each (shader, specialization constants) pair its dispatches use, once.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.backends.vulkan_device import COOPMAT_EXTENSIONS  # noqa: E402

PUSH_BYTES = 128            # a push-constant range at least as large as any of our shaders' blocks
MAX_BINDINGS = 16           # storage buffers 0..15: more than any shader binds (a layout may declare unused ones)


class StatsDevice:
    """A bare Vulkan device with pipeline statistics turned on (pyvulkan, apart from kp's device)."""

    def __init__(self, name: str):
        import vulkan as vk
        self.vk = vk
        app = vk.VkApplicationInfo(sType=vk.VK_STRUCTURE_TYPE_APPLICATION_INFO, pApplicationName="shader_stats",
                                   apiVersion=vk.VK_MAKE_VERSION(1, 1, 0))
        self.inst = vk.vkCreateInstance(vk.VkInstanceCreateInfo(sType=vk.VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                                                pApplicationInfo=app), None)
        devices = vk.vkEnumeratePhysicalDevices(self.inst)
        names = [vk.vkGetPhysicalDeviceProperties(d).deviceName for d in devices]
        pick = [i for i, n in enumerate(names) if n == name] or [i for i, n in enumerate(names) if name in n]
        if not pick:
            raise SystemExit(f"no Vulkan device named {name!r}: {names}")
        self.phys, self.name = devices[pick[0]], names[pick[0]]
        # without the extension (lavapipe) pipelines are still built, which checks the SPIR-V and its
        # specialization constants against the driver, but there are no statistics to read
        ext = "VK_KHR_pipeline_executable_properties"
        have = {e.extensionName for e in vk.vkEnumerateDeviceExtensionProperties(self.phys, None)}
        self.has_stats = ext in have
        chain = vk.ffi.NULL
        if self.has_stats:
            chain = vk.VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR(
                sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
                pipelineExecutableInfo=vk.VK_TRUE)
        # the extensions the tensor-core GEMM needs (as VulkanOps asks kp for them), with the features the device
        # has of them, so that its pipelines (matmul_tiled_cm*) can be built and inspected too
        coopmat = [e for e in COOPMAT_EXTENSIONS if e in have] if "VK_NV_cooperative_matrix" in have else []
        if coopmat:
            chain = self._supported_features(chain)
        queue = vk.VkDeviceQueueCreateInfo(sType=vk.VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, queueFamilyIndex=0,
                                           queueCount=1, pQueuePriorities=[1.0])
        exts = ([ext] if self.has_stats else []) + coopmat
        self.dev = vk.vkCreateDevice(self.phys, vk.VkDeviceCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, pNext=chain,
            queueCreateInfoCount=1, pQueueCreateInfos=[queue], enabledExtensionCount=len(exts),
            ppEnabledExtensionNames=exts), None)
        # the raw entry points: pyvulkan's wrappers leave the output structs' sType at 0, which the spec forbids
        ffi, lib = vk.ffi, vk._vulkan.lib
        self._props, self._stats = (
            ffi.cast(f"PFN_{n}", lib.vkGetDeviceProcAddr(self.dev, n.encode())) if self.has_stats else None
            for n in ("vkGetPipelineExecutablePropertiesKHR", "vkGetPipelineExecutableStatisticsKHR"))
        bindings = [vk.VkDescriptorSetLayoutBinding(binding=i, descriptorType=vk.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                    descriptorCount=1, stageFlags=vk.VK_SHADER_STAGE_COMPUTE_BIT)
                    for i in range(MAX_BINDINGS)]
        self.set_layout = vk.vkCreateDescriptorSetLayout(self.dev, vk.VkDescriptorSetLayoutCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, bindingCount=len(bindings),
            pBindings=bindings), None)
        push = vk.VkPushConstantRange(stageFlags=vk.VK_SHADER_STAGE_COMPUTE_BIT, offset=0, size=PUSH_BYTES)
        self.layout = vk.vkCreatePipelineLayout(self.dev, vk.VkPipelineLayoutCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, setLayoutCount=1, pSetLayouts=[self.set_layout],
            pushConstantRangeCount=1, pPushConstantRanges=[push]), None)

    def _supported_features(self, chain):
        """``chain`` preceded by the cooperative-matrix, float16 and memory-model feature structs, each filled with
        what the device supports (as tools/kp_patch.py's Manager does), kept alive on self."""
        vk = self.vk
        self._features = [
            vk.VkPhysicalDeviceCooperativeMatrixFeaturesNV(
                sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, pNext=chain),
        ]
        self._features.append(vk.VkPhysicalDeviceShaderFloat16Int8Features(
            sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, pNext=self._features[-1]))
        self._features.append(vk.VkPhysicalDeviceVulkanMemoryModelFeatures(
            sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES, pNext=self._features[-1]))
        vk.vkGetPhysicalDeviceFeatures2(self.phys, vk.VkPhysicalDeviceFeatures2(
            sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, pNext=self._features[-1]))
        return self._features[-1]

    def stats(self, spirv: bytes, spec: tuple = ()) -> dict:
        """{statistic name: value} of the compute pipeline of ``spirv`` with specialization constants
        0, 1, ... = ``spec`` (32-bit ints, as VulkanOps passes them); several executables are merged with
        their names as prefixes."""
        vk = self.vk
        module = vk.vkCreateShaderModule(self.dev, vk.VkShaderModuleCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, codeSize=len(spirv), pCode=spirv), None)
        spec_info = None
        if spec:
            entries = [vk.VkSpecializationMapEntry(constantID=i, offset=4 * i, size=4) for i in range(len(spec))]
            data = vk.ffi.new("uint32_t[]", [int(v) for v in spec])     # kept alive until the pipeline exists
            spec_info = vk.VkSpecializationInfo(mapEntryCount=len(entries), pMapEntries=entries,
                                                dataSize=4 * len(spec), pData=vk.ffi.cast("void *", data))
        stage = vk.VkPipelineShaderStageCreateInfo(sType=vk.VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                   stage=vk.VK_SHADER_STAGE_COMPUTE_BIT, module=module, pName="main",
                                                   pSpecializationInfo=spec_info)
        pipe = vk.vkCreateComputePipelines(self.dev, None, 1, [vk.VkComputePipelineCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            flags=vk.VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR if self.has_stats else 0, stage=stage,
            layout=self.layout)], None)[0]
        try:
            if not self.has_stats:
                return {}
            info = vk.VkPipelineInfoKHR(sType=vk.VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, pipeline=pipe)
            out = {}
            executables = self._enumerate(self._props, info, "VkPipelineExecutablePropertiesKHR",
                                          vk.VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR)
            for i, ex in enumerate(executables):
                exe = vk.VkPipelineExecutableInfoKHR(sType=vk.VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                                     pipeline=pipe, executableIndex=i)
                prefix = f"{vk.ffi.string(ex.name).decode()}: " if len(executables) > 1 else ""
                for st in self._enumerate(self._stats, exe, "VkPipelineExecutableStatisticKHR",
                                          vk.VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR):
                    out[prefix + vk.ffi.string(st.name).decode()] = _value(vk, st)
            return out
        finally:
            vk.vkDestroyPipeline(self.dev, pipe, None)
            vk.vkDestroyShaderModule(self.dev, module, None)

    def _enumerate(self, fn, info, ctype: str, stype: int) -> list:
        """Vulkan's two-call enumeration (count, then the array) with every output struct's sType set."""
        ffi = self.vk.ffi
        count = ffi.new("uint32_t *")
        info = ffi.addressof(info)                 # pyvulkan builds structs; the entry point takes a pointer
        if fn(self.dev, info, count, ffi.NULL) != 0:
            raise RuntimeError(f"{ctype}: the driver refused the query")
        items = ffi.new(f"{ctype}[]", count[0])
        for it in items:
            it.sType = stype
        if fn(self.dev, info, count, items) != 0:
            raise RuntimeError(f"{ctype}: the driver refused the query")
        return list(items)[: count[0]]


def _value(vk, st):
    fmt, v = st.format, st.value
    if fmt == vk.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
        return bool(v.b32)
    if fmt == vk.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
        return int(v.i64)
    if fmt == vk.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
        return int(v.u64)
    return float(v.f64)


def decode_pipelines(llm) -> list[tuple[str, tuple]]:
    """(shader, specialization constants) of every pipeline the one-token decode program of ``llm`` (an
    engine.llm.LLM on a Vulkan device) uses, in the order first dispatched."""
    prog, _ = llm.model.program(1, decode_steps=1)      # recorded once and cached
    dispatched = {op for op, _, _ in prog.labels}       # (loading may have built others: tile_repack)
    seen = []
    for key in llm.ops._algos:                  # (shader, tensor ids, groups, n_push, spec), insertion-ordered
        if key[0] in dispatched and (key[0], key[4]) not in seen:
            seen.append((key[0], key[4]))
    return seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shader", nargs="?", help="a variant name in engine/spv (or GPT4ALL_SPV_DIR), e.g. matmul_vec_q4_0_tile_sg")
    ap.add_argument("--spec", default="", help="its specialization constants 0, 1, ..., comma-separated")
    ap.add_argument("--model", help="every pipeline of this model's decode step instead (a path or a tools/bench.py name)")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache/gpt4all-vulkan/bench-models"),
                    help="where tools/bench.py keeps (or writes) its random-weight models")
    ap.add_argument("--device", default="kompute", help="the engine's device string (engine/backends/vulkan_device.py)")
    args = ap.parse_args(argv)
    if not args.shader and not args.model:
        ap.error("name a shader or --model")
    from engine.backends.vulkan_device import choose
    from engine.backends.vulkan_ops import SPV_DIR
    spv_dir = Path(os.environ.get("GPT4ALL_SPV_DIR") or SPV_DIR)
    if args.model:
        sys.path.insert(0, str(ROOT / "tools"))
        import bench
        from engine.llm import LLM
        path, _ = bench.resolve_model(args.model, Path(args.cache_dir))
        pipelines = decode_pipelines(LLM(str(path), device=args.device, n_ctx=64))
    else:
        pipelines = [(args.shader, tuple(int(v) for v in args.spec.split(",") if v))]
    sd = StatsDevice(choose(args.device).name)
    print(f"statistics from {sd.name}" if sd.has_stats else
          f"{sd.name} does not offer VK_KHR_pipeline_executable_properties: pipelines built, no statistics")
    for shader, spec in pipelines:
        path = spv_dir / f"{shader}.spv"
        if not path.exists():                   # an A/B set built with --only holds just its variants
            path = SPV_DIR / f"{shader}.spv"
        stats = sd.stats(path.read_bytes(), spec)
        print(f"{shader} spec={','.join(map(str, spec)) or '-'}: " +
              (", ".join(f"{k}={v}" for k, v in stats.items()) or "(built)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
