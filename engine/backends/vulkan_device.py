"""Vulkan devices: enumeration, choice, and the memory check done before a model is uploaded.

``list_gpus()`` asks the Vulkan loader (through pyvulkan) for every physical device: its name, vendor,
type, device-local memory and the limits our shaders must respect (subgroup size,
maxStorageBufferRange).  The list is in vkEnumeratePhysicalDevices order, which is also the index
``kp.Manager(index)`` takes, so an entry's ``index`` opens that very device with Kompute.

``open_device(spec)`` turns a user's device string into a ``VulkanOps``:

    'gpu'                       the best real GPU: discrete > integrated > virtual, then memory
    'nvidia' | 'amd' | 'intel'  the best GPU of that vendor (Intel included: upstream refused it)
    'kompute'                   the best device of all, a CPU Vulkan device such as lavapipe included
    '<name>' | 'kompute:<name>' the device with exactly that name
Anything else, or a choice with no device, is a ValueError that lists the devices.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# PCI vendor ids (and Mesa's id for its software devices)
VENDORS = {0x10DE: "nvidia", 0x1002: "amd", 0x1022: "amd", 0x8086: "intel", 0x13B5: "arm",
           0x5143: "qualcomm", 0x1010: "imgtec", 0x106B: "apple", 0x10005: "mesa"}
# VkPhysicalDeviceType -> our name
TYPES = {0: "other", 1: "integrated", 2: "discrete", 3: "virtual", 4: "cpu"}
TYPE_RANK = {"discrete": 3, "integrated": 2, "virtual": 1, "other": 0, "cpu": -1}


@dataclass(frozen=True)
class GpuInfo:
    index: int                      # kp.Manager(index)
    name: str
    vendor: str                     # 'nvidia' | 'amd' | 'intel' | 'cpu' | ... (software devices: 'cpu')
    type: str                       # 'discrete' | 'integrated' | 'virtual' | 'cpu' | 'other'
    memory_bytes: int               # largest device-local heap
    subgroup_size: int
    max_storage_buffer_range: int   # the largest buffer one shader binding may see
    max_shared_memory: int = 32768
    max_workgroup_invocations: int = 128
    subgroup_arithmetic: bool = False   # subgroupAdd/Max usable in compute shaders (the *_sg variants)
    subgroup_shuffle: bool = False      # subgroupShuffleXor usable in compute shaders (attention_decode_sg)
    timestamp_period: float = 1.0   # nanoseconds per GPU timestamp tick (VulkanOps.timings)
    # (M, N, K) shapes of the device's f16 x f16 + f32 subgroup cooperative matrices (VK_NV_cooperative_matrix
    # with VK_KHR_shader_float16_int8; tensor cores on NVIDIA): the tiled GEMM's -DCOOPMAT variant uses them
    coopmat_shapes: tuple = ()
    # shaderIntegerDotProduct (VK_KHR_shader_integer_dot_product): dot products of four 8-bit lanes in shaders,
    # which the decode mat-vec's -DINT_DOT build uses for the tile layout
    integer_dot: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.type in ("discrete", "integrated", "virtual")


@lru_cache(maxsize=1)
def list_gpus() -> tuple[GpuInfo, ...]:
    """Every Vulkan physical device, in the loader's order (cached: enumeration costs ~50 ms)."""
    import vulkan as vk
    app = vk.VkApplicationInfo(sType=vk.VK_STRUCTURE_TYPE_APPLICATION_INFO, pApplicationName="gpt4all-vulkan",
                               apiVersion=vk.VK_MAKE_VERSION(1, 1, 0))
    try:
        inst = vk.vkCreateInstance(vk.VkInstanceCreateInfo(sType=vk.VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                                           pApplicationInfo=app), None)
    except Exception:               # no loader / no driver: no devices
        return ()
    out = []
    try:
        for index, pd in enumerate(vk.vkEnumeratePhysicalDevices(inst)):
            extensions = {str(e.extensionName) for e in vk.vkEnumerateDeviceExtensionProperties(pd, None)}
            props = vk.vkGetPhysicalDeviceProperties(pd)
            sub = vk.VkPhysicalDeviceSubgroupProperties(sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES)
            vk.vkGetPhysicalDeviceProperties2(pd, vk.VkPhysicalDeviceProperties2(
                sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, pNext=sub))
            mem = vk.vkGetPhysicalDeviceMemoryProperties(pd)
            heaps = [mem.memoryHeaps[i] for i in range(mem.memoryHeapCount)]
            local = [h.size for h in heaps if h.flags & vk.VK_MEMORY_HEAP_DEVICE_LOCAL_BIT] or [h.size for h in heaps]
            dtype = TYPES.get(int(props.deviceType), "other")
            vendor = "cpu" if dtype == "cpu" else VENDORS.get(int(props.vendorID), hex(props.vendorID))
            out.append(GpuInfo(index=index, name=str(props.deviceName), vendor=vendor, type=dtype,
                               memory_bytes=int(max(local)), subgroup_size=int(sub.subgroupSize),
                               max_storage_buffer_range=int(props.limits.maxStorageBufferRange),
                               max_shared_memory=int(props.limits.maxComputeSharedMemorySize),
                               max_workgroup_invocations=int(props.limits.maxComputeWorkGroupInvocations),
                               timestamp_period=float(props.limits.timestampPeriod),
                               coopmat_shapes=_coopmat_shapes(vk, inst, pd, extensions),
                               integer_dot=_integer_dot(vk, pd, extensions),
                               subgroup_arithmetic=bool(
                                   sub.supportedStages & vk.VK_SHADER_STAGE_COMPUTE_BIT
                                   and sub.supportedOperations & vk.VK_SUBGROUP_FEATURE_ARITHMETIC_BIT
                                   and sub.supportedOperations & vk.VK_SUBGROUP_FEATURE_BASIC_BIT),
                               subgroup_shuffle=bool(
                                   sub.supportedStages & vk.VK_SHADER_STAGE_COMPUTE_BIT
                                   and sub.supportedOperations & vk.VK_SUBGROUP_FEATURE_SHUFFLE_BIT)))
    finally:
        vk.vkDestroyInstance(inst, None)
    return tuple(out)


# VkComponentTypeNV and VkScopeNV values (pyvulkan leaves these aliases unset)
_FLOAT16, _FLOAT32, _SCOPE_SUBGROUP = 0, 1, 3
# what the -DCOOPMAT GEMM needs (glslang declares the Vulkan memory model in any shader with cooperative matrices);
# VulkanOps passes them to kp.Manager, whose patched createDevice enables their features (tools/kp_patch.py)
COOPMAT_EXTENSIONS = ("VK_NV_cooperative_matrix", "VK_KHR_shader_float16_int8", "VK_KHR_vulkan_memory_model")


def _coopmat_shapes(vk, inst, pd, extensions) -> tuple:
    """The (M, N, K) shapes of f16 A and B, f32 C and D subgroup cooperative matrices the device offers
    through VK_NV_cooperative_matrix, if it also has the other COOPMAT_EXTENSIONS; () otherwise."""
    if not all(e in extensions for e in COOPMAT_EXTENSIONS):
        return ()
    try:
        query = vk.vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV")
        props = query(pd)
    except Exception:               # a loader or binding without it: no cooperative matrices
        return ()
    return tuple(sorted({(int(p.MSize), int(p.NSize), int(p.KSize)) for p in props
                         if (p.AType, p.BType, p.CType, p.DType, p.scope)
                         == (_FLOAT16, _FLOAT16, _FLOAT32, _FLOAT32, _SCOPE_SUBGROUP)}))


# the extension whose feature the -DINT_DOT mat-vec needs; VulkanOps passes it to kp.Manager, whose patched
# createDevice enables that feature (tools/kp_patch.py, PATCH_LEVEL 4)
INTEGER_DOT_EXTENSION = "VK_KHR_shader_integer_dot_product"


def _integer_dot(vk, pd, extensions) -> bool:
    """Whether the device offers VK_KHR_shader_integer_dot_product with its shaderIntegerDotProduct feature."""
    if INTEGER_DOT_EXTENSION not in extensions:
        return False
    try:
        feat = vk.VkPhysicalDeviceShaderIntegerDotProductFeatures(
            sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES)
        vk.vkGetPhysicalDeviceFeatures2(pd, vk.VkPhysicalDeviceFeatures2(
            sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, pNext=feat))
    except Exception:               # a loader or binding without the query: go without
        return False
    return bool(feat.shaderIntegerDotProduct)


def _best(devices) -> GpuInfo | None:
    return max(devices, key=lambda d: (TYPE_RANK.get(d.type, 0), d.memory_bytes), default=None)


def _describe(devices) -> str:
    if not devices:
        return "no Vulkan devices found"
    return "available: " + ", ".join(f"'{d.name}' ({d.vendor} {d.type}, {d.memory_bytes / 2**30:.1f} GiB)"
                                     for d in devices)


def choose(spec: str) -> GpuInfo:
    """The device a device string names (see the module docstring); ValueError otherwise."""
    devices = list_gpus()
    key = spec.strip()
    low = key.lower()
    if low == "gpu":
        found = _best([d for d in devices if d.is_gpu])
    elif low in ("nvidia", "amd", "intel"):
        found = _best([d for d in devices if d.vendor == low and d.is_gpu])
    elif low == "kompute":
        found = _best(devices)
    else:
        name = key[len("kompute:"):] if low.startswith("kompute:") else key
        found = next((d for d in devices if d.name == name), None)
    if found is None:
        raise ValueError(f"no Vulkan device matches device={spec!r}; {_describe(devices)} "
                         f"(use 'gpu', 'nvidia', 'amd', 'intel', 'kompute' or a device name)")
    return found


def best_available() -> str:
    """The device string for 'the best backend this machine has': 'gpu' when Vulkan shows a real GPU,
    else 'cpu' (the NumPy engine outruns a software Vulkan device such as lavapipe)."""
    try:
        return "gpu" if any(d.is_gpu for d in list_gpus()) else "cpu"
    except ImportError:             # no pyvulkan: no way to see a GPU
        return "cpu"


def open_device(device: str):
    """A ``VulkanOps`` on the device the string names (engine.load calls this for device != 'cpu')."""
    from .vulkan_ops import VulkanOps
    return VulkanOps(choose(device))


def check_fits(info: GpuInfo, bytes_needed: int, what: str = "the model") -> None:
    """Raise before allocating when ``bytes_needed`` cannot fit in the device's memory."""
    if bytes_needed > info.memory_bytes:
        raise ValueError(f"{what} needs {bytes_needed / 2**20:.1f} MiB of device memory but "
                         f"'{info.name}' has {info.memory_bytes / 2**20:.1f} MiB")
