"""ComfyUI custom node package that teaches ComfyUI's built-in upscale-model loader msrnet.

It declares no nodes: it registers msrnet with spandrel, the library behind ComfyUI's
"Load Upscale Model" node, so that node opens msrnet ``.safetensors`` / ``.pth`` files placed in
``ComfyUI/models/upscale_models/`` (``msrnet weights --copy-to DIR`` puts the shipped ones there).
Copy this folder to ``ComfyUI/custom_nodes/msrnet/`` and install msrnet into ComfyUI's Python
(``requirements.txt``; docs/integrations.md says how while msrnet is not on a package index).

On import it logs one line naming msrnet's version. Without msrnet (or spandrel) it logs what to
install and fails the import, so ComfyUI shows IMPORT FAILED with that line rather than a bare
``No module named 'msrnet'`` and, later, spandrel's empty ``UnsupportedModelError``.
"""
import logging

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

_INSTALL = (
    "install msrnet with its spandrel extra into the Python that runs ComfyUI "
    '(python -m pip install "msrnet[spandrel]", or from a clone: python -m pip install "PATH/TO/msrnet[spandrel]"), '
    "then restart ComfyUI"
)

try:
    import msrnet
    from msrnet.integrations.spandrel import install
except ImportError as e:
    logging.error("[msrnet] msrnet files cannot be loaded: %s; %s", e, _INSTALL)
    raise ImportError(f"msrnet custom node: {e}; {_INSTALL}") from e

install()
logging.info(
    "[msrnet] msrnet %s: the msrnet architecture is registered with spandrel; "
    '"Load Upscale Model" opens msrnet files in models/upscale_models',
    msrnet.__version__,
)
