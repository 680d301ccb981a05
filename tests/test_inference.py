"""msrnet.inference.upscale: tiling, every image kind and mode, dtypes, auto tiles, self-ensemble."""
from __future__ import annotations

import functools
import io
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageOps
from torch import Tensor, nn

from msrnet import MultiScaleSRNet, _runner, _tiles, inference
from msrnet._tiles import _tile_starts
from msrnet.inference import auto_tile_size, resolve_dtype, upscale
from msrnet.models import TensorBytes


class Nearest(nn.Module):
    """Nearest-neighbour up-scaling: every output pixel is an input pixel, so values are exact."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.in_chans = 3
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(tuple(x.shape))
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


@functools.cache
def small_net(scale: int) -> MultiScaleSRNet:
    """A narrow network without global pooling (se_ratio=0); receptive radius 6-7 LR pixels."""
    torch.manual_seed(scale)
    levels = {2: 1, 4: 2}[scale]
    return MultiScaleSRNet(
        scale=scale, stem_widths=(8, 8), num_blocks=2, level_chans=(8,) * levels, se_ratio=0
    ).eval()


def nearest_numpy(arr: np.ndarray, s: int) -> np.ndarray:
    return arr.repeat(s, axis=0).repeat(s, axis=1)


# --- tiling ------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(1, 300),
    tile=st.integers(2, 120),
    overlap=st.integers(0, 60),
)
def test_tile_starts_cover_with_overlap(length: int, tile: int, overlap: int) -> None:
    overlap = min(overlap, tile // 2)
    starts = _tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] + min(tile, length) == length
    for a, b in itertools.pairwise(starts):
        assert 0 < b - a <= tile - overlap


@settings(max_examples=15, deadline=None)
@given(
    scale=st.sampled_from([2, 4]),
    batch=st.integers(1, 2),
    height=st.integers(5, 96),
    width=st.integers(5, 96),
    overlap=st.integers(28, 40),
    extra=st.integers(0, 24),
)
def test_tiled_equals_untiled_without_global_pooling(
    scale: int, batch: int, height: int, width: int, overlap: int, extra: int
) -> None:
    # The receptive radius is <= 7 LR pixels, so an overlap >= 28 (a quarter >= 7) makes tiles
    # exact everywhere, image borders included.
    model = small_net(scale)
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(height * width))
    full = upscale(model, x)
    tiled = upscale(model, x, tile=2 * overlap + extra, tile_overlap=overlap)
    assert tiled.shape == (batch, 3, scale * height, scale * width)
    assert (tiled - full).abs().max().item() < 1e-4


def test_tiled_uint8_within_one_level_and_actually_tiles() -> None:
    model = small_net(2)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    full = upscale(model, img)
    tiled = upscale(model, img, tile=56, tile_overlap=28)
    assert np.abs(full.astype(int) - tiled.astype(int)).max() <= 1

    probe = Nearest(2)
    upscale(probe, img, tile=56, tile_overlap=28)
    assert len(probe.seen) == 3 * 4  # 97 rows -> 3 tiles, 131 columns -> 4 tiles
    assert max(max(s[2:]) for s in probe.seen) <= 56


def test_tiled_self_ensemble_equals_untiled_self_ensemble() -> None:
    model = small_net(2)
    x = torch.rand(1, 3, 70, 50)
    full = upscale(model, x, self_ensemble=True)
    tiled = upscale(model, x, tile=60, tile_overlap=28, self_ensemble=True)
    assert (tiled - full).abs().max().item() < 1e-4
    assert (full - upscale(model, x)).abs().max().item() > 1e-3  # the ensemble did something


def test_tile_smaller_than_twice_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        upscale(Nearest(), torch.rand(3, 40, 40), tile=20, tile_overlap=16)


# --- automatic tiles and out-of-memory ------------------------------------------------------------
def test_auto_tile_follows_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_net(2)
    monkeypatch.setattr(inference, "CPU_MEMORY_BUDGET", 64 << 20)
    small = auto_tile_size(model, device="cpu")
    monkeypatch.setattr(inference, "CPU_MEMORY_BUDGET", 256 << 20)
    large = auto_tile_size(model, device="cpu")
    assert small % 8 == 0 and large % 8 == 0
    assert 1.6 < large / small < 2.4  # 4x the memory -> about 2x the side
    # Two images per tile need half the pixels of one.
    assert auto_tile_size(model, device="cpu", batch_size=4) == pytest.approx(large / 2, abs=8)


@pytest.mark.parametrize("ensemble", [False, True])
def test_meta_probe_counts_what_the_real_forward_allocates(ensemble: bool) -> None:
    # auto_tile_size counts memory on the meta device (no kernels run, so the first upscale call
    # costs no more than the next); the counts must be those of two real forwards.
    model = small_net(4).to(memory_format=torch.channels_last)
    runner = _runner._Runner(model, torch.device("cpu"), torch.float32, ensemble)
    meta = _tiles._meta_peaks(runner, 3, (16, 32))
    real = []
    for size in (16, 32):
        probe = torch.rand(1, 3, size, size)
        with torch.inference_mode(), TensorBytes() as mode:
            runner(probe)
        real.append(mode.peak)
    assert meta == real


class ReadsAValue(nn.Module):
    """x2 nearest, after reading a value (what a meta tensor cannot give)."""

    scale = 2

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") * (1.0 if x.max().item() <= 1 else 0.5)


def test_models_the_meta_device_cannot_run_get_the_real_probe() -> None:
    model = ReadsAValue()
    cpu = torch.device("cpu")
    assert _tiles._meta_peaks(_runner._Runner(model, cpu, torch.float32, False), 3, (16, 32)) is None
    # Reduced precision is counted for real too: autocast does not reach meta tensors.
    assert _tiles._meta_peaks(_runner._Runner(small_net(2), cpu, torch.bfloat16, False), 3, (16, 32)) is None
    assert auto_tile_size(model, device="cpu") >= 32
    assert upscale(model, torch.rand(3, 9, 7)).shape == (3, 18, 14)


def test_auto_tile_bounds_the_work_per_call_whatever_the_image_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "auto_tile_size", lambda *a, **k: 48)
    model = Nearest(2)
    img = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    out = upscale(model, img, tile="auto", tile_overlap=8)
    np.testing.assert_array_equal(out, nearest_numpy(img, 2))
    assert max(max(s[2:]) for s in model.seen) <= 48


class OutOfMemoryAbove(Nearest):
    """Raises CUDA's out-of-memory error for tiles larger than ``limit`` pixels on a side."""

    def __init__(self, limit: int) -> None:
        super().__init__(2)
        self.limit = limit

    def forward(self, x: Tensor) -> Tensor:
        if max(x.shape[-2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("simulated")
        return super().forward(x)


def test_auto_tile_halves_on_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "auto_tile_size", lambda *a, **k: 160)
    model = OutOfMemoryAbove(50)
    img = np.random.default_rng(1).integers(0, 256, (120, 90), dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="tile=40"):
        out = upscale(model, img, tile="auto", tile_overlap=8)
    np.testing.assert_array_equal(out, nearest_numpy(img, 2))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        upscale(OutOfMemoryAbove(10), img, tile="auto", tile_overlap=8)


# --- image kinds and modes ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "dtype", "channels"),
    [("RGB", np.uint8, 3), ("RGBA", np.uint8, 4), ("L", np.uint8, None), ("LA", np.uint8, 2),
     ("I;16", np.uint16, None), ("I", np.int32, None)],
)
def test_pil_modes_round_trip(mode: str, dtype: type, channels: int | None) -> None:
    rng = np.random.default_rng(0)
    high = 65536 if dtype != np.uint8 else 256
    shape = (5, 7) if channels is None else (5, 7, channels)
    arr = rng.integers(0, high, shape).astype(dtype)
    if channels in (2, 4):
        arr[..., -1] = 200  # constant alpha: bicubic keeps it exactly
    img = Image.fromarray(arr)
    assert img.mode == mode
    out = upscale(Nearest(2), img)
    assert out.mode == mode and out.size == (14, 10)
    expected = nearest_numpy(arr, 2)
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_alpha_is_upscaled_with_bicubic_and_clamped() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    out = upscale(Nearest(2), Image.fromarray(arr))
    alpha = torch.from_numpy(arr[..., 3].astype(np.float32) / 255)[None, None]
    expected = F.interpolate(alpha, scale_factor=2, mode="bicubic").clamp(0, 1)
    expected = torch.floor(expected * 255 + 0.5)[0, 0].numpy().astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(out)[..., 3], expected)
    np.testing.assert_array_equal(np.asarray(out)[..., :3], nearest_numpy(arr[..., :3], 2))


def test_palette_images_become_rgb_or_rgba() -> None:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8))
    palette = rgb.convert("P")
    assert upscale(Nearest(2), palette).mode == "RGB"
    palette.info["transparency"] = 0
    assert upscale(Nearest(2), palette).mode == "RGBA"


def test_gray_runs_through_an_rgb_model_and_stays_gray() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (9, 11), dtype=np.uint8)
    out = upscale(small_net(2), Image.fromarray(arr))
    assert out.mode == "L" and out.size == (22, 18)
    # Gray is the BT.601 luma of the RGB model's output on R = G = B.
    x = torch.from_numpy(arr.astype(np.float32) / 255).expand(1, 3, -1, -1)
    with torch.no_grad():
        rgb = small_net(2)(x)
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)[0].clamp(0, 1)
    expected = torch.floor(luma * 255 + 0.5).numpy().astype(np.uint8)
    assert np.abs(np.asarray(out).astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 1), (6, 5, 2), (6, 5, 3), (6, 5, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_numpy_round_trip(shape: tuple[int, ...], dtype: type) -> None:
    arr = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    if len(shape) == 3 and shape[2] in (2, 4):
        arr[..., -1] = np.iinfo(dtype).max
    out = upscale(Nearest(3), arr)
    assert out.dtype == dtype and out.shape == (18, 15, *shape[2:])
    np.testing.assert_array_equal(out, nearest_numpy(arr, 3))


@pytest.mark.parametrize("shape", [(3, 6, 5), (1, 6, 5), (4, 6, 5), (2, 3, 6, 5), (2, 1, 6, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_tensor_round_trip(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = torch.rand(shape).to(dtype)
    if shape[-3] in (2, 4):
        x[..., -1, :, :] = 0.5  # constant alpha: bicubic keeps it exactly
    out = upscale(Nearest(2), x)
    assert out.dtype == dtype and out.device == x.device and out.shape == (*shape[:-2], 12, 10)
    expected = F.interpolate(x.float().reshape(-1, 1, 6, 5), scale_factor=2).reshape(out.shape)
    torch.testing.assert_close(out.float(), expected.to(dtype).float(), atol=1e-3, rtol=0)


def test_exif_orientation_is_applied_and_icc_profile_kept() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", exif=exif, icc_profile=icc)
    buf.seek(0)
    with Image.open(buf) as img:
        upright = np.asarray(ImageOps.exif_transpose(img))
        out = upscale(Nearest(2), img)
    assert upright.shape == (6, 4, 3)
    assert out.size == (8, 12)
    np.testing.assert_array_equal(np.asarray(out), nearest_numpy(upright, 2))
    assert out.info["icc_profile"] == icc


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(TypeError, match="uint8 or uint16"):
        upscale(Nearest(), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="C in 1..4"):
        upscale(Nearest(), np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError, match="floating point"):
        upscale(Nearest(), torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="PIL image, numpy array or tensor"):
        upscale(Nearest(), [[0.0]])  # type: ignore[type-var]
    with pytest.raises(ValueError, match="scale"):
        upscale(nn.Identity(), torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="tile"):
        upscale(Nearest(), torch.zeros(3, 4, 4), tile=0)


# --- dtypes, devices, model state ----------------------------------------------------------------
def test_resolve_dtype() -> None:
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype(torch.float16, torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int8", torch.device("cpu"))


class NanInReducedPrecision(Nearest):
    """Returns NaN when it runs in a reduced dtype, as an fp16 overflow would."""

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return y * float("nan") if x.dtype != torch.float32 else y


def test_reduced_precision_falls_back_to_fp32_on_nan() -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.warns(RuntimeWarning, match="falling back to float32"):
        out = upscale(NanInReducedPrecision(2), x, dtype="bf16")
    torch.testing.assert_close(out, F.interpolate(x, scale_factor=2))


def test_reduced_precision_casts_the_weights_once_and_leaves_the_model_float32() -> None:
    model = small_net(2)
    calls: list[torch.dtype] = []
    model.register_forward_pre_hook(lambda _, args: calls.append(args[0].dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upscale(model, torch.rand(1, 3, 16, 16), dtype="bf16", tile=8, tile_overlap=4)
    assert len(calls) > 1 and set(calls) == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_bf16_on_cpu_is_close_to_fp32() -> None:
    x = torch.rand(1, 3, 16, 16)
    model = small_net(2)
    err = (upscale(model, x, dtype="bf16") - upscale(model, x)).abs().max().item()
    assert 0 < err < 0.05


def test_model_mode_is_restored() -> None:
    model = small_net(2).train()
    upscale(model, torch.rand(3, 8, 8))
    assert model.training
    model.eval()


@pytest.mark.cuda
def test_cuda_bf16_matches_cpu_fp32() -> None:
    model = small_net(2)
    x = torch.rand(1, 3, 40, 40)
    cpu = upscale(model, x, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gpu = upscale(model, x.cuda(), device="cuda", tile=32, tile_overlap=8)
    model.cpu()
    assert gpu.is_cuda and (gpu.cpu() - cpu).abs().max().item() < 0.05


# --- hostile and unlucky inputs ------------------------------------------------------------------
def test_auto_tiles_are_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "auto_tile_size", lambda *a, **k: 48)
    model = Nearest(2)
    img = np.random.default_rng(0).integers(0, 256, (100, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(upscale(model, img, tile_overlap=8), nearest_numpy(img, 2))
    assert max(max(s[2:]) for s in model.seen) <= 48


def test_auto_tile_follows_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_net(2)
    monkeypatch.setattr(inference, "CPU_MEMORY_BUDGET", 1 << 40)
    monkeypatch.setattr(inference, "available_memory", lambda device: 64 << 20)
    small = auto_tile_size(model, device="cpu")
    monkeypatch.setattr(inference, "available_memory", lambda device: 256 << 20)
    large = auto_tile_size(model, device="cpu")
    assert 1.6 < large / small < 2.4
    # The stitching strip of a wide image is paid from the same budget.
    assert auto_tile_size(model, device="cpu", image_width=20000) < large
    assert inference.available_memory("cpu") > 0


def test_an_output_larger_than_memory_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "available_memory", lambda device: 1000)
    with pytest.raises(MemoryError, match="needs 0.00 GiB"):
        upscale(Nearest(2), np.zeros((20, 20, 3), np.uint8), tile=None)


@pytest.mark.parametrize("kind", ["numpy", "pil", "tensor"])
def test_strips_in_the_final_dtype_equal_one_float_buffer(kind: str) -> None:
    # Many tile rows and columns, uneven overlaps: the rows handed on strip by strip must blend
    # exactly as one full-size float buffer would.
    model = small_net(2)
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (83, 61, 3), dtype=np.uint8)
    image = {"numpy": arr, "pil": Image.fromarray(arr),
             "tensor": torch.from_numpy(arr.transpose(2, 0, 1).astype(np.float32) / 255)}[kind]
    full = upscale(model, image, tile=None)
    tiled = upscale(model, image, tile=40, tile_overlap=16)
    a = np.asarray(full, dtype=np.float32)
    b = np.asarray(tiled, dtype=np.float32)
    assert np.abs(a - b).max() <= (1 if kind != "tensor" else 1e-4)


def test_nan_weights_raise_instead_of_a_black_image() -> None:
    model = MultiScaleSRNet(scale=2, stem_widths=(8, 8), num_blocks=2, level_chans=(8,), se_ratio=0)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(FloatingPointError, match="1 of its parameters are NaN/inf"):
        upscale(model, np.zeros((8, 8, 3), np.uint8))


def test_non_finite_and_out_of_range_tensors_are_refused() -> None:
    x = torch.rand(3, 8, 8)
    x[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="1 NaN/inf values"):
        upscale(Nearest(), x)
    with pytest.raises(ValueError, match=r"\[0, 1\], got \[0, 255\]; divide 0..255 values by 255"):
        upscale(Nearest(), torch.linspace(0, 255, 48).view(3, 4, 4))
    with pytest.raises(ValueError, match=r"got \[-1, 1\]"):
        upscale(Nearest(), torch.linspace(-1, 1, 48).view(3, 4, 4))
    # Rounding noise just outside [0, 1] is accepted.
    upscale(Nearest(), torch.linspace(-1e-3, 1 + 1e-3, 48).view(3, 4, 4))


@pytest.mark.parametrize(
    "image", [np.zeros((0, 5, 3), np.uint8), np.zeros((4, 0), np.uint16), torch.zeros(3, 4, 0),
              Image.new("RGB", (0, 3))],
    ids=["numpy-h", "numpy-w", "tensor", "pil"],
)
def test_empty_images_are_a_value_error(image: object) -> None:
    with pytest.raises(ValueError, match="the image is empty"):
        upscale(Nearest(), image)  # type: ignore[type-var]


def test_animated_images_warn_that_one_frame_is_upscaled() -> None:
    frames = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with Image.open(buf) as img:
        img.seek(1)
        with pytest.warns(UserWarning, match="2 frames: only frame 1 is upscaled"):
            upscale(Nearest(2), img)


# A narrow msr network, as the fuzz test runs many calls.
FUZZ_NET = MultiScaleSRNet(scale=2, stem_widths=(8, 8), num_blocks=2, level_chans=(8,), se_ratio=0).eval()


@st.composite
def _images(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["numpy", "tensor", "pil"]))
    h, w = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    if kind == "pil":
        mode = draw(st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16", "I", "F", "YCbCr"]))
        return Image.new(mode, (w, h))
    if kind == "numpy":
        dtype = draw(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.bool_]))
        shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 2), (h, w, 3), (h, w, 4), (h, w, 5), (h,), (1, h, w, 3)]))
        return np.ones(shape, dtype)
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.uint8, torch.int64]))
    shape = draw(st.sampled_from([(3, h, w), (1, h, w), (2, 3, h, w), (4, h, w), (5, h, w), (h, w), (1, 1, 3, h, w)]))
    fill = draw(st.sampled_from([0.0, 0.5, 1.0, 255.0, -0.5, float("nan"), float("inf")]))
    x = torch.full(shape, 0.5).to(dtype)
    if not x.is_floating_point() or not x.numel():
        return x
    if draw(st.booleans()):
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = fill  # one hostile value
    else:
        x.fill_(fill)
    return x


def _documented(image: object) -> bool:
    """Whether `upscale`'s docstring promises to upscale ``image`` (of `_images`): a non-empty
    PIL image of a documented mode, a uint8 / uint16 array of 1, 3 or 4 channels, or a float
    tensor in [0, 1] of 1 or 3 channels, batched or not. Other inputs may be refused."""
    if isinstance(image, Image.Image):
        return image.mode in ("RGB", "RGBA", "L", "LA", "I;16", "I") and min(image.size) >= 1
    if isinstance(image, np.ndarray):
        channels_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
        return image.dtype in (np.uint8, np.uint16) and channels_ok and min(image.shape[:2]) >= 1
    assert isinstance(image, Tensor)
    in_range = image.numel() > 0 and bool(torch.isfinite(image).all()) and 0 <= float(image.min()) <= float(image.max()) <= 1
    shape_ok = image.ndim in (3, 4) and image.shape[-3] in (1, 3) and min(image.shape[-2:]) >= 1
    return image.is_floating_point() and shape_ok and in_range


@settings(max_examples=40, deadline=None)
@given(
    image=_images(),
    tile=st.sampled_from(["auto", None, 8, 16]),
    overlap=st.sampled_from([0, 2, 3]),
    dtype=st.sampled_from([None, "bf16"]),
    ensemble=st.booleans(),
)
def test_fuzz_upscale_ends_in_a_result_or_a_clear_error(
    image: object, tile: object, overlap: int, dtype: str | None, ensemble: bool
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = upscale(FUZZ_NET, image, tile=tile, tile_overlap=overlap, dtype=dtype,  # type: ignore[arg-type]
                          self_ensemble=ensemble)
        except (ValueError, TypeError) as e:
            # A refusal is one line with a message, and only of an input the docs do not promise.
            assert str(e), "an error without a message"
            assert not _documented(image), f"a documented input was refused: {type(e).__name__}: {e}"
            return
    # A result is the same kind, scaled, with every value in range.
    assert type(out) is type(image)
    if isinstance(image, Tensor):
        assert out.shape == (*image.shape[:-2], 2 * image.shape[-2], 2 * image.shape[-1])
        assert out.dtype == image.dtype and bool(torch.isfinite(out).all())
        assert float(out.min()) >= 0 and float(out.max()) <= 1
    elif isinstance(image, np.ndarray):
        assert out.shape == (2 * image.shape[0], 2 * image.shape[1], *image.shape[2:])
        assert out.dtype == image.dtype
    else:
        assert out.size == (2 * image.width, 2 * image.height)


class LayoutProbe(nn.Module):
    """Nearest up-scaling through a 1x1 convolution that records the layouts it runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.scale, self.in_chans = 2, 3
        self.conv = nn.Conv2d(3, 3, 1)
        self.layouts: list[tuple[bool, bool]] = []

    def forward(self, x: Tensor) -> Tensor:
        cl = torch.channels_last
        self.layouts.append((x.is_contiguous(memory_format=cl), self.conv.weight.is_contiguous(memory_format=cl)))
        return F.interpolate(self.conv(x), scale_factor=2, mode="nearest")


def test_cpu_inference_runs_channels_last_and_hands_the_model_back_as_it_came() -> None:
    model = LayoutProbe()
    upscale(model, torch.rand(1, 3, 12, 10))
    # oneDNN runs the convolutions faster in channels_last on the CPU too (docs/inference.md).
    assert model.layouts and all(x_cl and w_cl for x_cl, w_cl in model.layouts)
    assert model.conv.weight.is_contiguous()
