"""Image I/O and datasets."""
from __future__ import annotations

from msrnet.data.benchmark import BenchmarkDataset, PairedDataset, bicubic_degrade, mod_crop
from msrnet.data.io import (
    IMAGE_EXTENSIONS,
    list_images,
    read_image,
    read_image_tensor,
    tensor_to_uint8,
    uint8_to_tensor,
    write_image,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "BenchmarkDataset",
    "PairedDataset",
    "bicubic_degrade",
    "list_images",
    "mod_crop",
    "read_image",
    "read_image_tensor",
    "tensor_to_uint8",
    "uint8_to_tensor",
    "write_image",
]
