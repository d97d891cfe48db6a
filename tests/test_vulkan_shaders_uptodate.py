"""Every committed SPIR-V file in engine/spv/ must match its GLSL source in shaders/."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_spirv_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "compile_shaders.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_check_detects_a_stale_shader(tmp_path, monkeypatch):
    """The check must be able to fail: a changed include makes every variant stale."""
    sys.path.insert(0, str(ROOT / "tools"))
    import compile_shaders as cs
    fake = tmp_path / "shaders"
    import shutil
    shutil.copytree(cs.SHADERS, fake)
    (fake / "common.glsl").write_text((fake / "common.glsl").read_text() + "\n// edited\n")
    monkeypatch.setattr(cs, "SHADERS", fake)
    assert set(cs.stale()) == set(cs.variants())
