"""The model registry: GGUF ``general.architecture`` -> the class that runs it.

Each entry names a module and a class, imported only when a file of that architecture is
loaded, so a family whose module is missing or broken never stops the others from loading.
"""
from __future__ import annotations

import importlib

# architecture -> (module under engine.models, class name)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("llama", "Llama"),
    "mistral": ("llama", "Llama"),
    "qwen2": ("llama", "Llama"),
    "gemma3": ("gemma3", "Gemma3"),
    "phi3": ("phi3", "Phi3"),
    "bert": ("bert", "Bert"),
    "nomic-bert": ("bert", "Bert"),
}

EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert"})


def model_class(arch: str):
    """The class for ``arch``; ValueError naming the supported ones when there is none."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unsupported architecture '{arch}' (supported: {', '.join(sorted(ARCHITECTURES))})")
    module, cls = ARCHITECTURES[arch]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
