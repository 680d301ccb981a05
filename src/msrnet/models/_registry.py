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


def create_model(model_name: str, pretrained: bool | str = False, **kwargs: Any) -> MultiScaleSRNet:
    """Build a registered msrnet model, e.g. ``create_model('msr_x4', pretrained=True)``.

    ``pretrained`` is True (the architecture's default tag, or the tag ``model_name`` carries),
    False (random weights) or a tag of the shipped weights: ``create_model('msr_small_x4',
    pretrained='real')`` is ``create_model('msr_small_x4.real', pretrained=True)``. Keyword
    arguments go to the model constructor (`MultiScaleSRNet`), as with ``timm.create_model``.

    Raises:
        ValueError: an unknown model, a ``pretrained`` that is neither a bool nor one of the
            architecture's tags (the message lists them), or a tag that contradicts the name's.
    """
    arch, _, name_tag = model_name.partition(".")
    if arch not in list_models():
        raise ValueError(
            f"unknown msrnet model {model_name!r}; valid models: {', '.join(list_models())}"
        )
    if not isinstance(pretrained, bool):
        # timm would take any truthy value as True, and so load the default tag: a tag given as
        # a string ("real") silently gave the other weights.
        tags = [name.split(".", 1)[1] for name in list_models(arch, pretrained=True)]
        valid = ", ".join(["True", "False", *map(repr, tags)])
        if not isinstance(pretrained, str) or pretrained not in tags:
            raise ValueError(f"pretrained={pretrained!r} for {arch}: valid values are {valid}")
        if name_tag and name_tag != pretrained:
            raise ValueError(f"{model_name!r} names the tag {name_tag!r} but pretrained={pretrained!r}")
        model_name, pretrained = f"{arch}.{pretrained}", True
    # Every registered entry point builds a MultiScaleSRNet; timm types it as nn.Module.
    return cast(MultiScaleSRNet, timm.create_model(model_name, pretrained=pretrained, **kwargs))
