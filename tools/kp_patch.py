"""Patch an unpacked kp (Kompute) 0.9.0 source tree so the engine can order its dispatches cheaply.

    python tools/kp_patch.py SRC_DIR            # idempotent; tools/setup.sh and tools/gpu_run.sh run it

Why: kp 0.9 has no Python op for a compute -> compute barrier, and ``OpAlgoDispatch`` records, before
every dispatch, one transfer -> compute buffer barrier per bound tensor.  The unpatched engine orders
dependent dispatches with an ``OpTensorSyncLocal`` of a 4-byte tensor (a barrier, a copy to host
memory, a barrier; see engine/backends/vulkan_ops.py).  On an NVIDIA H100 that made a trivial dependent
dispatch cost ~19 us and an independent one ~10 us (tools/bench_kernels.py, dispatch:* cases), so a
1B-shaped decode step of 294 dispatches spent ~4 ms in ordering alone.

The patch adds two things to kp's Python module, nothing else changes:
- ``kp.OpGlobalBarrier(src_access, dst_access, src_stage, dst_stage)``: one ``vkCmdPipelineBarrier``
  with one global ``VkMemoryBarrier`` (Vulkan flag bits as integers), i.e. what llama.cpp records
  between dependent dispatches;
- ``kp.set_dispatch_barriers(on)``: whether ``OpAlgoDispatch`` records its per-tensor barriers at
  record time (default on, kp's behaviour).  The engine turns them off only while it records its own
  programs, which carry their own ``OpGlobalBarrier``s wherever a hazard exists.

The engine checks for both attributes and falls back to the unpatched scheme without them, so a kp
built elsewhere still works (slower on a real GPU).
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

DISPATCH_FLAG = f"\nnamespace kp {{ bool gRecordDispatchBarriers = true; }}  // {MARK}\n"
DISPATCH_LOOP = "    for (const std::shared_ptr<Tensor>& tensor :\n         this->mAlgorithm->getTensors()) {"


def _edit(path: Path, anchor: str, new_text: str, after: bool = True) -> None:
    text = path.read_text()
    if anchor not in text:
        raise SystemExit(f"kp_patch: {path}: anchor not found (not kp 0.9.0?): {anchor!r}")
    text = text.replace(anchor, anchor + new_text if after else new_text + anchor, 1)
    path.write_text(text)


def patch(src: Path) -> bool:
    """Apply the patch to the kp source tree ``src``; False if it was already applied."""
    main = src / "python" / "src" / "main.cpp"
    dispatch = src / "src" / "OpAlgoDispatch.cpp"
    if MARK in main.read_text():
        return False
    _edit(main, '#include "utils.hpp"\n', GLOBAL_BARRIER_CLASS)
    _edit(main, "    py::class_<kp::Algorithm, std::shared_ptr<kp::Algorithm>>(", GLOBAL_BARRIER_BINDING,
          after=False)
    _edit(dispatch, '#include "kompute/operations/OpAlgoDispatch.hpp"\n', DISPATCH_FLAG)
    _edit(dispatch, DISPATCH_LOOP, f"    if (gRecordDispatchBarriers)  // {MARK}\n", after=False)
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    print("kp_patch:", "applied" if patch(Path(sys.argv[1])) else "already applied", "to", sys.argv[1])
