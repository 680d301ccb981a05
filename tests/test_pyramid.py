"""The pyramid as a feature: upscale(levels=True), `msrnet upscale --pyramid` and `--outscale`."""
from __future__ import annotations

import functools
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

import msrnet.models
from msrnet import MultiScaleSRNet
from msrnet.cli import main
from msrnet.inference import upscale
from msrnet.models import TensorBytes


@functools.cache
def x8_net() -> MultiScaleSRNet:
    """A narrow x8 network without global pooling (se_ratio=0), so tiles can be exact."""
    torch.manual_seed(8)
    return MultiScaleSRNet(scale=8, stem_widths=(8, 8), num_blocks=3, level_chans=(8, 8, 8), se_ratio=0).eval()


def test_levels_are_the_one_pass_pyramid() -> None:
    model = x8_net()
    x = torch.rand(2, 3, 9, 11)
    images = upscale(model, x, levels=True)
    with torch.no_grad():
        expected = [y.clamp(0, 1) for y in model.forward_pyramid(x)]
    assert [im.shape for im in images] == [(2, 3, 18, 22), (2, 3, 36, 44), (2, 3, 72, 88)]
    for im, ref in zip(images, expected):
        torch.testing.assert_close(im, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(images[-1], upscale(model, x), rtol=0, atol=0)


def test_tiled_levels_equal_untiled_levels() -> None:
    # Receptive radius of this network is well under 12 LR pixels: an overlap of 48 is exact.
    model = x8_net()
    x = torch.rand(1, 3, 70, 53)
    full = upscale(model, x, levels=True)
    tiled = upscale(model, x, levels=True, tile=100, tile_overlap=48)
    for a, b in zip(full, tiled):
        assert (a - b).abs().max().item() < 1e-4
    auto = upscale(model, x, levels=True, tile="auto", tile_overlap=8)
    assert [a.shape for a in auto] == [a.shape for a in full]


def test_levels_keep_image_kinds_gray_and_alpha() -> None:
    model = x8_net()
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (6, 5, 4), dtype=np.uint8), "RGBA")
    levels = upscale(model, rgba, levels=True)
    assert [(im.mode, im.size) for im in levels] == [("RGBA", (10, 12)), ("RGBA", (20, 24)), ("RGBA", (40, 48))]
    gray = rng.integers(0, 65536, (4, 3), dtype=np.uint16)
    levels = upscale(model, gray, levels=True)
    assert [(a.dtype, a.shape) for a in levels] == [(np.uint16, (8, 6)), (np.uint16, (16, 12)), (np.uint16, (32, 24))]


def test_levels_with_self_ensemble_match_the_plain_ensemble_on_top() -> None:
    model = x8_net()
    x = torch.rand(1, 3, 6, 7)
    # Untiled: the tile memory probe (tile="auto") is not what this compares, and costs seconds.
    levels = upscale(model, x, levels=True, self_ensemble=True, tile=None)
    torch.testing.assert_close(levels[-1], upscale(model, x, self_ensemble=True, tile=None), rtol=1e-5, atol=1e-5)
    assert (levels[-1] - upscale(model, x, tile=None)).abs().max() > 1e-4


def test_levels_need_a_pyramid_model() -> None:
    class Plain(torch.nn.Module):
        scale = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    with pytest.raises(ValueError, match="pyramid"):
        upscale(Plain(), torch.rand(1, 3, 4, 4), levels=True)


# --- command line ------------------------------------------------------------------------------
TINY = {"stem_widths": (8, 8), "num_blocks": 3, "se_ratio": 0}
RANDOM = ["--model", "msr_x8", "--no-pretrained", "--tile", "none"]


@pytest.fixture(autouse=True)
def tiny_models(use_tiny_models: Callable[..., None]) -> None:
    use_tiny_models(**TINY)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_pyramid_writes_every_level(image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    torch.manual_seed(0)  # the same random weights in both runs
    assert main(["upscale", str(image), "-o", str(out), "--pyramid", *RANDOM]) == 0
    sizes = {p.name: Image.open(p).size for p in out.iterdir()}
    assert sizes == {"photo_x2.png": (14, 10), "photo_x4.png": (28, 20), "photo_x8.png": (56, 40)}
    # The levels are those of one pass: the x8 file is what a plain run writes.
    torch.manual_seed(0)
    assert main(["upscale", str(image), "-o", str(tmp_path / "plain.png"), *RANDOM]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "photo_x8.png")),
                                  np.asarray(Image.open(tmp_path / "plain.png")))
    assert main(["upscale", str(image), "-o", str(tmp_path / "one.png"), "--pyramid", *RANDOM]) == 0
    assert (tmp_path / "one_x4.png").is_file()


@pytest.mark.parametrize("factor, size", [("3", (21, 15)), ("4", (28, 20)), ("1.5", (10, 8)), ("8", (56, 40))])
def test_cli_outscale_resizes_the_smallest_level_above(image: Path, tmp_path: Path, factor: str, size) -> None:
    out = tmp_path / "o.png"
    torch.manual_seed(0)
    assert main(["upscale", str(image), "-o", str(out), "--outscale", factor, *RANDOM]) == 0
    assert Image.open(out).size == size
    if factor == "4":  # a level itself: written as it is, not resized
        torch.manual_seed(0)
        levels = upscale(msrnet.models.create_model("msr_x8", **TINY), Image.open(image), levels=True)
        np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(levels[1]))


def test_cli_outscale_errors(image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upscale", str(image), "-o", str(tmp_path / "o.png"), "--outscale", "9", *RANDOM]) == 2
    assert "--outscale must be in (0, 8]" in capsys.readouterr().err
    assert main(["upscale", str(image), "-o", str(tmp_path / "o.png"), "--outscale", "2", "--pyramid", *RANDOM]) == 2


# --- memory of levels=True (issue 25) ----------------------------------------------------------
def test_levels_outputs_that_do_not_fit_together_are_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    import msrnet.inference as inference

    arr = np.zeros((20, 30, 3), np.uint8)
    largest = 8 * 20 * 8 * 30 * 3
    # Room for the x8 output alone, not for x2 + x4 + x8 together.
    monkeypatch.setattr(inference, "available_memory", lambda device: largest + largest // 4)
    assert upscale(x8_net(), arr, tile=None).shape == (160, 240, 3)
    with pytest.raises(MemoryError, match="the upscaled image needs"):
        upscale(x8_net(), arr, tile=None, levels=True)


def test_tiled_levels_keep_no_full_size_float_buffer() -> None:
    # Levels are stitched through strips one row of tiles tall, straight into the uint8
    # outputs, as single-level tiling is: no float tensor as large as a level ever exists.
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LargestFloat(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    self.largest = max(self.largest, t.numel())
            return out

    arr = np.random.default_rng(0).integers(0, 256, (96, 40, 3), dtype=np.uint8)
    with LargestFloat() as mode:
        images = upscale(x8_net(), arr, tile=16, tile_overlap=4, levels=True)
    assert [im.shape for im in images] == [(192, 80, 3), (384, 160, 3), (768, 320, 3)]
    assert mode.largest < 768 * 320 * 3 // 2, mode.largest


def test_levels_memory_probe_runs_the_pyramid_and_pays_every_strip() -> None:
    # auto_tile_size(levels=True) is the tile upscale(levels=True) picks: its meta probe counts
    # what a real forward_pyramid allocates, and a wide image pays a strip per level.
    import msrnet.inference as inference
    from msrnet import _runner, _tiles

    model = x8_net().to(memory_format=torch.channels_last)
    for ensemble in (False, True):
        runner = _runner._Runner(model, torch.device("cpu"), torch.float32, ensemble, levels=True)
        real = []
        for size in (16, 32):
            probe = torch.rand(1, 3, size, size)
            with torch.inference_mode(), TensorBytes() as mode:
                levels = runner(probe)
            assert [y.shape[-1] for y in levels] == [2 * size, 4 * size, 8 * size]
            del levels
            real.append(mode.peak)
        assert _tiles._meta_peaks(runner, 3, (16, 32)) == real
    plain = inference.auto_tile_size(model, device="cpu", image_width=20000)
    assert inference.auto_tile_size(model, device="cpu", image_width=20000, levels=True) < plain
    with pytest.raises(ValueError, match="pyramid"):
        inference.auto_tile_size(torch.nn.Conv2d(3, 3, 1), device="cpu", levels=True)
