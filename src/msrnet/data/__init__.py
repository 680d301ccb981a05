"""Image I/O and datasets."""
from __future__ import annotations

from msrnet.data.benchmark import BenchmarkDataset, PairedDataset, bicubic_degrade, mod_crop
from msrnet.data.degradations import PRESETS, DegradationConfig, degrade, load_degradation
from msrnet.data.div2k import DIV2K, download_url, extract_zip
from msrnet.data.io import (
    IMAGE_EXTENSIONS,
    list_images,
    read_image,
    read_image_tensor,
    save_image,
    tensor_to_uint8,
    uint8_to_tensor,
    write_image,
)
from msrnet.data.patches import InMemoryPatchSampler, load_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "InMemoryPatchSampler",
    "BenchmarkDataset",
    "DIV2K",
    "DegradationConfig",
    "PRESETS",
    "PairedDataset",
    "bicubic_degrade",
    "degrade",
    "download_url",
    "extract_zip",
    "list_images",
    "load_degradation",
    "load_images",
    "mod_crop",
    "read_image",
    "read_image_tensor",
    "save_image",
    "tensor_to_uint8",
    "uint8_to_tensor",
    "write_image",
]
