"""Shared fixtures: where the test models live.

The models are made by `python tools/models.py` (run by the README's test command) into a cache
directory outside git: $GPT4ALL_TEST_MODELS, default ~/.cache/gpt4all-vulkan/test-models.
The file names come from tools/models.py itself, so the tool and the tests cannot drift apart.
A missing model is a failure with the command to fix it, never a skip.
"""
import importlib.util
from pathlib import Path

import pytest


def _load_models_tool():
    # tools/ is a folder of scripts, not a package: load tools/models.py by its path.
    path = Path(__file__).resolve().parent.parent / "tools" / "models.py"
    spec = importlib.util.spec_from_file_location("gpt4all_vulkan_test_models_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


models_tool = _load_models_tool()
MODELS_DIR: Path = models_tool.MODELS_DIR
# key -> file name inside MODELS_DIR, e.g. "smollm2-q4_0" -> "SmolLM2-135M-Instruct.Q4_0.gguf"
MODEL_FILES: dict = models_tool.MODEL_FILES


def model_file(key: str) -> Path:
    path = MODELS_DIR / MODEL_FILES[key]
    if not path.exists():
        pytest.fail(f"test model {path} is missing: run `python tools/models.py --only {key}` "
                    "(or the README's test command)")
    return path


@pytest.fixture(scope="session")
def model_path():
    """model_path('smollm2-q4_0') -> Path of that test model (fails if it was not made)."""
    return model_file
