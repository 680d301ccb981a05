"""ComfyUI custom node package that teaches ComfyUI's built-in upscale-model loader msrnet.

It declares no nodes: it registers msrnet with spandrel, the library behind ComfyUI's
"Load Upscale Model" node, so that node opens msrnet ``.safetensors`` / ``.pth`` files placed in
``ComfyUI/models/upscale_models/``. Copy this folder to ``ComfyUI/custom_nodes/msrnet/`` and
install msrnet into ComfyUI's Python (``python -m pip install "msrnet[spandrel]"``).
"""
from msrnet.integrations.spandrel import install

install()

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
