"""Image file I/O and the uint8 <-> float tensor conversions the benchmarks rely on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from msrnet._utils import atomic_write

__all__ = [
    "ANIMATED_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "check_pixels",
    "list_images",
    "read_image",
    "read_image_tensor",
    "save_image",
    "tensor_to_uint8",
    "uint8_to_tensor",
    "write_image",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".webp", ".bmp", ".gif", ".jpg", ".jpeg", ".tif", ".tiff"}
)
# Formats Pillow writes animations in (``save_all``; PNG as APNG), with per-frame durations.
ANIMATED_EXTENSIONS: frozenset[str] = frozenset({".gif", ".webp", ".png"})


def check_pixels(width: int, height: int, name: str | Path) -> None:
    """Pillow's decompression-bomb guard for decoders that are not Pillow's (video frames).

    Refuses what ``Image.open`` refuses: more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels
    (raise or clear that limit to let larger images through, as for Pillow itself).

    Raises:
        PIL.Image.DecompressionBombError: the image is over the limit.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > 2 * limit:
        raise Image.DecompressionBombError(
            f"{name}: image size ({width}x{height} = {width * height} pixels) exceeds the limit of "
            f"{2 * limit} pixels (PIL.Image.MAX_IMAGE_PIXELS), could be a decompression bomb DOS attack"
        )


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), sorted by name.

    Extensions are matched case-insensitively against :data:`IMAGE_EXTENSIONS`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a directory: {folder}")
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Read an image file as a ``uint8`` array of shape ``(H, W, C)``.

    Args:
        path: image file.
        channels: ``None`` keeps the file's colour model (``C = 1`` for grayscale,
            else ``C = 3``; alpha is dropped); ``3`` expands grayscale to R = G = B;
            ``1`` converts colour to luma with PIL's ITU-R 601-2 transform.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    with Image.open(path) as img:
        # Deeper-than-8-bit grayscale ('I;16', 'I', 'F') is outside the benchmarks'
        # uint8 protocol; PIL's conversion to 'L' clips it, so refuse it instead.
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            raise ValueError(f"{path}: {img.mode!r} images are not 8-bit")
        gray = img.mode in ("1", "L", "LA")
        if channels == 1 or (channels is None and gray):
            arr = np.array(img.convert("L"))
        else:
            arr = np.array(img.convert("RGB"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def uint8_to_tensor(img: np.ndarray) -> Tensor:
    """``uint8`` ``(H, W)`` or ``(H, W, C)`` array to a float32 ``(C, H, W)`` tensor in [0, 1]."""
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).float().div_(255.0)


def tensor_to_uint8(x: Tensor) -> np.ndarray:
    """Float ``(C, H, W)`` tensor in [0, 1] to a ``uint8`` ``(H, W, C)`` array.

    Values are clamped to [0, 1] and rounded half away from zero on the 0-255 scale,
    as MATLAB's ``uint8()`` does, so scores match the published tables.
    """
    if x.dim() != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(x.shape)}")
    levels = torch.floor(x.detach().float().clamp(0.0, 1.0) * 255.0 + 0.5)
    return levels.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def read_image_tensor(path: str | Path, channels: int | None = None) -> Tensor:
    """Read an image file as a float32 ``(C, H, W)`` tensor in [0, 1] (see :func:`read_image`)."""
    return uint8_to_tensor(read_image(path, channels))


def write_image(path: str | Path, img: np.ndarray | Tensor) -> None:
    """Write a ``uint8`` ``(H, W[, C])`` array or a float ``(C, H, W)`` tensor in [0, 1].

    The format follows the file extension; parent folders are created. Use a
    lossless format (PNG) for anything that will be scored.
    """
    if isinstance(img, Tensor):
        img = tensor_to_uint8(img)
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # PIL writes WebP lossy by default; a saved SR result must keep its exact pixels.
    options: dict[str, Any] = {"lossless": True} if path.suffix.lower() == ".webp" else {}
    save_image(Image.fromarray(img), path, **options)


def _one_bit_alpha(img: Image.Image) -> Image.Image:
    """GIF transparency is 1-bit, and Pillow's palette drops soft alpha altogether: cut it at half."""
    if img.mode != "RGBA":
        return img
    cut = img.copy()
    cut.putalpha(img.getchannel("A").point(lambda a: 255 * (a >= 128)))
    return cut


def save_image(img: Image.Image, path: str | Path, **options: object) -> None:
    """Save a PIL image atomically, in the format its extension names.

    The image is written to a temporary file in the same folder and renamed onto ``path``
    (see ``msrnet._utils.atomic_write``): an existing file is replaced only by a complete new
    one, a failed write (a mode the format cannot hold, a full disk) leaves it untouched, and a
    symlink at ``path`` is replaced, never written through. ``options`` go to ``Image.save``.
    GIF keeps 1-bit transparency: alpha is cut at half.

    Raises:
        ValueError: the extension names no format Pillow can write.
        OSError: the image cannot be encoded in that format, or written.
    """
    path = Path(path)
    format = Image.registered_extensions().get(path.suffix.lower())
    if format is None or format not in Image.SAVE:
        raise ValueError(f"{path}: Pillow cannot write {path.suffix or 'files without an extension'!r}")
    if format == "GIF":
        img = _one_bit_alpha(img)
        frames = options.get("append_images")  # the other frames of an animation
        if isinstance(frames, list):
            options["append_images"] = [_one_bit_alpha(im) for im in frames]
    with atomic_write(path) as f:
        img.save(f, format=format, **options)
