"""The wheel carries what a user's machine needs: compiled SPIR-V (no shader compiler there), the shader
manifest, the bundled model catalogue, and the gpt4all-chat command."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_spirv_catalogue_and_cli(tmp_path):
    # Build the wheel exactly as `pip install .` does: in an isolated build environment with the
    # setuptools pyproject.toml asks for (from the package index), not whatever this venv happens to hold.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("gpt4all_vulkan-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        spv = sorted(p.name for p in (ROOT / "engine" / "spv").glob("*.spv"))
        assert spv, "engine/spv holds no compiled shaders"
        missing = [n for n in spv if f"engine/spv/{n}" not in names]
        assert not missing, f"SPIR-V missing from the wheel: {missing}"
        assert "engine/spv/manifest.json" in names
        assert "gpt4all/models3.json" in names
        assert "gpt4all/cli.py" in names and "engine/ops.py" in names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "gpt4all-chat = gpt4all.cli:main" in zf.read(entry_points).decode()
        # the wheel holds the product only: no tests, tools or build leftovers
        assert not [n for n in names if n.startswith(("tests/", "tools/", "shaders/", ".venv/"))]
