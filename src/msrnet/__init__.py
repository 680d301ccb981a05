"""msrnet: multi-scale pyramid networks for single-image super-resolution.

Importing msrnet registers its models with timm, so ``timm.create_model('msr_x4')`` works too.

The package's attributes load on first use (PEP 562), so that ``msrnet --help`` answers without
importing torch; the timm registration happens as soon as timm is imported (at once, if it
already is).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from msrnet._lazy import attach

__version__ = "0.1.0"

# attribute -> the submodule that defines it (None: the attribute is that submodule).
_LAZY: dict[str, str | None] = {
    "FeatureExtractor": "models",
    "PyramidResidualBlock": "models",
    "MultiScaleSRNet": "models",
    "create_model": "models",
    "list_models": "models",
    "upscale": "inference",
    "save_pretrained": "hub",
    "ops": None,
    "metrics": None,
    "data": None,
}

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:
    from . import data, metrics, ops
    from .hub import save_pretrained
    from .inference import upscale
    from .models import FeatureExtractor, MultiScaleSRNet, PyramidResidualBlock, create_model, list_models

__getattr__, __dir__ = attach(__name__, _LAZY)


class _RegisterWithTimm(importlib.abc.MetaPathFinder):
    """Imports ``msrnet.models`` (which registers the models) right after timm's first import."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            importlib.import_module("msrnet.models")

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


if "timm" in sys.modules:
    importlib.import_module("msrnet.models")
else:
    sys.meta_path.insert(0, _RegisterWithTimm())
