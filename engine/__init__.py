"""A GGUF inference engine orchestrated in Python; see engine/ops.py for the backend seam.

    import engine
    llm = engine.load(path, device=None, n_ctx=2048)     # engine.LLM (engine/llm.py)
"""
from .llm import LLM, load
from .sampling import SamplingParams

__all__ = ["LLM", "load", "SamplingParams"]
