"""Shared fixtures: where the test models live.

The models are made by `python tools/models.py` (run by the README's test command) into a cache
directory outside git: $GPT4ALL_TEST_MODELS, default ~/.cache/gpt4all-vulkan/test-models.
A missing model is a failure with the command to fix it, never a skip.
"""
import os
from pathlib import Path

import pytest

MODELS_DIR = Path(os.environ.get("GPT4ALL_TEST_MODELS",
                                 Path.home() / ".cache" / "gpt4all-vulkan" / "test-models"))

# key -> file name inside MODELS_DIR
MODEL_FILES = {
    "smollm2-q4_1": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "smollm2-q4_0": "SmolLM2-135M-Instruct.Q4_0.gguf",
    "smollm2-q8_0": "SmolLM2-135M-Instruct.Q8_0.gguf",
    "smollm2-f16": "SmolLM2-135M-Instruct.F16.gguf",
    "gemma3-q4_k_m": "gemma-3-270m-q4_k_m.gguf",
    "minilm-f16": "all-MiniLM-L6-v2.F16.gguf",
}


def model_file(key: str) -> Path:
    path = MODELS_DIR / MODEL_FILES[key]
    if not path.exists():
        pytest.fail(f"test model {path} is missing: run `python tools/models.py` (or the README's test command)")
    return path


@pytest.fixture(scope="session")
def model_path():
    """model_path('smollm2-q4_0') -> Path of that test model (fails if it was not made)."""
    return model_file
