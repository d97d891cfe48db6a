"""A GGUF inference engine orchestrated in Python; see engine/ops.py for the backend seam."""
