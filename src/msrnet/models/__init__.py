"""msrnet model family and registry. Importing it registers the models with timm."""
from ._builder import build_model
from ._helpers import PyramidForward, preserved
from ._limits import ModelSizeError, TensorBytes, check_buildable, model_limits, model_size
from ._registry import create_model, list_models
from .msr import (
    FeatureExtractor,
    MultiScaleSRNet,
    PyramidLevel,
    PyramidResidualBlock,
    default_blocks_per_level,
    default_level_scales,
)
from .weights import WeightsError, load_weights, read_metadata, save_weights

__all__ = [
    "build_model",
    "create_model",
    "list_models",
    "FeatureExtractor",
    "PyramidResidualBlock",
    "PyramidLevel",
    "MultiScaleSRNet",
    "default_blocks_per_level",
    "default_level_scales",
    "WeightsError",
    "save_weights",
    "load_weights",
    "read_metadata",
    "preserved",
    "PyramidForward",
    "ModelSizeError",
    "TensorBytes",
    "check_buildable",
    "model_limits",
    "model_size",
]
