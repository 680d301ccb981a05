"""Image kinds <-> (B, C, H, W) float tensors, for `msrnet.inference.upscale`.

`to_tensor` turns a PIL image, a `DeepImage`, a numpy array or a float tensor into float32 in
[0, 1], and says where the upscaled image goes (`Output`): preallocated in the input's own kind
and dtype, which `store` writes rows of tiles into. What a kind cannot keep (16 bits Pillow read
at 8, a colour space converted without management, an ICC profile for another space) is said
with a `FidelityWarning`, never dropped silently.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from msrnet._utils import FidelityWarning
from msrnet.data.deep import DeepImage, deep_rawmode, kept_info, read_at_eight_bits
from msrnet.device import significant_bits
from msrnet.ops import quantize

__all__ = ["Allocate", "Output", "to_tensor", "store"]

# `allocate(scales)` returns one result per scale, preallocated in its final dtype, each as a
# (B, C, s*H, s*W) tensor view to write into and a function that returns the finished image.
Allocate = Callable[[list[int]], list[tuple[Tensor, Callable[[], Any]]]]
# PIL modes converted before upscaling (palette, bilevel, other colour spaces), and what to.
_PIL_CONVERT = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}
_PIL_16BIT = ("I;16", "I;16L", "I;16B", "I")
# Values of 1.0 in integer images; `store` rounds onto these scales.
_PEAK = {torch.uint8: 255.0, torch.uint16: 65535.0}
# How far outside [0, 1] a float input may stray (rounding noise) before it is refused.
_RANGE_SLACK = 1 / 255


@dataclass(frozen=True)
class Output:
    """Where an upscaled image goes.

    Attributes:
        allocate: the results at the given scales (`Allocate`), allocated when called.
        nbytes: the bytes those results take together, known before any is allocated: an
            output larger than the memory left is refused first.
        device: where the results are allocated.
        bits: the precision of the input's samples (8 or 16 for images, a float tensor's
            `msrnet.device.significant_bits`): what ``dtype="auto"`` must not compute below.
    """

    allocate: Allocate
    nbytes: Callable[[list[int]], int]
    device: torch.device
    bits: int


def to_tensor(image: Image.Image | np.ndarray | Tensor | DeepImage) -> tuple[Tensor, Output]:
    """Any image kind `upscale` takes -> (B, C, H, W) float32 in [0, 1] and its `Output`.

    Raises:
        TypeError: another type, or a numpy/tensor dtype no image has.
        ValueError: a shape no image has, or a float tensor with NaN/inf or values outside [0, 1].
    """
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_numpy(image)
    if isinstance(image, DeepImage):
        return _from_deep(image)
    if isinstance(image, Tensor):
        return _from_tensor(image)
    raise TypeError(f"image must be a PIL image, numpy array or tensor, got {type(image).__name__}")


def _from_pil(img: Image.Image) -> tuple[Tensor, Output]:
    """PIL image -> (1, C, H, W) float32 in [0, 1] and where the upscaled image goes."""
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        warnings.warn(
            f"animated image with {frames} frames: only frame {img.tell()} is upscaled",
            UserWarning, stacklevel=4,
        )
    if read_at_eight_bits(img):  # only an image not loaded yet still tells
        hint = "; msrnet.data.deep.read_deep reads it at full depth" if deep_rawmode(img) else ""
        warnings.warn(f"16-bit {img.mode} image read at 8 bits (Pillow has no such mode){hint}",
                      FidelityWarning, stacklevel=4)
    info = kept_info(img)
    img = ImageOps.exif_transpose(img)
    if img.mode in _PIL_CONVERT:
        img = img.convert(_PIL_CONVERT[img.mode])
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode not in ("L", "LA", "RGB", "RGBA", *_PIL_16BIT):
        # CMYK, LAB, HSV, YCbCr: Pillow's formulas, not a colour-managed conversion.
        warnings.warn(f"{img.mode} converted to RGB without colour management", FidelityWarning, stacklevel=4)
        img = img.convert("RGB")
    mode = img.mode
    if "icc_profile" in info and not _icc_fits(info["icc_profile"], mode):
        warnings.warn(f"ICC profile for {_icc_space(info.pop('icc_profile'))} dropped: the result is {mode}",
                      FidelityWarning, stacklevel=4)
    arr = np.asarray(img)
    if mode == "I":
        # 32-bit integer mode is how older Pillows open 16-bit PNGs; its range is 16-bit.
        arr = arr.clip(0, 65535).astype(np.uint16)
    elif mode in _PIL_16BIT:
        arr = arr.astype(np.uint16)
    x, array = _from_numpy(arr)

    def to_pil(out_arr: np.ndarray) -> Image.Image:
        out = Image.fromarray(out_arr.astype(np.int32) if mode == "I" else out_arr)
        out.info.update(info)
        return out

    return x, _finished_as(array, to_pil)


def _icc_space(icc: bytes) -> str | None:
    """The colour space an ICC profile describes ('RGB', 'GRAY', 'CMYK', ...), or None if unreadable."""
    from PIL import ImageCms

    try:
        return str(ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space).strip()
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        return None


def _icc_fits(icc: bytes, mode: str) -> bool:
    """Whether ``icc`` can describe a ``mode`` image: an unreadable profile is kept as it came."""
    space = _icc_space(icc)
    return space is None or space == ("GRAY" if mode in ("L", "LA", *_PIL_16BIT) else "RGB")


def _from_deep(img: DeepImage) -> tuple[Tensor, Output]:
    """16-bit colour image -> (1, C, H, W) float32 in [0, 1] and where the upscaled one goes."""
    x, array = _from_numpy(img.array)
    return x, _finished_as(array, lambda out_arr: DeepImage(out_arr, dict(img.info)))


def _finished_as(array: Output, kind: Callable[[np.ndarray], Any]) -> Output:
    """The numpy kind's `Output`, with each finished array turned into ``kind`` (PIL, DeepImage)."""

    def allocate(scales: list[int]) -> list[tuple[Tensor, Callable[[], Any]]]:
        return [(view, _then(finish, kind)) for view, finish in array.allocate(scales)]

    return replace(array, allocate=allocate)


def _then(finish: Callable[[], np.ndarray], kind: Callable[[np.ndarray], Any]) -> Callable[[], Any]:
    # Its own scope binds each result's `finish`: a lambda in the loop would share the last one.
    return lambda: kind(finish())


def _from_numpy(arr: np.ndarray) -> tuple[Tensor, Output]:
    """(H, W[, C]) uint8/uint16 -> (1, C, H, W) float32 in [0, 1] and where the result goes."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"numpy images must be uint8 or uint16, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"numpy images must be (H, W) or (H, W, C) with C in 1..4, got {arr.shape}")
    dtype, ndim = arr.dtype, arr.ndim
    peak = float(np.iinfo(dtype).max)
    hwc = arr if ndim == 3 else arr[:, :, None]
    x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)).astype(np.float32) / peak)
    h, w, c = hwc.shape

    def allocate(scales: list[int]) -> list[tuple[Tensor, Callable[[], np.ndarray]]]:
        results = []
        for s in scales:
            out = np.empty((s * h, s * w, c), dtype)
            results.append((torch.from_numpy(out).permute(2, 0, 1)[None], _finish_array(out, ndim)))
        return results

    def nbytes(scales: list[int]) -> int:
        return sum(s * h * s * w for s in scales) * c * arr.itemsize

    return x[None], Output(allocate, nbytes, torch.device("cpu"), 8 * arr.itemsize)


def _from_tensor(x: Tensor) -> tuple[Tensor, Output]:
    """(C, H, W) or (B, C, H, W) float in [0, 1] -> (B, C, H, W) float32 and where the result goes."""
    if not x.is_floating_point():
        raise TypeError(f"tensor images must be floating point in [0, 1], got {x.dtype}")
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 2, 3, 4):
        raise ValueError(
            f"tensor images must be (C, H, W) or (B, C, H, W) with C in 1..4, got {tuple(x.shape)}"
        )
    if x.numel():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"the image has {bad} NaN/inf values")
        low, high = float(x.min()), float(x.max())
        if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
            hint = "; divide 0..255 values by 255" if high <= 255 and high > 1 + _RANGE_SLACK else ""
            raise ValueError(f"tensor images must hold values in [0, 1], got [{low:g}, {high:g}]{hint}")
    dtype, ndim = x.dtype, x.ndim
    b, c, h, w = (x if ndim == 4 else x[None]).shape

    def allocate(scales: list[int]) -> list[tuple[Tensor, Callable[[], Tensor]]]:
        results = []
        for s in scales:
            out = torch.empty(b, c, s * h, s * w, dtype=dtype, device=x.device)
            results.append((out, _finish_tensor(out, ndim)))
        return results

    def nbytes(scales: list[int]) -> int:
        return sum(b * c * s * h * s * w for s in scales) * x.element_size()

    return (x if ndim == 4 else x[None]).float(), Output(allocate, nbytes, x.device, significant_bits(dtype))


def _finish_array(out: np.ndarray, ndim: int) -> Callable[[], np.ndarray]:
    return lambda: out if ndim == 3 else out[:, :, 0]


def _finish_tensor(out: Tensor, ndim: int) -> Callable[[], Tensor]:
    return lambda: out if ndim == 4 else out[0]


def store(out: Tensor, rows: Tensor, r0: int, r1: int, c0: int = 0) -> None:
    """Write float (B, C, r1 - r0, W) rows into ``out[:, c0:c0+C, r0:r1]`` in ``out``'s dtype.

    ``rows`` is clamped to [0, 1] (and rounded for integer outputs) in place.
    """
    if out.dtype in _PEAK:
        # Round half up on the integer scale, as MATLAB's and the benchmarks' uint8() do.
        rows = quantize(rows, _PEAK[out.dtype], inplace=True)
    else:
        rows = rows.clamp_(0.0, 1.0)
    out[:, c0 : c0 + rows.shape[1], r0:r1].copy_(rows)
