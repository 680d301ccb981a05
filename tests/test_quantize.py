"""msrnet.ops.quantize: the one rounding rule gives the same bits as the formulas it replaced."""

from __future__ import annotations

import pytest
import torch

from msrnet.ops import quantize


def _values(dtype: torch.dtype, peak: float) -> torch.Tensor:
    """Random values in and out of [0, 1], every tie ``(k + 0.5) / peak`` and the edges."""
    g = torch.Generator().manual_seed(0)
    random = torch.rand(20_000, generator=g, dtype=torch.float64) * 1.4 - 0.2
    ties = (torch.arange(int(peak) + 1, dtype=torch.float64) + 0.5) / peak
    edges = torch.tensor([0.0, -0.0, 1.0, -1e-9, 1 + 1e-9, 1e30, -1e30, float("inf"), float("-inf")], dtype=torch.float64)
    return torch.cat([random, ties, edges]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("peak", [255.0, 65535.0])
def test_quantize_equals_the_formulas_it_replaced(dtype: torch.dtype, peak: float) -> None:
    x = _values(dtype, peak)
    # The call sites' formulas before `quantize` (io, evaluate, degradations, video; inference's
    # in-place rows; imresize's uint8 arithmetic on the 0-255 scale).
    clamped_first = torch.floor(x.clamp(0.0, 1.0) * peak + 0.5)
    in_place = x.clone().clamp_(0.0, 1.0).mul_(peak).add_(0.5).floor_()
    assert torch.equal(quantize(x, peak), clamped_first)
    assert torch.equal(quantize(x.clone(), peak, inplace=True), in_place)
    assert torch.equal(clamped_first, in_place)
    levels = x * peak
    assert torch.equal(quantize(levels, peak, scaled=True), levels.clone().clamp_(0.0, peak).add_(0.5).floor_())


def test_quantize_rounds_half_up_and_saturates_in_place_only_when_asked() -> None:
    x = torch.tensor([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 2.0], dtype=torch.float64)
    before = x.clone()
    assert quantize(x).tolist() == [0.0, 0.0, 0.0, 1.0, 255.0, 255.0]
    assert torch.equal(x, before)
    out = quantize(x, inplace=True)
    assert out is x and x.tolist() == [0.0, 0.0, 0.0, 1.0, 255.0, 255.0]
    # Half up, not to even (torch.round would give 0, 2, 2).
    scaled = torch.tensor([-3.0, 0.5, 1.5, 2.5, 254.5, 300.0])
    assert quantize(scaled, scaled=True).tolist() == [0.0, 1.0, 2.0, 3.0, 255.0, 255.0]
    assert quantize(torch.tensor([0.5]), 65535.0).tolist() == [32768.0]
