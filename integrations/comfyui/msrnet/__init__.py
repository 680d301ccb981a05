"""ComfyUI custom node package that teaches ComfyUI's built-in upscale-model loader msrnet.

It declares no nodes: it registers msrnet with spandrel, the library behind ComfyUI's
"Load Upscale Model" node, so that node opens msrnet ``.safetensors`` / ``.pth`` files placed in
``ComfyUI/models/upscale_models/`` (``msrnet weights --copy-to DIR`` puts the shipped ones there).
Copy this folder to ``ComfyUI/custom_nodes/msrnet/`` and install msrnet into ComfyUI's Python
(``requirements.txt``; docs/integrations.md says how while msrnet is not on a package index).

On import it logs one line naming msrnet's version. Without msrnet it logs what to install and
fails the import, so ComfyUI shows IMPORT FAILED with that line rather than a bare ``No module
named 'msrnet'``; and, before failing, it registers a stand-in for msrnet's architecture with
spandrel, which recognises msrnet files by their keys and refuses them with an error that says
what to install, so that a user of the web UI reads that rather than spandrel's empty
``UnsupportedModelError``.
"""
import logging

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

# msrnet is on no package index yet: the command that works installs it from a clone.
_INSTALL = (
    "install msrnet into the Python that runs ComfyUI "
    '(python -m pip install "PATH/TO/msrnet[spandrel]", with PATH/TO/msrnet a clone of msrnet; '
    "its docs/integrations.md has the portable build's command), then restart ComfyUI"
)

# Keys of msrnet's module tree that no spandrel architecture shares: msrnet's own detector's
# (msrnet.integrations.spandrel.DETECT_KEYS; tests/test_comfyui.py keeps the two equal).
_MSRNET_KEYS = (
    "stem.layers.0.weight",
    "levels.0.blocks.0.up_proj.weight",
    "levels.0.compress.0.weight",
    "levels.0.to_residual.weight",
)


def _register_refusal(reason: str) -> None:
    """Teach spandrel to recognise msrnet files and refuse each with ``reason`` and what to install.

    Without it, "Load Upscale Model" fails on an msrnet file with spandrel's
    ``UnsupportedModelError`` and no message, the only text the web UI shows.
    """
    try:
        from spandrel import MAIN_REGISTRY, Architecture, ArchSupport, UnsupportedModelError
        from spandrel.util import KeyCondition
    except ImportError:  # no spandrel, no loader to teach (ComfyUI always has it)
        return

    message = f"this is an msrnet model: {_INSTALL} ({reason})"

    class MSRNetNotInstalled(Architecture):
        def __init__(self) -> None:
            super().__init__(id="msrnet", name="msrnet (not installed)", detect=KeyCondition.has_all(*_MSRNET_KEYS))

        def load(self, state_dict: dict) -> None:
            raise UnsupportedModelError(message)

    if "msrnet" not in MAIN_REGISTRY:
        before = tuple(support.architecture.id for support in MAIN_REGISTRY)
        MAIN_REGISTRY.add(ArchSupport.from_architecture(MSRNetNotInstalled(), before=before))


try:
    import msrnet
    from msrnet.integrations.spandrel import install
except ImportError as e:
    logging.error("[msrnet] msrnet files cannot be loaded: %s; %s", e, _INSTALL)
    _register_refusal(str(e))
    raise ImportError(f"msrnet custom node: {e}; {_INSTALL}") from e

install()
logging.info(
    "[msrnet] msrnet %s: the msrnet architecture is registered with spandrel; "
    '"Load Upscale Model" opens msrnet files in models/upscale_models',
    msrnet.__version__,
)
