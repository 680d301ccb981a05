"""What goes in comes out (issue 36), for images: depth, pages, orientation, EXIF, ICC, DPI, alpha.

Each test builds its input (16-bit PNG and TIFF through msrnet.data.deep's writer, which the
first test checks against Pillow's reading; multi-page TIFF through Pillow) and checks the
output's property. docs/inference.md has the table these rows hold.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image, ImageCms, ImageSequence
from torch import Tensor, nn

from msrnet._utils import FidelityWarning
from msrnet.cli import main
from msrnet.data.deep import DeepImage, deep_rawmode, read_deep
from msrnet.data.io import read_image, save_image
from msrnet.inference import upscale

TINY = {"stem_widths": (8, 8), "num_blocks": 2, "se_ratio": 0}
RANDOM = ["--model", "msr_x2", "--no-pretrained", "--tile", "none"]
ORIENTATION, MAKE = 0x0112, 0x010F
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%s"/></rdf:RDF></x:xmpmeta>'
)


@pytest.fixture(autouse=True)
def tiny_models(use_tiny_models: Callable[..., None]) -> None:
    use_tiny_models(**TINY)


class Nearest(nn.Module):
    """Nearest-neighbour x2: every output sample is an input sample, so depths can be compared exactly."""

    scale, in_chans = 2, 3

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


def deep(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def no_warnings(err: str) -> None:
    assert "warning" not in err, err


# --- 16 bits -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rgb16.png", "rgba16.png", "rgb16.tif", "rgba16.tiff"])
def test_sixteen_bit_colour_round_trips_and_pillow_reads_our_files(tmp_path: Path, name: str) -> None:
    arr = deep((7, 9, 4 if "rgba" in name else 3))
    path = tmp_path / name
    save_image(DeepImage(arr, {"dpi": (300, 300)}), path)
    with Image.open(path) as img:  # Pillow reads what we wrote: its 8 bits are our high bytes
        assert deep_rawmode(img) is not None and img.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert (np.asarray(img) == arr >> 8).all()
    np.testing.assert_array_equal(read_deep(path).array, arr)


@pytest.mark.parametrize("codec, fmt, options", [
    ("png", "rgb48be", {"pred": "paeth"}), ("png", "rgba64be", {"pred": "mixed"}),
    ("tiff", "rgb48le", {"compression_algo": "raw"}),  # several strips
    ("tiff", "rgb48le", {"compression_algo": "packbits"}), ("tiff", "rgba64le", {"compression_algo": "deflate"}),
    ("tiff", "rgb48le", {"compression_algo": "lzw"}),
])
def test_sixteen_bit_files_of_another_writer_are_read_at_full_depth(
    tmp_path: Path, codec: str, fmt: str, options: dict[str, str]
) -> None:
    av = pytest.importorskip("av")
    arr = deep((300, 40, 4 if "rgba" in fmt else 3))  # tall: FFmpeg cuts TIFFs into strips
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.options = 40, 300, fmt, options
    frame = av.VideoFrame.from_ndarray(arr, format=fmt.replace("be", "le"))
    path = tmp_path / f"ffmpeg.{codec}"
    path.write_bytes(b"".join(bytes(p) for p in [*ctx.encode(frame.reformat(format=fmt)), *ctx.encode(None)]))
    np.testing.assert_array_equal(read_deep(path).array, arr)


@pytest.mark.parametrize("name", ["rgb16.png", "rgba16.png", "rgb16.tif", "rgba16.tif"])
def test_sixteen_bit_colour_is_upscaled_at_sixteen_bits(tmp_path: Path, name: str) -> None:
    arr = deep((6, 5, 4 if "rgba" in name else 3))
    save_image(DeepImage(arr), tmp_path / name)
    out = upscale(Nearest(), read_deep(tmp_path / name))
    assert isinstance(out, DeepImage)
    colour = out.array[:, :, :3]
    np.testing.assert_array_equal(colour, arr[:, :, :3].repeat(2, 0).repeat(2, 1))  # every one of 16 bits


@pytest.mark.parametrize("name", ["rgb16.png", "rgba16.tif"])
def test_cli_writes_sixteen_bit_colour_as_sixteen_bits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    channels = 4 if "rgba" in name else 3
    arr = deep((8, 8, channels))
    if channels == 4:
        arr[:, :, 3] = 40000  # flat alpha: bicubic keeps it exactly
    src = tmp_path / name
    save_image(DeepImage(arr), src)
    out = tmp_path / f"out{src.suffix}"
    assert main(["upscale", str(src), "-o", str(out), *RANDOM]) == 0
    no_warnings(capsys.readouterr().err)
    with Image.open(out) as img:
        assert deep_rawmode(img) is not None and img.size == (16, 16)
    result = read_deep(out).array
    assert result.shape == (16, 16, channels)
    assert (result[:, :, :3] % 257 != 0).any()  # not 8-bit values stretched to 16
    if channels == 4:
        assert (result[:, :, 3] == 40000).all()


def test_sixteen_bit_colour_into_an_eight_bit_format_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "rgb16.png"
    save_image(DeepImage(deep((8, 8, 3))), src)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.jpg"), *RANDOM]) == 0
    assert "16-bit colour written as 8-bit" in capsys.readouterr().err


def test_the_library_says_when_pillow_read_sixteen_bits_as_eight(tmp_path: Path) -> None:
    src = tmp_path / "rgb16.png"
    save_image(DeepImage(deep((8, 8, 3))), src)
    with Image.open(src) as img, pytest.warns(FidelityWarning, match="read_deep reads it at full depth"):
        upscale(Nearest(), img)


def test_benchmark_reading_rounds_sixteen_bits_and_says_so(tmp_path: Path) -> None:
    arr = deep((6, 6, 3))
    save_image(DeepImage(arr), tmp_path / "rgb16.png")
    with pytest.warns(FidelityWarning, match="16-bit colour reduced to 8 bits"):
        got = read_image(tmp_path / "rgb16.png")
    np.testing.assert_array_equal(got, np.round(arr / 65535 * 255).astype(np.uint8))


# --- pages ---------------------------------------------------------------------------------------
def pages_tiff(path: Path) -> list[tuple[str, tuple[int, int]]]:
    """Three pages of three modes and sizes: RGB 8x6, L 5x7, and a 16-bit RGB 4x4 page."""
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    gray = Image.fromarray(rng.integers(0, 256, (7, 5), dtype=np.uint8))
    save_image(iter([rgb, gray, DeepImage(deep((4, 4, 3)))]), path)
    return [("RGB", (8, 6)), ("L", (5, 7)), ("RGB16", (4, 4))]


def tiff_pages(path: Path) -> list[tuple[str, tuple[int, int]]]:
    with Image.open(path) as img:
        found = []
        for i, page in enumerate(ImageSequence.Iterator(img)):
            found.append(("RGB16" if deep_rawmode(page) else page.mode, page.size))
            if deep_rawmode(page):
                assert (read_deep(path, i).array % 257 != 0).any()
        return found


def test_every_page_of_a_tiff_is_upscaled_into_a_tiff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pages.tif"
    layout = pages_tiff(src)
    assert tiff_pages(src) == layout
    out = tmp_path / "out.tif"
    assert main(["upscale", str(src), "-o", str(out), *RANDOM]) == 0
    no_warnings(capsys.readouterr().err)
    assert tiff_pages(out) == [(mode, (2 * w, 2 * h)) for mode, (w, h) in layout]


def test_a_tiff_of_pages_into_another_format_is_refused_with_the_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "pages.tif"
    pages_tiff(src)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), *RANDOM]) == 1
    assert "a TIFF of 3 pages: only a TIFF output holds them all" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_pages_are_written_one_at_a_time(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"

    def pages() -> Iterator[Image.Image]:
        for i in range(3):
            if i:  # the pages before this one are in the temporary file already
                (tmp,) = tmp_path.glob(".out.tif.*")
                assert tmp.stat().st_size > i * 16 * 16 * 3
            yield Image.fromarray(np.full((16, 16, 3), 50 * i, np.uint8))

    save_image(pages(), out)
    with Image.open(out) as img:
        assert img.n_frames == 3


# --- orientation, EXIF, ICC, DPI, alpha ----------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp"])
def test_exif_orientation_is_applied_then_reset_and_the_rest_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str
) -> None:
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE] = 6, "msrnet test camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / f"in{ext}"
    image = Image.fromarray(np.full((4, 6, 3), 90, np.uint8))
    image.info |= {"exif": exif.tobytes(), "icc_profile": icc, "xmp": XMP % b"6"}
    if ext != ".webp":
        image.info["dpi"] = (200, 100)
    save_image(image, src)  # each in its format's place, which Pillow alone does not do for XMP
    out = tmp_path / f"out{ext}"
    assert main(["upscale", str(src), "-o", str(out), *RANDOM]) == 0
    no_warnings(capsys.readouterr().err)
    with Image.open(out) as img:
        assert img.size == (8, 12)  # rotated upright: 6x4 -> 4x6, then x2
        assert img.getexif()[ORIENTATION] == 1 and img.getexif()[MAKE] == "msrnet test camera"
        assert img.info["icc_profile"] == icc
        xmp = img.info["xmp"]
        assert (xmp.encode() if isinstance(xmp, str) else xmp) == XMP % b"1"
        if ext != ".webp":
            assert img.info["dpi"] == pytest.approx((200, 100), abs=0.01)


def test_what_a_format_cannot_hold_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exif = Image.Exif()
    exif[MAKE] = "msrnet test camera"
    src = tmp_path / "in.png"
    Image.fromarray(np.full((4, 6, 3), 90, np.uint8)).save(src, exif=exif, dpi=(200, 200))
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.gif"), *RANDOM]) == 0
    assert ".gif holds no EXIF, no DPI: not kept" in capsys.readouterr().err


def test_alpha_is_kept(tmp_path: Path) -> None:
    arr = np.zeros((6, 6, 4), np.uint8)
    arr[..., :3], arr[..., 3] = 120, 77
    src = tmp_path / "a.png"
    Image.fromarray(arr).save(src)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.webp"), *RANDOM]) == 0
    with Image.open(tmp_path / "out.webp") as img:
        assert img.mode == "RGBA" and (np.asarray(img)[..., 3] == 77).all()


def test_sixteen_bit_colour_keeps_orientation_exif_icc_and_dpi(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE] = 8, "msrnet test camera"
    arr = deep((4, 6, 3))
    src = tmp_path / "in.png"
    info = {"exif": exif.tobytes(), "icc_profile": b"icc" * 50, "dpi": (72, 72), "xmp": XMP % b"8"}
    save_image(DeepImage(arr, info), src)
    got = read_deep(src)
    np.testing.assert_array_equal(got.array, np.rot90(arr))  # orientation 8: 90 degrees counter-clockwise
    for ext in (".png", ".tif"):
        out = tmp_path / f"out{ext}"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            save_image(upscale(Nearest(), got), out)
        with Image.open(out) as img:
            assert img.size == (8, 12) and img.info["icc_profile"] == b"icc" * 50
            assert img.getexif()[ORIENTATION] == 1 and img.getexif()[MAKE] == "msrnet test camera"
            assert img.info["dpi"] == pytest.approx((72, 72), abs=0.01)
            xmp = img.info["xmp"]
            assert (xmp.encode() if isinstance(xmp, str) else xmp) == XMP % b"1"


def test_sixteen_bit_gray_stays_sixteen_bit(tmp_path: Path) -> None:
    arr = deep((6, 6))
    src = tmp_path / "gray16.png"
    Image.fromarray(arr).save(src)  # Pillow holds 16-bit gray itself (mode I;16)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), *RANDOM]) == 0
    with Image.open(tmp_path / "out.png") as img:
        assert img.mode in ("I;16", "I") and img.size == (12, 12)
        assert (np.asarray(img) % 257 != 0).any()


def test_alpha_into_a_format_without_it_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(np.full((6, 6, 4), 100, np.uint8)).save(src)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.jpg"), *RANDOM]) == 1
    assert "RGBA" in capsys.readouterr().err and not (tmp_path / "out.jpg").exists()


def test_every_row_of_the_fidelity_table_names_tests_that_exist() -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "inference.md").read_text()
    table = page.split("## What goes in comes out", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) >= 20
    module = ""
    for row in rows:
        tests = row.rsplit("|", 2)[1]
        names = re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)`", tests)
        assert names, row
        for file, name in names:
            module = file or module
            assert f"def {name}(" in (root / "tests" / module).read_text(), (module, name)


def png_gray_alpha_16(path: Path, arr: np.ndarray) -> Path:
    """A 16-bit gray + alpha PNG (colour type 4), which Pillow opens as 8-bit RGBA."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w, _ = arr.shape
    rows = b"".join(b"\0" + arr[r].astype(">u2").tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def test_sixteen_bit_gray_and_alpha_read_at_eight_bits_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = png_gray_alpha_16(tmp_path / "la16.png", deep((6, 6, 2)))
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), *RANDOM]) == 0
    assert "16-bit RGBA image read at 8 bits (Pillow has no such mode)" in capsys.readouterr().err


def test_cmyk_is_converted_with_a_warning_and_a_profile_of_another_space_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (6, 6), (0, 128, 255, 0)).save(src)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), *RANDOM]) == 0
    assert "CMYK converted to RGB without colour management" in capsys.readouterr().err
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    gray = tmp_path / "gray.png"
    Image.new("L", (6, 6), 90).save(gray, icc_profile=srgb)  # a profile that cannot describe it
    assert main(["upscale", str(gray), "-o", str(tmp_path / "gray_out.png"), *RANDOM]) == 0
    assert "ICC profile for RGB dropped: the result is L" in capsys.readouterr().err
    with Image.open(tmp_path / "gray_out.png") as img:
        assert img.mode == "L" and "icc_profile" not in img.info


def test_palette_and_bilevel_keep_their_colours(recwarn: pytest.WarningsRecorder) -> None:
    pal = Image.new("P", (3, 2))
    pal.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    pal.putpixel((1, 1), 1)
    out = upscale(Nearest(), pal)
    assert out.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(pal.convert("RGB")).repeat(2, 0).repeat(2, 1))
    bilevel = Image.new("1", (3, 2), 1)
    bilevel.putpixel((0, 0), 0)
    out = upscale(Nearest(), bilevel)
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), np.asarray(bilevel.convert("L")).repeat(2, 0).repeat(2, 1))
    assert not [w for w in recwarn if issubclass(w.category, FidelityWarning)]


def test_a_png_gamma_is_kept_in_png_and_named_elsewhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import PngImagePlugin

    chunks = PngImagePlugin.PngInfo()
    chunks.add(b"gAMA", (100000).to_bytes(4, "big"))  # linear values
    src = tmp_path / "linear.png"
    Image.new("RGB", (4, 4), (30, 60, 90)).save(src, pnginfo=chunks)
    for name in ("out.png", "out16.png"):
        if name == "out16.png":  # the same through the 16-bit writer
            save_image(DeepImage(deep((4, 4, 3)), {"gamma": 1.0}), src)
        assert main(["upscale", str(src), "-o", str(tmp_path / name), *RANDOM]) == 0
        no_warnings(capsys.readouterr().err)
        with Image.open(tmp_path / name) as img:
            assert img.info["gamma"] == 1.0
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.jpg"), *RANDOM]) == 0
    assert ".jpg holds no PNG gamma (1): not kept" in capsys.readouterr().err


def test_unreadable_exif_is_named_and_the_image_still_upscaled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "junk_exif.png"
    Image.new("RGB", (4, 4), (10, 20, 30)).save(src, exif=b"Exif\0\0garbage!!")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), *RANDOM]) == 0
    assert "unreadable EXIF (not a TIFF file" in capsys.readouterr().err
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == (8, 8) and "exif" not in img.info



def _animated() -> Image.Image:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (6, 6), (v, v, v)) for v in (0, 255)]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return Image.open(buffer)


@pytest.mark.parametrize(("make", "category"), [(lambda: Image.new("CMYK", (6, 6)), FidelityWarning), (_animated, UserWarning)])
def test_image_warnings_name_the_line_that_called_upscale(make: Callable[[], Image.Image], category: type[Warning]) -> None:
    """A warning about the image points at the caller's `upscale(...)` line, not into msrnet, so
    that the message's file:line (and a warnings filter by module) finds the user's own code."""
    image = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        upscale(Nearest(), image)
    assert [w.category for w in caught] == [category]
    assert caught[0].filename == __file__, caught[0].filename
