"""The GPT4All Python SDK, on a pure-Python GGUF engine (NumPy on the CPU, Vulkan compute shaders on GPUs).

    from gpt4all import GPT4All
    model = GPT4All("SmolLM2-135M-Instruct.Q4_1.gguf", model_path="path/to/models")
    with model.chat_session():
        print(model.generate("What is the capital of France?", max_tokens=40))
"""
from .gpt4all import CancellationError, Embed4All, EmbedResult, GPT4All

__all__ = ["CancellationError", "Embed4All", "EmbedResult", "GPT4All"]
