"""msrnet model family and registry. Importing it registers the models with timm."""
from ._registry import create_model, list_models
from .msr import (
    FeatureExtractor,
    MultiScaleSRNet,
    PyramidLevel,
    PyramidResidualBlock,
    default_blocks_per_level,
    default_level_scales,
)

__all__ = [
    "create_model",
    "list_models",
    "FeatureExtractor",
    "PyramidResidualBlock",
    "PyramidLevel",
    "MultiScaleSRNet",
    "default_blocks_per_level",
    "default_level_scales",
]
