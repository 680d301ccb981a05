"""The weights that ship inside msrnet: where they live, their sha256, and one checked read.

Each file is ``msrnet/weights/<arch>.<tag>.safetensors``, a float16 state dict with the
metadata `msrnet.models.weights.save_weights` writes. Its sha256 is recorded here and checked
before a tensor of it is used, so a corrupted or swapped file never yields a silently wrong
model. Nothing is downloaded.

This module imports nothing else of msrnet's models, so the network (`msr`), the registry and
the weights-file code can all use it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from safetensors.torch import load
from torch import Tensor

__all__ = ["WEIGHTS_DIR", "PRETRAINED_SHA256", "pretrained_file", "read_pretrained"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

# '<arch>.<tag>' -> sha256 of the shipped safetensors file. An entry is added with each file.
PRETRAINED_SHA256: dict[str, str] = {
    "msr_x2.t291": "c7fdcb2d67038bf25db790c3df82a4bb48cd2256f55c265c37bb8219c668aa0a",
    "msr_x4.t291": "0e125ae048064065ce84c7510e2a4fa87c72a4d8de1d4a8ed1a7da02fa857acf",
    "msr_x8.t291": "be5db13bf37ec72b828de99ef1b144e67d9ea3d5a08f86d7c9f07c382779cfb0",
    "msr_small_x2.t291": "b6920e7fa5359802591763e08d2ecb79737946b4bc5c7b3207cfa63b388b874a",
    "msr_small_x4.t291": "6633f94454c869b15deb82ecbe977e5663aad40164b0d71980af70fe6635cef5",
    "msr_small_x8.t291": "1e8ffa7ac47bd6c90ad53b6681e5e3d937e7644463d8b10f84423a71e0bd3923",
    "msr_small_x2.real": "16e57f2b7b1bceed5c5b8fc299fb0fac9230effcb61230c66b66bd6ee44ca7cd",
    "msr_small_x4.real": "8010e13786f14718c5ac7869e32654f54fa80b8db6d62dbc209d1ca941a06a45",
    "msr_small_x8.real": "e48feedb492de1e99a474e9904f851bcbce60d33cdee42db83877b80190bd185",
}


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
