"""msrnet's face of timm's registry: `create_model` and `list_models`.

The models register themselves with timm when `msr` is imported; their shipped weights are
`_pretrained`'s.
"""
from __future__ import annotations

from typing import Any, cast

import timm

from .msr import MultiScaleSRNet

__all__ = ["create_model", "list_models"]

# timm's list_models(module=...) matches the last part of the module name: msrnet.models.msr.
_TIMM_MODULE = "msr"


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """msrnet's registered models matching a glob ``pattern`` (with their tags if ``pretrained``)."""
    return timm.list_models(pattern, module=_TIMM_MODULE, pretrained=pretrained)


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> MultiScaleSRNet:
    """Build a registered msrnet model, e.g. ``create_model('msr_x4', pretrained=True)``.

    ``model_name`` may carry a pretrained tag (``'msr_x4.t291'``). Keyword arguments go to the
    model constructor (`MultiScaleSRNet`), as with ``timm.create_model``.
    """
    arch = model_name.split(".", 1)[0]
    if arch not in list_models():
        raise ValueError(
            f"unknown msrnet model {model_name!r}; valid models: {', '.join(list_models())}"
        )
    # Every registered entry point builds a MultiScaleSRNet; timm types it as nn.Module.
    return cast(MultiScaleSRNet, timm.create_model(model_name, pretrained=pretrained, **kwargs))
