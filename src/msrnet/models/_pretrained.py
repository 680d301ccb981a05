"""The weights that ship inside msrnet: where they live, their sha256, and one checked read.

Each file is ``msrnet/weights/<arch>.<tag>.safetensors``, a float16 state dict with the
metadata `msrnet.models.weights.save_weights` writes. Its sha256 is recorded in the catalogue
and checked before a tensor of it is used, so a corrupted or swapped file never yields a
silently wrong model. Nothing is downloaded.

The table of names and sha256 is `msrnet._catalogue`'s (torch-free, for ``msrnet weights``);
this module imports nothing else of msrnet's models, so the network (`msr`), the registry and
the weights-file code can all use it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from safetensors.torch import load
from torch import Tensor

from msrnet._catalogue import PRETRAINED_SHA256, WEIGHTS_DIR

__all__ = ["WEIGHTS_DIR", "PRETRAINED_SHA256", "pretrained_file", "read_pretrained"]


def pretrained_file(name: str) -> Path | None:
    """Where the weights of ``'<arch>.<tag>'`` live in the package, or None if none ship."""
    return WEIGHTS_DIR / f"{name}.safetensors" if name in PRETRAINED_SHA256 else None


def read_pretrained(name: str) -> dict[str, Tensor]:
    """The state dict (float16, CPU) of the shipped weights ``'<arch>.<tag>'``, sha256-checked.

    The file is read once: the bytes that are hashed are the bytes that are parsed.

    Raises:
        RuntimeError: no weights ship for ``name``, the file is missing, or its sha256 does
            not match the one recorded for it.
    """
    path = pretrained_file(name)
    if path is None:
        available = ", ".join(sorted(PRETRAINED_SHA256)) or "none yet"
        raise RuntimeError(
            f"no pretrained weights ship for {name!r} in this msrnet version "
            f"(models with weights: {available}); use pretrained=False or train one with `msrnet train`"
        )
    if not path.is_file():
        raise RuntimeError(f"pretrained weights for {name!r} are missing: {path} (reinstall msrnet)")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != PRETRAINED_SHA256[name]:
        raise RuntimeError(
            f"pretrained weights for {name!r} are corrupted: sha256 of {path} is {actual}, "
            f"expected {PRETRAINED_SHA256[name]} (reinstall msrnet)"
        )
    return load(data)
