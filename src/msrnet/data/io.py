"""Image file I/O and the uint8 <-> float tensor conversions the benchmarks rely on."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin, TiffImagePlugin
from torch import Tensor

from msrnet._utils import FidelityWarning, atomic_write
from msrnet.data.deep import DeepImage, deep_rawmode, png_colour_chunks, read_deep, write_deep
from msrnet.ops.quantize import quantize

__all__ = [
    "ANIMATED_EXTENSIONS",
    "FidelityWarning",
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
# Formats written at 16 bits per colour sample (`msrnet.data.deep`).
DEEP_FORMATS = ("PNG", "TIFF")
# What of an image's ``info`` each format Pillow writes holds; the rest is named in a warning.
_INFO_NAMES = {"icc_profile": "ICC profile", "exif": "EXIF", "xmp": "XMP", "dpi": "DPI"}
_SRGB_GAMMA = 1 / 2.2
_HOLDS: dict[str, frozenset[str]] = {
    "PNG": frozenset(_INFO_NAMES), "JPEG": frozenset(_INFO_NAMES), "TIFF": frozenset(_INFO_NAMES),
    "WEBP": frozenset({"icc_profile", "exif", "xmp"}), "BMP": frozenset({"dpi"}),
}


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

    Warns:
        FidelityWarning: a 16-bit RGB(A) PNG or TIFF, rounded to 8 bits (16-bit gray is refused).
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}")
    with Image.open(path) as opened:
        img = opened
        if deep_rawmode(opened) is not None:
            # Rounded from the full samples (Pillow alone would keep each sample's high byte).
            warnings.warn(f"{path}: 16-bit colour reduced to 8 bits (the benchmarks score 8-bit images)",
                          FidelityWarning, stacklevel=2)
            img = read_deep(path).to_8bit()
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
    levels = quantize(x.detach().float())
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


def _held(format: str, info: dict[Any, Any], path: Path) -> dict[str, Any]:
    """The save options for ``info`` that ``format`` holds; what it cannot hold is named in a warning."""
    holds = _HOLDS.get(format, frozenset())
    lost = [_INFO_NAMES[k] for k in _INFO_NAMES if info.get(k) and k not in holds]
    # A PNG's gamma matters where no ICC profile overrides it and it is not sRGB's own (1/2.2).
    if format != "PNG" and abs(info.get("gamma", _SRGB_GAMMA) - _SRGB_GAMMA) > 1e-3 and not info.get("icc_profile"):
        lost.append(f"PNG gamma ({info['gamma']:g})")
    if lost:
        warnings.warn(f"{path}: {path.suffix} holds no {', no '.join(lost)}: not kept", FidelityWarning, stacklevel=3)
    options = {k: info[k] for k in _INFO_NAMES if info.get(k) and k in holds}
    # Pillow's PNG and TIFF writers take XMP as a text chunk and as TIFF tag 700.
    if format == "PNG":
        options["pnginfo"] = PngImagePlugin.PngInfo()
        for kind, data in png_colour_chunks(info):
            options["pnginfo"].add(kind, data)
        if "xmp" in options:
            options["pnginfo"].add_itxt("XML:com.adobe.xmp", options.pop("xmp").decode("utf-8", "replace"))
    elif format == "TIFF" and "xmp" in options:
        exif = Image.Exif()
        if options.get("exif"):
            exif.load(options["exif"])
        exif[700] = options.pop("xmp")
        options["exif"] = exif.tobytes()
    return options


def save_image(
    image: Image.Image | DeepImage | Iterable[Image.Image | DeepImage],
    path: str | Path,
    *,
    duration: int | Sequence[int] = 100,
    loop: int = 0,
) -> None:
    """Save an image, the frames of an animation or the pages of a TIFF, atomically, in the format its extension names.

    How msrnet writes each format is decided here, for every writer (`write_image`,
    ``msrnet upscale``, ``msrnet benchmark --save-images``):

    - WebP is lossless (Pillow's default is lossy): a saved result keeps its exact pixels.
    - JPEG is written at quality 95 (Pillow's default is 75).
    - The first image's ICC profile, EXIF and DPI (``info["icc_profile"]``, ``["exif"]``,
      ``["dpi"]``) are written where the format holds them, else named in a `FidelityWarning`.
    - A 16-bit colour `DeepImage` is written at 16 bits as PNG or TIFF (`msrnet.data.deep`);
      other formats get its nearest 8-bit image, with a `FidelityWarning`.
    - Several images for a TIFF are its pages, written one at a time as they come from the
      iterable (pages of any size and mode; memory holds one).
    - Several images for GIF, WebP, or PNG (APNG) are the frames of an animation, saved in one
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
    format = Image.registered_extensions().get(path.suffix.lower())
    if format is None or format not in Image.SAVE:
        raise ValueError(f"{path}: Pillow cannot write {path.suffix or 'files without an extension'!r}")
    if format == "TIFF" and not isinstance(image, (Image.Image, DeepImage)):
        _save_pages(iter(image), path)
        return
    frames = [image] if isinstance(image, (Image.Image, DeepImage)) else list(image)
    if not frames:
        raise ValueError(f"{path}: no image to save")
    if len(frames) > 1 and path.suffix.lower() not in ANIMATED_EXTENSIONS:
        raise ValueError(f"{path}: {path.suffix} holds one image, not {len(frames)} frames")
    if isinstance(frames[0], DeepImage) and len(frames) == 1 and format in DEEP_FORMATS:
        with atomic_write(path) as f:
            write_deep(frames[0], f, format)
        return
    images = [_eight_bit(im, path) for im in frames]
    options = _held(format, images[0].info, path)
    if format == "WEBP":
        options["lossless"] = True
    elif format == "JPEG":
        options["quality"] = 95
    if len(images) > 1:
        # One mode for all frames: GIF frames after the first may gain alpha.
        mode = "RGBA" if any(im.mode in ("RGBA", "LA") for im in images) else images[0].mode
        images = [im if im.mode == mode else im.convert(mode) for im in images]
        options |= {"save_all": True, "duration": duration, "loop": loop}
        if format == "GIF":
            options["disposal"] = 2  # frames are whole pictures: clear before each
    if format == "GIF":
        images = [_one_bit_alpha(im) for im in images]
    if len(images) > 1:
        options["append_images"] = images[1:]
    with atomic_write(path) as f:
        images[0].save(f, format=format, **options)


def _eight_bit(image: Image.Image | DeepImage, path: Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    warnings.warn(f"{path}: {path.suffix} holds 8 bits per sample: 16-bit colour written as 8-bit", FidelityWarning,
                  stacklevel=4)
    return image.to_8bit()


def _save_pages(pages: Iterator[Image.Image | DeepImage], path: Path) -> None:
    """Pages into one TIFF, each written (and then dropped) as the iterator gives it."""
    count = 0
    with atomic_write(path) as f, TiffImagePlugin.AppendingTiffWriter(f, new=True) as tf:
        for page in pages:
            if isinstance(page, DeepImage):
                write_deep(page, tf, "TIFF")
            else:
                page.save(tf, format="TIFF", **_held("TIFF", page.info, path))
            tf.newFrame()
            count += 1
        if not count:
            raise ValueError(f"{path}: no image to save")
