"""Image file I/O and the uint8 <-> float tensor conversions the benchmarks rely on."""

from __future__ import annotations

from collections.abc import Sequence
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

    The format follows the file extension, written as `save_image` writes it; parent folders are
    created. Use a lossless format (PNG) for anything that will be scored.
    """
    if isinstance(img, Tensor):
        img = tensor_to_uint8(img)
    if img.dtype != np.uint8:
        raise TypeError(f"expected a uint8 array, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(Image.fromarray(img), path)


def _one_bit_alpha(img: Image.Image) -> Image.Image:
    """GIF transparency is 1-bit, and Pillow's palette drops soft alpha altogether: cut it at half."""
    if img.mode != "RGBA":
        return img
    cut = img.copy()
    cut.putalpha(img.getchannel("A").point(lambda a: 255 * (a >= 128)))
    return cut


def save_image(
    image: Image.Image | Sequence[Image.Image],
    path: str | Path,
    *,
    duration: int | Sequence[int] = 100,
    loop: int = 0,
) -> None:
    """Save an image, or the frames of an animation, atomically, in the format its extension names.

    How msrnet writes each format is decided here, for every writer (`write_image`,
    ``msrnet upscale``, ``msrnet benchmark --save-images``):

    - WebP is lossless (Pillow's default is lossy): a saved result keeps its exact pixels.
    - JPEG is written at quality 95 (Pillow's default is 75).
    - The first image's ICC profile (``info["icc_profile"]``) is embedded.
    - Several images are the frames of an animation (GIF, WebP, or PNG as APNG), saved in one
      mode (GIF frames after the first may gain alpha) with ``duration`` milliseconds per frame
      (one value, or one per frame) and ``loop`` (0: for ever). GIF frames are whole pictures,
      each cleared before the next (disposal 2), and keep 1-bit transparency: alpha is cut at
      half.

    The image is written to a temporary file in the same folder and renamed onto ``path``
    (see ``msrnet._utils.atomic_write``): an existing file is replaced only by a complete new
    one, a failed write (a mode the format cannot hold, a full disk) leaves it untouched, and a
    symlink at ``path`` is replaced, never written through.

    Raises:
        ValueError: no image, several images for a format that holds one, or an extension that
            names no format Pillow can write.
        OSError: the image cannot be encoded in that format, or written.
    """
    path = Path(path)
    frames = [image] if isinstance(image, Image.Image) else list(image)
    format = Image.registered_extensions().get(path.suffix.lower())
    if format is None or format not in Image.SAVE:
        raise ValueError(f"{path}: Pillow cannot write {path.suffix or 'files without an extension'!r}")
    if not frames:
        raise ValueError(f"{path}: no image to save")
    if len(frames) > 1 and path.suffix.lower() not in ANIMATED_EXTENSIONS:
        raise ValueError(f"{path}: {path.suffix} holds one image, not {len(frames)} frames")
    options: dict[str, Any] = {}
    if frames[0].info.get("icc_profile"):
        options["icc_profile"] = frames[0].info["icc_profile"]
    if format == "WEBP":
        options["lossless"] = True
    elif format == "JPEG":
        options["quality"] = 95
    if len(frames) > 1:
        # One mode for all frames: GIF frames after the first may gain alpha.
        mode = "RGBA" if any(im.mode in ("RGBA", "LA") for im in frames) else frames[0].mode
        frames = [im if im.mode == mode else im.convert(mode) for im in frames]
        options |= {"save_all": True, "duration": duration, "loop": loop}
        if format == "GIF":
            options["disposal"] = 2  # frames are whole pictures: clear before each
    if format == "GIF":
        frames = [_one_bit_alpha(im) for im in frames]
    if len(frames) > 1:
        options["append_images"] = frames[1:]
    with atomic_write(path) as f:
        frames[0].save(f, format=format, **options)
