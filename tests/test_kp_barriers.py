"""The two ways VulkanOps orders dependent dispatches (engine/backends/vulkan_ops.py, module docstring):
kp.OpGlobalBarrier from the kp that tools/setup.sh builds (patched by tools/kp_patch.py), and the
stock-kp fallback (GPT4ALL_KP_BARRIERS=kp).  Both must give NumPy's greedy tokens; lavapipe runs
dispatches in order anyway, so the H100 run of tools/gpu_run.sh (test_vulkan_random_model.py with
the patched kp) is what shows the barriers suffice on a real GPU."""
import sys
from pathlib import Path

import pytest

import engine
from engine.backends import vulkan_ops
from tests.test_vulkan_generation import compare_engines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import kp_patch  # noqa: E402
from random_gguf import write_random_gguf  # noqa: E402


def test_setup_built_the_patched_kp():
    """tools/setup.sh must build kp with tools/kp_patch.py: without it every GPU decode step pays a
    copy to host memory per barrier (docs/performance.md)."""
    assert hasattr(vulkan_ops.kp, "OpGlobalBarrier") and hasattr(vulkan_ops.kp, "set_dispatch_barriers")
    assert vulkan_ops.kp.PATCH_LEVEL >= 3       # the Manager enables the coopmat extensions' features, and
    #                                            eval_async returns without waiting (see the next test)


def test_eval_async_leaves_the_sequence_running_until_eval_await():
    """kp 0.9's binding of Sequence.eval_async() ran eval() (submit and wait), so the sequence was done when it
    returned; patched, it only submits: the sequence runs until eval_await, and a decode chunk can be started
    while the one before it still runs (engine/llm.py)."""
    import numpy as np
    mgr = vulkan_ops.kp.Manager()
    t = mgr.tensor_t(np.arange(4, dtype=np.float32))
    seq = mgr.sequence().record(vulkan_ops.kp.OpTensorSyncDevice([t]))
    seq.eval_async()
    assert seq.is_running()
    seq.eval_await()
    assert not seq.is_running()


def test_patched_manager_takes_the_coopmat_extensions_it_is_offered():
    """kp.Manager with extensions the device lacks (lavapipe has no cooperative matrices) still opens it,
    and the f16 extension lavapipe has gets its features enabled without error: the patched createDevice
    chains only the structs of extensions actually enabled."""
    from engine.backends.vulkan_device import choose
    info = choose("kompute")
    mgr = vulkan_ops.kp.Manager(info.index, [], ["VK_KHR_shader_float16_int8", "VK_NV_cooperative_matrix"])
    t = mgr.tensor(vulkan_ops.np.arange(4, dtype=vulkan_ops.np.float32))
    mgr.sequence().eval(vulkan_ops.kp.OpTensorSyncDevice([t])).eval(vulkan_ops.kp.OpTensorSyncLocal([t]))
    assert list(t.data()) == [0, 1, 2, 3]


@pytest.mark.parametrize("mode", ["global", "kp"])
def test_barrier_schemes_match_numpy(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("GPT4ALL_KP_BARRIERS", mode)
    path = tmp_path / "random-tiny-Q4_0.gguf"
    write_random_gguf(path, "tiny", "Q4_0")
    cpu = engine.load(path, n_ctx=64, n_batch=16)
    gpu = engine.load(path, device="kompute", n_ctx=64, n_batch=16)
    assert gpu.ops.global_barriers == (mode == "global")
    gpu.is_eog = cpu.is_eog = lambda t: False
    compare_engines(f"tiny Q4_0, {mode} barriers", cpu, gpu, 8)


def test_barrier_mode_is_checked(monkeypatch):
    monkeypatch.setenv("GPT4ALL_KP_BARRIERS", "sometimes")
    with pytest.raises(ValueError, match="GPT4ALL_KP_BARRIERS"):
        vulkan_ops._global_barriers()


def test_kp_patch_upgrades_a_level_1_tree(tmp_path):
    """A kp source tree patched before the feature chain existed gets only the missing edits."""
    src = tmp_path / "kp"
    (src / "python" / "src").mkdir(parents=True)
    (src / "src").mkdir()
    mark = f"// {kp_patch.MARK}\n"
    (src / "python" / "src" / "main.cpp").write_text(mark + "    py::class_<kp::Algorithm, std::shared_ptr<kp::Algorithm>>(\n")
    (src / "src" / "OpAlgoDispatch.cpp").write_text(mark)
    (src / "src" / "Manager.cpp").write_text(kp_patch.DEVICE_CREATE + "\n" + kp_patch.DEVICE_MAKE + "\n")
    assert kp_patch.patch(src) is True
    manager = (src / "src" / "Manager.cpp").read_text()
    assert "getFeatures2" in manager and "deviceCreateInfo.pNext = featureChain" in manager
    assert "PATCH_LEVEL" in (src / "python" / "src" / "main.cpp").read_text()
    assert kp_patch.patch(src) is False


@pytest.mark.parametrize("level", [2, 3])
def test_kp_patch_brings_an_older_tree_to_the_current_level(tmp_path, level):
    """A tree patched to level 2 or 3 gets the level, the asynchronous eval_async binding (level 2) and the integer
    dot product feature in its feature chain (both), and nothing twice."""
    src = tmp_path / "kp"
    (src / "python" / "src").mkdir(parents=True)
    (src / "src").mkdir()
    mark = f"// {kp_patch.MARK}\n"
    binding = kp_patch.PATCH_LEVEL_2_BINDING if level == 2 else kp_patch.PATCH_LEVEL_3_BINDING
    stock_or_fixed = kp_patch.EVAL_ASYNC_STOCK if level == 2 else kp_patch.EVAL_ASYNC_FIXED
    (src / "python" / "src" / "main.cpp").write_text(mark + binding + stock_or_fixed)
    (src / "src" / "OpAlgoDispatch.cpp").write_text(mark)
    old_chain = kp_patch.FEATURE_CHAIN.replace("    " + kp_patch.INTEGER_DOT_BRANCH, "")   # the chain before level 4
    assert kp_patch.INTEGER_DOT_MARK not in old_chain
    (src / "src" / "Manager.cpp").write_text(old_chain)
    assert kp_patch.patch(src) is True
    main = (src / "python" / "src" / "main.cpp").read_text()
    assert kp_patch.PATCH_LEVEL_BINDING in main and f"= {level};" not in main and kp_patch.PATCH_LEVEL == 4
    assert "self.evalAsync()" in main and kp_patch.EVAL_ASYNC_STOCK not in main
    manager = (src / "src" / "Manager.cpp").read_text()
    assert manager.count(kp_patch.INTEGER_DOT_MARK) == 1 and "PhysicalDeviceShaderIntegerDotProductFeatures" in manager
    assert manager.index(kp_patch.INTEGER_DOT_MARK) < manager.index("if (featureChain != nullptr)")
    assert kp_patch.patch(src) is False


def test_kp_patch_is_idempotent_and_refuses_unknown_sources(tmp_path):
    src = tmp_path / "kp"
    (src / "python" / "src").mkdir(parents=True)
    (src / "src").mkdir()
    (src / "python" / "src" / "main.cpp").write_text("int main() {}\n")
    (src / "src" / "OpAlgoDispatch.cpp").write_text("\n")
    with pytest.raises(SystemExit, match="anchor not found"):
        kp_patch.patch(src)
