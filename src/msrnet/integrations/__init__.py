"""Bridges to other tools; each submodule imports its tool, which is an optional dependency.

- `msrnet.integrations.spandrel`: msrnet weights in spandrel (ComfyUI, chaiNNer), ``msrnet[spandrel]``.
"""
