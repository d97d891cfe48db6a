"""Patch an unpacked kp (Kompute) 0.9.0 source tree so the engine can order its dispatches cheaply.

    python tools/kp_patch.py SRC_DIR            # idempotent; tools/setup.sh and tools/gpu_run.sh run it

Why: kp 0.9 has no Python op for a compute -> compute barrier, and ``OpAlgoDispatch`` records, before
every dispatch, one transfer -> compute buffer barrier per bound tensor.  The unpatched engine orders
dependent dispatches with an ``OpTensorSyncLocal`` of a 4-byte tensor (a barrier, a copy to host
memory, a barrier; see engine/backends/vulkan_ops.py).  On an NVIDIA H100 that made a trivial dependent
dispatch cost ~19 us and an independent one ~10 us (tools/bench_kernels.py, dispatch:* cases), so a
1B-shaped decode step of 294 dispatches spent ~4 ms in ordering alone.

The patch adds three things to kp, nothing else changes:
- ``kp.OpGlobalBarrier(src_access, dst_access, src_stage, dst_stage)``: one ``vkCmdPipelineBarrier``
  with one global ``VkMemoryBarrier`` (Vulkan flag bits as integers), i.e. what llama.cpp records
  between dependent dispatches;
- ``kp.set_dispatch_barriers(on)``: whether ``OpAlgoDispatch`` records its per-tensor barriers at
  record time (default on, kp's behaviour).  The engine turns them off only while it records its own
  programs, which carry their own ``OpGlobalBarrier``s wherever a hazard exists;
- ``Sequence.eval_async()`` that submits and returns (``kp.PATCH_LEVEL`` 3): kp 0.9's Python binding of it
  calls the C++ ``eval()``, i.e. submits and waits, so nothing could overlap a submission (engine/llm.py
  starts the next decode chunk before it waits for the current one);
- optional device features (``kp.PATCH_LEVEL`` 2): kp 0.9 enables the extensions a ``kp.Manager`` is
  given but never their features (``VkDeviceCreateInfo`` has no ``pNext``).  For the two extensions
  the tensor-core GEMM needs (shaders/matmul_tiled.comp -DCOOPMAT), VK_KHR_shader_float16_int8,
  VK_KHR_vulkan_memory_model (glslang declares the Vulkan memory model in every shader that uses
  cooperative matrices) and VK_NV_cooperative_matrix, the patched ``Manager`` asks the device which of their features it has
  (``vkGetPhysicalDeviceFeatures2``) and enables exactly those.  Without these extensions in the
  Manager's list nothing changes.  ``kp.PATCH_LEVEL`` 4 adds VK_KHR_shader_integer_dot_product's feature
  (shaderIntegerDotProduct) the same way: the decode mat-vec's integer dot products (shaders/matmul_vec.comp
  -DINT_DOT).

The engine checks for the attributes and falls back without them (the unpatched barrier scheme, no
cooperative matrices), so a kp built elsewhere still works (slower on a real GPU).
"""
from __future__ import annotations

import sys
from pathlib import Path

MARK = "gpt4all-vulkan patch"

GLOBAL_BARRIER_CLASS = f"""
// {MARK}: one global memory barrier between dispatches (see tools/kp_patch.py)
class OpGlobalBarrier : public kp::OpBase
{{
  public:
    OpGlobalBarrier(uint32_t srcAccess, uint32_t dstAccess, uint32_t srcStage, uint32_t dstStage)
      : mSrcAccess(srcAccess), mDstAccess(dstAccess), mSrcStage(srcStage), mDstStage(dstStage)
    {{
    }}
    void record(const vk::CommandBuffer& commandBuffer) override
    {{
        vk::MemoryBarrier barrier{{ vk::AccessFlags(mSrcAccess), vk::AccessFlags(mDstAccess) }};
        commandBuffer.pipelineBarrier(vk::PipelineStageFlags(mSrcStage), vk::PipelineStageFlags(mDstStage),
                                      vk::DependencyFlags(), 1, &barrier, 0, nullptr, 0, nullptr);
    }}
    void preEval(const vk::CommandBuffer&) override {{}}
    void postEval(const vk::CommandBuffer&) override {{}}

  private:
    uint32_t mSrcAccess, mDstAccess, mSrcStage, mDstStage;
}};
namespace kp {{ extern bool gRecordDispatchBarriers; }}
"""

GLOBAL_BARRIER_BINDING = f"""
    // {MARK}
    py::class_<OpGlobalBarrier, kp::OpBase, std::shared_ptr<OpGlobalBarrier>>(m, "OpGlobalBarrier")
      .def(py::init<uint32_t, uint32_t, uint32_t, uint32_t>(), py::arg("src_access"), py::arg("dst_access"),
           py::arg("src_stage"), py::arg("dst_stage"));
    m.def("set_dispatch_barriers", [](bool on) {{ kp::gRecordDispatchBarriers = on; }}, py::arg("on"));

"""

PATCH_LEVEL = 4     # 1: barriers; 2: + device features; 3: + an asynchronous eval_async; 4: + integer dot product
PATCH_LEVEL_BINDING = f"""    m.attr("PATCH_LEVEL") = {PATCH_LEVEL};  // {MARK}: see tools/kp_patch.py
"""
PATCH_LEVEL_3_BINDING = f"""    m.attr("PATCH_LEVEL") = 3;  // {MARK}: see tools/kp_patch.py
"""
PATCH_LEVEL_2_BINDING = f"""    m.attr("PATCH_LEVEL") = 2;  // {MARK}: 2 = barriers + device features
"""
# kp 0.9's binding of Sequence.eval_async() (no op) runs eval(): submit *and wait*
EVAL_ASYNC_STOCK = """        "eval_async",
        [](kp::Sequence& self) { return self.eval(); },"""
EVAL_ASYNC_FIXED = f"""        "eval_async",  // {MARK}: kp 0.9 called eval() here
        [](kp::Sequence& self) {{ return self.evalAsync(); }},"""

# level 4: the integer dot product feature, a loop of its own before the query (also inserted into a level-2/3 tree)
INTEGER_DOT_MARK = "integer dot product feature"
INTEGER_DOT_BRANCH = f"""// {MARK}: {INTEGER_DOT_MARK}
    vk::PhysicalDeviceShaderIntegerDotProductFeatures integerDotFeatures;
    for (const char* ext : validExtensions) {{
        if (std::string(ext) == VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME) {{
            integerDotFeatures.pNext = featureChain;
            featureChain = &integerDotFeatures;
        }}
    }}
"""
INTEGER_DOT_ANCHOR = "    if (featureChain != nullptr) {\n"

# Manager::createDevice: the optional features of the extensions the Manager was given, as supported
FEATURE_CHAIN = f"""
    // {MARK}: enable the features of the optional extensions the engine may ask for (tools/kp_patch.py)
    vk::PhysicalDeviceShaderFloat16Int8Features float16Int8Features;
    vk::PhysicalDeviceVulkanMemoryModelFeatures memoryModelFeatures;
    vk::PhysicalDeviceCooperativeMatrixFeaturesNV cooperativeMatrixFeatures;
    void* featureChain = nullptr;
    for (const char* ext : validExtensions) {{
        if (std::string(ext) == VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME) {{
            float16Int8Features.pNext = featureChain;
            featureChain = &float16Int8Features;
        }} else if (std::string(ext) == VK_KHR_VULKAN_MEMORY_MODEL_EXTENSION_NAME) {{
            memoryModelFeatures.pNext = featureChain;
            featureChain = &memoryModelFeatures;
        }} else if (std::string(ext) == VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME) {{
            cooperativeMatrixFeatures.pNext = featureChain;
            featureChain = &cooperativeMatrixFeatures;
        }}
    }}
    {INTEGER_DOT_BRANCH}
    if (featureChain != nullptr) {{
        vk::PhysicalDeviceFeatures2 supported;
        supported.pNext = featureChain;
        physicalDevice.getFeatures2(&supported);   // fills each struct with what the device has
    }}
"""
DEVICE_CREATE = "    vk::DeviceCreateInfo deviceCreateInfo(vk::DeviceCreateFlags(),"
DEVICE_MAKE = "    this->mDevice = std::make_shared<vk::Device>();"
FEATURE_PNEXT = f"    deviceCreateInfo.pNext = featureChain;  // {MARK}\n"

DISPATCH_FLAG = f"\nnamespace kp {{ bool gRecordDispatchBarriers = true; }}  // {MARK}\n"
DISPATCH_LOOP = "    for (const std::shared_ptr<Tensor>& tensor :\n         this->mAlgorithm->getTensors()) {"


def _edit(path: Path, anchor: str, new_text: str, after: bool = True) -> None:
    text = path.read_text()
    if anchor not in text:
        raise SystemExit(f"kp_patch: {path}: anchor not found (not kp 0.9.0?): {anchor!r}")
    text = text.replace(anchor, anchor + new_text if after else new_text + anchor, 1)
    path.write_text(text)


def patch(src: Path) -> bool:
    """Apply the patch to the kp source tree ``src``; False if it was already applied.  Each file is
    patched once (a tree patched by the level-1 patch, barriers only, gets the rest)."""
    main = src / "python" / "src" / "main.cpp"
    dispatch = src / "src" / "OpAlgoDispatch.cpp"
    manager = src / "src" / "Manager.cpp"
    changed = False
    if MARK not in main.read_text():
        _edit(main, '#include "utils.hpp"\n', GLOBAL_BARRIER_CLASS)
        _edit(main, "    py::class_<kp::Algorithm, std::shared_ptr<kp::Algorithm>>(", GLOBAL_BARRIER_BINDING,
              after=False)
        changed = True
    text = main.read_text()
    older = [b for b in (PATCH_LEVEL_2_BINDING, PATCH_LEVEL_3_BINDING) if b in text]
    if older:                                   # a tree patched to level 2 or 3: bring its level up
        main.write_text(text.replace(older[0], PATCH_LEVEL_BINDING))
        changed = True
    elif "PATCH_LEVEL" not in text:
        _edit(main, "    py::class_<kp::Algorithm, std::shared_ptr<kp::Algorithm>>(", PATCH_LEVEL_BINDING,
              after=False)
        changed = True
    text = main.read_text()
    if EVAL_ASYNC_STOCK in text:
        main.write_text(text.replace(EVAL_ASYNC_STOCK, EVAL_ASYNC_FIXED))
        changed = True
    if MARK not in dispatch.read_text():
        _edit(dispatch, '#include "kompute/operations/OpAlgoDispatch.hpp"\n', DISPATCH_FLAG)
        _edit(dispatch, DISPATCH_LOOP, f"    if (gRecordDispatchBarriers)  // {MARK}\n", after=False)
        changed = True
    if MARK not in manager.read_text():
        _edit(manager, DEVICE_CREATE, FEATURE_CHAIN, after=False)
        _edit(manager, DEVICE_MAKE, FEATURE_PNEXT, after=False)
        changed = True
    elif INTEGER_DOT_MARK not in manager.read_text():   # level 2 or 3: the integer dot product feature too
        _edit(manager, INTEGER_DOT_ANCHOR, "    " + INTEGER_DOT_BRANCH, after=False)
        changed = True
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    print("kp_patch:", "applied" if patch(Path(sys.argv[1])) else "already applied", "to", sys.argv[1])
