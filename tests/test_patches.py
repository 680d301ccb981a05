"""Training patches: shapes, crops under the 8 dihedral transforms, LR = imresize(HR), streams."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from msrnet.data import InMemoryPatchSampler
from msrnet.ops import imresize


def _coordinate_image(height: int, width: int) -> torch.Tensor:
    """uint8 (3, H, W): channel 0 holds the row, channel 1 the column, channel 2 a constant."""
    img = torch.full((3, height, width), 7, dtype=torch.uint8)
    img[0] = torch.arange(height, dtype=torch.uint8).view(-1, 1)
    img[1] = torch.arange(width, dtype=torch.uint8).view(1, -1)
    return img


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations of (..., H, W), by torch's own ops."""
    return torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(-2, -1))


def _as_crop(hr: torch.Tensor) -> tuple[int, int] | None:
    """(top, left) if the uint8-level patch of a coordinate image is a plain crop, else None."""
    rows, cols = (hr[:2] * 255).round().long()
    n = rows.shape[-1]
    top, left = int(rows[0, 0]), int(cols[0, 0])
    expected_rows = top + torch.arange(n).view(-1, 1).expand(n, n)
    expected_cols = left + torch.arange(n).view(1, -1).expand(n, n)
    return (
        (top, left)
        if torch.equal(rows, expected_rows) and torch.equal(cols, expected_cols)
        else None
    )


def _quantized(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def test_batch_shapes_levels_and_lr_is_imresize_of_hr() -> None:
    images = [
        torch.randint(0, 256, (3, 40 + 3 * i, 50 - 2 * i), dtype=torch.uint8) for i in range(4)
    ]
    sampler = InMemoryPatchSampler(
        images, scale=4, patch_size=6, batch_size=5, device="cpu", seed=3
    )
    lr, hr = sampler.sample()
    assert lr.shape == (5, 3, 6, 6) and hr.shape == (5, 3, 24, 24)
    assert lr.dtype == hr.dtype == torch.float32 and lr.device.type == "cpu"
    for x in (lr, hr):
        assert 0 <= x.min() and x.max() <= 1
        torch.testing.assert_close(x * 255, (x * 255).round(), rtol=0, atol=1e-4)
    # The LR patch is exactly MATLAB's bicubic down-scaling of the uint8 HR patch.
    assert torch.equal(_quantized(lr), imresize(_quantized(hr), scale=0.25))


def test_without_augmentation_patches_are_crops() -> None:
    sampler = InMemoryPatchSampler(
        [_coordinate_image(40, 60)],
        scale=2,
        patch_size=5,
        batch_size=32,
        augment=False,
        device="cpu",
    )
    _, hr = sampler.sample()
    crops = [_as_crop(p) for p in hr]
    assert all(c is not None for c in crops)
    assert all(0 <= top <= 30 and 0 <= left <= 50 for top, left in crops)
    assert len(set(crops)) > 16  # positions are random
    assert torch.all(hr[:, 2] * 255 == 7)


def test_augmentation_uses_all_eight_transforms_of_crops() -> None:
    sampler = InMemoryPatchSampler(
        [_coordinate_image(50, 50)], scale=2, patch_size=4, batch_size=200, device="cpu", seed=1
    )
    _, hr = sampler.sample()
    seen = set()
    for patch in hr:
        # Exactly one inverse transform turns the patch back into a plain crop.
        undone = [k for k in range(8) if _as_crop(_dihedral(patch, k)) is not None]
        assert len(undone) == 1
        seen.add(undone[0])
    assert seen == set(range(8))


def test_downscaling_augmentation_covers_larger_regions() -> None:
    image = _coordinate_image(120, 120)
    plain = InMemoryPatchSampler([image], 2, 8, 4, augment=False, device="cpu", seed=0)
    scaled = InMemoryPatchSampler(
        [image], 2, 8, 4, augment=False, min_scale=0.5, device="cpu", seed=0
    )
    span = lambda hr: (hr[:, 0] * 255).amax((1, 2)) - (hr[:, 0] * 255).amin((1, 2))  # noqa: E731
    assert torch.all(span(plain.sample()[1]) == 15)
    spans = torch.cat([span(scaled.sample()[1]) for _ in range(10)])
    assert spans.min() >= 15 and spans.max() > 20 and spans.max() <= 33
    lr, hr = scaled.sample()
    assert hr.shape == (4, 3, 16, 16)
    assert torch.equal(_quantized(lr), imresize(_quantized(hr), scale=0.5))


def test_stream_is_seeded_and_resumable() -> None:
    images = [torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8) for _ in range(3)]
    a = InMemoryPatchSampler(images, 2, 4, 6, device="cpu", seed=5)
    b = InMemoryPatchSampler(images, 2, 4, 6, device="cpu", seed=5)
    c = InMemoryPatchSampler(images, 2, 4, 6, device="cpu", seed=6)
    a.sample()
    state = a.state_dict()
    first = a.sample()
    b.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(first, b.sample()))
    assert not torch.equal(first[1], c.sample()[1])


def test_small_images_left_out_or_refused() -> None:
    big, small = torch.zeros(3, 20, 20, dtype=torch.uint8), torch.zeros(3, 20, 7, dtype=torch.uint8)
    with pytest.warns(UserWarning, match="1 of 2 images are smaller"):
        sampler = InMemoryPatchSampler([big, small], 2, 4, 2, device="cpu")
    assert sampler.num_images == 1
    with pytest.raises(ValueError, match="smaller than the 8x8 HR patch"):
        InMemoryPatchSampler([small], 2, 4, 2, device="cpu")


def test_sampler_over_a_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(30, 40), (36, 36), (10, 50)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(
        tmp_path / "gray.webp", lossless=True
    )
    with pytest.warns(UserWarning, match="1 of 4 images"):
        sampler = InMemoryPatchSampler(tmp_path, scale=3, patch_size=8, batch_size=3, device="cpu", progress=False)
    assert sampler.num_images == 3
    lr, hr = sampler.sample()
    assert lr.shape == (3, 3, 8, 8) and hr.shape == (3, 3, 24, 24)
    assert torch.equal(_quantized(lr), imresize(_quantized(hr), scale=1 / 3))


def test_sampler_on_train291(shared_data: Path) -> None:
    sampler = InMemoryPatchSampler(
        shared_data / "train291", scale=4, patch_size=16, batch_size=2, min_scale=0.5, device="cpu", progress=False
    )
    assert sampler.num_images == 291
    lr, hr = sampler.sample()
    assert lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 64, 64)


@pytest.mark.cuda
def test_cuda_batches_match_cpu_batches() -> None:
    images = [torch.randint(0, 256, (3, 60, 70), dtype=torch.uint8) for _ in range(3)]
    batches = [
        InMemoryPatchSampler(images, 4, 8, 6, min_scale=0.5, device=d, seed=5).sample()
        for d in ("cpu", "cuda")
    ]
    for cpu, cuda in zip(*batches):
        assert cuda.is_cuda
        # The same draws; the LR may differ by one level only at a float64 rounding tie.
        assert (cpu - cuda.cpu()).abs().max() <= 1 / 255 + 1e-6
