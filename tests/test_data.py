"""msrnet.data: image I/O, BenchmarkDataset and PairedDataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from msrnet.data import (
    BenchmarkDataset,
    PairedDataset,
    bicubic_degrade,
    list_images,
    mod_crop,
    read_image,
    read_image_tensor,
    tensor_to_uint8,
    uint8_to_tensor,
    write_image,
)
from msrnet.ops import imresize


def _rand_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[2] == 1 else img).save(path)
    return path


# --- I/O ------------------------------------------------------------------------------------


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "c.webp", "d.bmp", "e.tif", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "c.webp", "d.bmp", "e.tif"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".webp", ".tif"])
def test_write_read_roundtrip_is_lossless(tmp_path: Path, suffix: str) -> None:
    img = _rand_u8((9, 13, 3))
    write_image(tmp_path / "out" / f"x{suffix}", img)
    assert np.array_equal(read_image(tmp_path / "out" / f"x{suffix}"), img)


def test_grayscale_channels(tmp_path: Path) -> None:
    gray = _rand_u8((8, 10))
    path = _save(tmp_path / "g.png", gray)
    assert read_image(path).shape == (8, 10, 1)
    rgb = read_image(path, channels=3)
    assert rgb.shape == (8, 10, 3) and all(np.array_equal(rgb[..., c], gray) for c in range(3))
    assert read_image_tensor(path).shape == (1, 8, 10)
    color = _save(tmp_path / "c.png", _rand_u8((8, 10, 3)))
    assert read_image(color, channels=1).shape == (8, 10, 1)


def test_tensor_uint8_conversions() -> None:
    img = _rand_u8((4, 5, 3))
    t = uint8_to_tensor(img)
    assert t.shape == (3, 4, 5) and t.dtype == torch.float32
    assert np.array_equal(tensor_to_uint8(t), img)
    # Clamped, and rounded half away from zero like MATLAB's uint8().
    x = torch.tensor([[[-0.2, 0.5 / 255, 1.5 / 255, 2.5 / 255, 1.3]]], dtype=torch.float64)
    assert tensor_to_uint8(x)[0, :, 0].tolist() == [0, 1, 2, 3, 255]


def test_write_tensor(tmp_path: Path) -> None:
    t = torch.rand(3, 6, 7)
    write_image(tmp_path / "t.png", t)
    assert np.array_equal(read_image(tmp_path / "t.png"), tensor_to_uint8(t))


# --- datasets -------------------------------------------------------------------------------


def test_mod_crop() -> None:
    assert mod_crop(np.zeros((17, 23, 3)), 4).shape == (16, 20, 3)
    assert mod_crop(np.zeros((16, 20)), 4).shape == (16, 20)


def test_bicubic_degrade_is_uint8_imresize() -> None:
    hr = _rand_u8((16, 24, 3))
    lr = bicubic_degrade(hr, 4)
    assert lr.dtype == np.uint8 and lr.shape == (4, 6, 3)
    expected = imresize(torch.from_numpy(hr).permute(2, 0, 1), 0.25).permute(1, 2, 0).numpy()
    assert np.array_equal(lr, expected)


def test_benchmark_dataset(tmp_path: Path) -> None:
    _save(tmp_path / "set" / "a.png", _rand_u8((19, 22, 3)))
    _save(tmp_path / "set" / "b.bmp", _rand_u8((13, 9)))  # grayscale
    ds = BenchmarkDataset(tmp_path / "set", scale=3)
    assert len(ds) == 2 and ds.name == "set"
    a, b = ds[0], ds[1]
    assert a["name"] == "a" and a["hr"].shape == (3, 18, 21) and a["lr"].shape == (3, 6, 7)
    hr_u8 = tensor_to_uint8(a["hr"])
    assert np.array_equal(tensor_to_uint8(a["lr"]), bicubic_degrade(hr_u8, 3))
    # LR values sit on uint8 levels, like a saved LR image.
    assert torch.equal(a["lr"], torch.floor(a["lr"] * 255 + 0.5) / 255)
    assert b["hr"].shape == (3, 12, 9) and torch.equal(b["hr"][0], b["hr"][2])
    assert BenchmarkDataset(tmp_path / "set", 3, channels=None)[1]["lr"].shape == (1, 4, 3)


def test_benchmark_dataset_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        BenchmarkDataset(tmp_path / "empty", 2)


def _div2k(tmp_path: Path, scale: int) -> tuple[Path, Path]:
    hr_root = tmp_path / "DIV2K_valid_HR"
    lr_parent = tmp_path / "DIV2K_valid_LR_bicubic"
    for i, stem in enumerate(("0801", "0802")):
        hr = _rand_u8((8 * scale, 6 * scale, 3), i)
        _save(hr_root / f"{stem}.png", hr)
        _save(lr_parent / f"X{scale}" / f"{stem}x{scale}.png", bicubic_degrade(hr, scale))
    return hr_root, lr_parent


def test_paired_dataset_div2k_layout(tmp_path: Path) -> None:
    hr_root, lr_parent = _div2k(tmp_path, 4)
    for lr_root in (lr_parent, lr_parent / "X4"):
        ds = PairedDataset(hr_root, lr_root, scale=4)
        assert len(ds) == 2 and ds.name == "DIV2K_valid_HR"
        item = ds[1]
        assert (
            item["name"] == "0802"
            and item["hr"].shape == (3, 32, 24)
            and item["lr"].shape == (3, 8, 6)
        )
        assert np.array_equal(
            tensor_to_uint8(item["lr"]), read_image(lr_parent / "X4" / "0802x4.png")
        )


def test_paired_dataset_plain_stems_and_mod_crop(tmp_path: Path) -> None:
    _save(tmp_path / "hr" / "img.png", _rand_u8((13, 10, 3)))
    _save(tmp_path / "lr" / "img.png", _rand_u8((6, 5, 3)))
    item = PairedDataset(tmp_path / "hr", tmp_path / "lr", 2)[0]
    assert item["hr"].shape == (3, 12, 10)


def test_paired_dataset_errors(tmp_path: Path) -> None:
    hr_root, lr_parent = _div2k(tmp_path, 2)
    (lr_parent / "X2" / "0802x2.png").unlink()
    with pytest.raises(FileNotFoundError, match="0802"):
        PairedDataset(hr_root, lr_parent, 2)
    _save(tmp_path / "hr" / "img.png", _rand_u8((20, 20, 3)))
    _save(tmp_path / "lr" / "img.png", _rand_u8((5, 5, 3)))
    with pytest.raises(ValueError, match="does not match"):
        PairedDataset(tmp_path / "hr", tmp_path / "lr", 2)[0]


def test_benchmark_dataset_on_set5(shared_data: Path) -> None:
    ds = BenchmarkDataset(shared_data / "Set5", 4)
    assert len(ds) == 5 and ds.name == "Set5"
    for item in (ds[0], ds[4]):
        c, h, w = item["hr"].shape
        assert c == 3 and h % 4 == 0 and w % 4 == 0
        assert item["lr"].shape == (3, h // 4, w // 4)


def test_save_image_keeps_one_bit_transparency_in_gif_frames(tmp_path: Path) -> None:
    from msrnet.data.io import save_image

    soft = np.zeros((4, 4, 4), np.uint8)
    soft[..., :3] = 200
    soft[..., 3] = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17  # soft alpha, 0 to 255
    other = soft.copy()
    other[..., :3] = 50
    frames = [Image.fromarray(soft), Image.fromarray(other)]
    save_image(frames, tmp_path / "a.gif", duration=50)
    with Image.open(tmp_path / "a.gif") as img:
        assert img.n_frames == 2
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
    # Pillow's palette would drop soft alpha altogether; cut at half, it survives.
    np.testing.assert_array_equal(alpha, np.where(soft[..., 3] >= 128, 255, 0))


def test_save_image_decides_each_format_once(tmp_path: Path) -> None:
    from PIL import ImageCms

    from msrnet.data.io import save_image

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(_rand_u8((16, 16, 3)))
    img.info["icc_profile"] = icc
    for suffix in (".png", ".webp", ".jpg"):
        save_image(img, tmp_path / f"x{suffix}")
        with Image.open(tmp_path / f"x{suffix}") as saved:
            assert saved.info.get("icc_profile") == icc, suffix
    # WebP lossless (Pillow's default is lossy), JPEG at quality 95.
    np.testing.assert_array_equal(read_image(tmp_path / "x.webp"), np.asarray(img))
    img.save(tmp_path / "ref.jpg", quality=95, icc_profile=icc)
    assert (tmp_path / "x.jpg").read_bytes() == (tmp_path / "ref.jpg").read_bytes()
    with pytest.raises(ValueError, match="holds one image"):
        save_image([img, img], tmp_path / "two.jpg")
    assert not (tmp_path / "two.jpg").exists()
