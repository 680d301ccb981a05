"""16-bit colour image files (RGB and RGBA PNG and TIFF), which Pillow opens at 8 bits.

Pillow has no 16-bit colour mode: it opens a 48- or 64-bit PNG or TIFF as ``RGB``/``RGBA`` and
keeps each sample's high byte. `read_deep` gets the full samples from Pillow's own decoders, run
twice on the file: once for the high bytes (Pillow's unpacker for the file's byte order) and once
for the low bytes (the unpacker for the other byte order, which takes the other byte of each
sample); the PNG filters or TIFF compression are undone by Pillow both times. `DeepImage` holds
the result as a ``uint16`` array with the file's ICC profile, DPI and EXIF, and `write_deep`
writes it back as a 16-bit PNG or TIFF (Pillow cannot write either).
"""
from __future__ import annotations

import re
import struct
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin

from msrnet._utils import FidelityWarning

__all__ = [
    "DeepImage", "deep_rawmode", "kept_info", "png_colour_chunks", "read_at_eight_bits", "read_deep", "write_deep",
]

# The 16-bit colour unpackers of Pillow, each with the one for the other byte order.
_OTHER_ORDER = {"RGB;16B": "RGB;16L", "RGB;16L": "RGB;16B", "RGBA;16B": "RGBA;16L", "RGBA;16L": "RGBA;16B"}
_NATIVE = "L" if sys.byteorder == "little" else "B"
# Rows compressed per IDAT chunk: bounds the memory of the filtered copy.
_PNG_ROWS = 256
EXIF_ORIENTATION = 0x0112
# XMP's copy of the EXIF orientation, as an attribute or an element.
_XMP_ORIENTATION = re.compile(rb"""(tiff:Orientation(?:=["']|>))(\d)(["'<])""")
# TIFF tags of a page's pixels (size, samples, compression, strips, tiles, resolution, ICC).
_TIFF_STRUCTURE = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 282, 283, 284,
    296, 317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 530, 531, 532, 34675,
})


@dataclass
class DeepImage:
    """A 16-bit colour image: ``array`` (H, W, 3 or 4) uint16, ``info`` as a PIL image's (icc_profile, dpi, exif)."""

    array: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL's ``Image.size``."""
        return self.array.shape[1], self.array.shape[0]

    def resize(self, size: tuple[int, int], resample: Image.Resampling) -> DeepImage:
        """Resized channel by channel in float (PIL's "F" mode), rounded back to 16 bits."""
        channels = [
            np.asarray(Image.fromarray(self.array[:, :, c].astype(np.float32), "F").resize(size, resample))
            for c in range(self.array.shape[2])
        ]
        out = np.floor(np.clip(np.stack(channels, axis=2), 0, 65535) + 0.5).astype(np.uint16)
        return DeepImage(out, dict(self.info))

    def to_8bit(self) -> Image.Image:
        """The nearest 8-bit image (``round(v * 255 / 65535)``), with the same ``info``."""
        out = Image.fromarray(((self.array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8))
        out.info.update(self.info)
        return out


def kept_info(img: Image.Image) -> dict[str, Any]:
    """What an upscaled ``img`` keeps in its ``info``: ICC profile, DPI, EXIF and XMP with orientation 1.

    The orientation is reset because the upscale applies it. A TIFF's EXIF is its own first IFD:
    the tags that describe the pixels (size, layout, strips) are left out, as they describe the
    input's.
    """
    info = {k: img.info[k] for k in ("icc_profile", "dpi") if img.info.get(k)}
    try:
        exif = _exif_copy(img)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError, struct.error) as e:  # a stranger's bytes
        warnings.warn(f"unreadable EXIF ({e}): not kept", FidelityWarning, stacklevel=3)
    else:
        if exif is not None:
            info["exif"] = exif
    if img.format == "PNG":  # how a PNG without an ICC profile says what its values mean
        info |= {k: img.info[k] for k in ("gamma", "srgb", "chromaticity") if k in img.info}
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if xmp:
        xmp = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
        info["xmp"] = _XMP_ORIENTATION.sub(lambda m: m[1] + b"1" + m[3], xmp)  # applied too
    return info


def _exif_copy(img: Image.Image) -> bytes | None:
    """``img``'s EXIF with orientation 1, without a TIFF's own pixel tags, or None if it has none."""
    exif = Image.Exif()  # a copy: the image's own (``getexif()``) is what exif_transpose reads
    if img.getexif():
        exif.load(img.getexif().tobytes())
    for tag in _TIFF_STRUCTURE.intersection(exif) if img.format == "TIFF" else ():
        del exif[tag]
    if 700 in exif:  # a TIFF's XMP tag: kept as ``info["xmp"]``
        del exif[700]
    if not exif:
        return None
    exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()


def png_colour_chunks(info: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The gAMA, cHRM and sRGB chunks (type, data) that ``info``'s PNG colour description needs."""
    chunks = []
    if "gamma" in info:
        chunks.append((b"gAMA", struct.pack(">I", round(info["gamma"] * 100000))))
    if "chromaticity" in info:
        chunks.append((b"cHRM", struct.pack(">8I", *(round(v * 100000) for v in info["chromaticity"]))))
    if "srgb" in info and not info.get("icc_profile"):  # the PNG standard: one or the other
        chunks.append((b"sRGB", bytes([info["srgb"]])))
    return chunks


def _rawmodes(img: Image.Image) -> set[str]:
    """The unpackers of a just-opened image's tiles (a TIFF's strips or planes)."""
    found = set()
    for tile in getattr(img, "tile", None) or []:  # a plain Image (a copy, a new one) has none
        args = tile.args
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
        if isinstance(raw, str):
            found.add(raw)
    return found


def _rawmode(img: Image.Image) -> str | None:
    """The one unpacker all of a just-opened image's tiles use, or None."""
    found = _rawmodes(img)
    return found.pop() if len(found) == 1 else None


def deep_rawmode(img: Image.Image) -> str | None:
    """The 16-bit colour unpacker of a just-opened (not yet loaded) image, or None if it is not one."""
    raw = _rawmode(img)
    if raw is not None and raw.endswith(";16N"):
        raw = raw[:-1] + _NATIVE
    return raw if raw in _OTHER_ORDER else None


def read_at_eight_bits(img: Image.Image) -> bool:
    """Whether a just-opened image has 16-bit samples that Pillow reads at 8 (colour, gray + alpha)."""
    return any(";16" in raw for raw in _rawmodes(img)) and img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _decode(path: Path, page: int, rawmode: str) -> Image.Image:
    """Page ``page`` of ``path`` decoded by Pillow with the ``rawmode`` unpacker, EXIF orientation applied."""
    with Image.open(path) as img:
        img.seek(page)
        img.tile = [
            tile._replace(args=rawmode if isinstance(tile.args, str) else (rawmode, *tile.args[1:]))
            for tile in img.tile
        ]
        img.load()
        return ImageOps.exif_transpose(img)


def read_deep(path: str | Path, page: int = 0) -> DeepImage:
    """Page ``page`` of a 16-bit colour PNG or TIFF at full depth, EXIF orientation applied.

    ``info`` keeps the ICC profile and DPI, and the EXIF with its orientation reset to 1.

    Raises:
        ValueError: the page is not 16-bit colour (`deep_rawmode` is None).
    """
    path = Path(path)
    with Image.open(path) as img:
        img.seek(page)
        raw = deep_rawmode(img)
        if raw is None:
            raise ValueError(f"{path}: page {page} is not a 16-bit RGB or RGBA image")
        info = kept_info(img)
    high = np.asarray(_decode(path, page, raw)).astype(np.uint16)
    low = np.asarray(_decode(path, page, _OTHER_ORDER[raw]))
    return DeepImage(high << 8 | low, info)


# --- writing ----------------------------------------------------------------------------------
def write_deep(image: DeepImage, f: IO[bytes], format: str) -> None:
    """Write ``image`` into ``f`` as a 16-bit ``"PNG"`` or ``"TIFF"``, with its ICC profile, DPI, EXIF and XMP."""
    writers: dict[str, Callable[[DeepImage, IO[bytes]], None]] = {"PNG": _write_png, "TIFF": _write_tiff}
    writers[format](image, f)


def _chunk(f: IO[bytes], kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))


def _write_png(image: DeepImage, f: IO[bytes]) -> None:
    arr = image.array
    h, w, c = arr.shape
    f.write(b"\x89PNG\r\n\x1a\n")
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0))
    if image.info.get("icc_profile"):
        _chunk(f, b"iCCP", b"ICC profile\0\0" + zlib.compress(image.info["icc_profile"]))
    if image.info.get("dpi"):
        x, y = (round(d / 0.0254) for d in image.info["dpi"])  # pixels per metre
        _chunk(f, b"pHYs", struct.pack(">IIB", x, y, 1))
    for kind, data in png_colour_chunks(image.info):
        _chunk(f, kind, data)
    if image.info.get("exif"):
        _chunk(f, b"eXIf", image.info["exif"].removeprefix(b"Exif\0\0"))
    if image.info.get("xmp"):  # an uncompressed iTXt chunk, as Adobe writes it
        _chunk(f, b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + image.info["xmp"])
    bpp = 2 * c  # bytes per pixel, the distance of PNG's Sub filter
    z = zlib.compressobj()
    for r0 in range(0, h, _PNG_ROWS):
        rows = arr[r0 : r0 + _PNG_ROWS].astype(">u2").view(np.uint8).reshape(-1, w * bpp)
        sub = rows.copy()
        sub[:, bpp:] -= rows[:, :-bpp]  # Sub filter: each byte minus the one a pixel left (mod 256)
        filtered = np.concatenate([np.ones((len(rows), 1), np.uint8), sub], axis=1)  # filter type 1 per row
        _chunk(f, b"IDAT", z.compress(filtered.tobytes()) + z.flush(zlib.Z_FULL_FLUSH))
    _chunk(f, b"IDAT", z.flush())
    _chunk(f, b"IEND", b"")


def _write_tiff(image: DeepImage, f: IO[bytes]) -> None:
    """One uncompressed little-endian TIFF page: header, IFD (Pillow's serialiser), one strip."""
    arr = image.array
    h, w, c = arr.shape
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    exif = Image.Exif()
    if image.info.get("exif"):
        exif.load(image.info["exif"])
    for key in exif:
        ifd[key] = exif.get_ifd(key) if key in TiffImagePlugin.TiffTags.TAGS_V2_GROUPS else exif[key]
    tags: dict[int, tuple[Any, int]] = {
        256: (w, 4), 257: (h, 4), 258: ((16,) * c, 3), 259: (1, 3), 262: (2, 3), 273: (0, 4),
        277: (c, 3), 278: (h, 4), 279: (arr.nbytes, 4), 284: (1, 3),
    }
    if c == 4:
        tags[338] = (2, 3)  # ExtraSamples: unassociated alpha
    if image.info.get("dpi"):
        x, y = image.info["dpi"]
        tags |= {282: (TiffImagePlugin.IFDRational(x), 5), 283: (TiffImagePlugin.IFDRational(y), 5), 296: (2, 3)}
    if image.info.get("icc_profile"):
        tags[34675] = (image.info["icc_profile"], 7)
    if image.info.get("xmp"):
        tags[700] = (image.info["xmp"], 1)
    for key, (value, kind) in tags.items():
        ifd[key] = value
        ifd.tagtype[key] = kind
    # StripOffsets 0: Pillow's serialiser points it past the IFD it writes, where the strip goes.
    f.write(b"II*\0" + struct.pack("<I", 8) + ifd.tobytes(8))
    f.write(np.ascontiguousarray(arr, "<u2").tobytes())
