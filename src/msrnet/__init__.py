"""msrnet: multi-scale pyramid networks for single-image super-resolution.

Importing msrnet registers its models with timm, so ``timm.create_model('msr_x4')`` works too.
"""
from . import data, metrics, ops
from .hub import save_pretrained
from .inference import upscale
from .models import (
    FeatureExtractor,
    MultiScaleSRNet,
    PyramidResidualBlock,
    create_model,
    list_models,
)

__version__ = "0.1.0"

__all__ = [
    "FeatureExtractor",
    "PyramidResidualBlock",
    "MultiScaleSRNet",
    "create_model",
    "list_models",
    "upscale",
    "save_pretrained",
    "ops",
    "metrics",
    "data",
    "__version__",
]
