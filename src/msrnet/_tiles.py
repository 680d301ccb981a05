"""Tiles of `msrnet.upscale`: where they start, how neighbours blend, and the memory one takes.

Tiles are blended so that there are no seams: along every interior tile edge, each tile gives
zero weight to the outer quarter of the overlap (whose pixels lack context), ramps up with a
raised cosine across the middle half, and weighs 1 beyond it; at the image border a tile weighs
1, so borders see exactly the zero padding they would see untiled. The memory model
(`_memory_model`) is what `msrnet.inference.auto_tile_size` solves for the largest tile.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from msrnet._runner import _outputs, _Runner
from msrnet.models import TensorBytes
from msrnet.ops import self_ensemble as _self_ensemble


# --- tile geometry -----------------------------------------------------------------------------
def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spaced tile starts covering ``[0, length)``; neighbours overlap by >= ``overlap``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _edge_ramp(n: int, scale: int, overlap: int) -> Tensor:
    """Weights of the first ``n`` HR pixels from an interior tile edge, (n,) float32.

    In LR units from the edge: 0 up to ``overlap/4`` (pixels too close to the cut to be exact),
    a raised cosine up to ``3*overlap/4``, then 1. Two neighbours overlapping by exactly
    ``overlap`` get ramps that sum to 1; wider overlaps are normalised by the weight sum.
    """
    if overlap == 0:
        return torch.ones(n)
    pos = (torch.arange(n, dtype=torch.float64) + 0.5) / scale
    u = ((pos - overlap / 4) / (overlap / 2)).clamp(0.0, 1.0)
    return (0.5 - 0.5 * torch.cos(math.pi * u)).float()


def _profile(start: int, size: int, length: int, scale: int, overlap: int) -> Tensor:
    """1D blend weights of a tile's HR span, (scale*size,): ramps at interior edges only."""
    w = torch.ones(scale * size)
    if start > 0:
        w = torch.minimum(w, _edge_ramp(scale * size, scale, overlap))
    if start + size < length:
        w = torch.minimum(w, _edge_ramp(scale * size, scale, overlap).flip(0))
    return w


def _run_tiled(
    runner: _Runner, x: Tensor, scales: list[int], tile: int, overlap: int,
    emit: Callable[[int, int, int, Tensor], None], out_device: torch.device, progress: bool,
) -> None:
    """Upscale (B, C, H, W) one tile at a time and hand the blended rows to ``emit``.

    For an (h, w) LR tile the runner gives one tensor per output level, (B, C', s*h, s*w) for
    each s in ``scales``: a single output for a plain network, every level of the pyramid for
    a `~msrnet.models.PyramidForward`. Each level is blended with the weights of its own scale, so each level of a
    tiled pass equals that level of an untiled pass.

    Tiles run row by row. Each level's weighted outputs accumulate in a float32 strip as tall
    as one row of tiles (B, C', s*tile, s*W) on ``out_device``; once the next row of tiles
    starts, the rows above it are final and go to ``emit(i, r0, r1, rows)`` as
    (B, C', r1 - r0, s*W) float32 HR rows ``[r0, r1)`` of level ``i``, normalised by the weight
    sum. So the float32 working memory is one strip per level, not the whole output, whatever
    the image size.
    """
    b, _, h, w = x.shape
    if tile < 2 * overlap:
        raise ValueError(f"tile ({tile}) must be at least twice tile_overlap ({overlap})")
    th, tw = min(tile, h), min(tile, w)
    tops, lefts = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
    if len(tops) == len(lefts) == 1:
        for i, (y, s) in enumerate(zip(runner(x), scales, strict=True)):
            emit(i, 0, s * h, y.to(out_device))
        return
    # The weights of a grid of tiles are outer products, so their sum is too: two 1D buffers
    # per level normalise the blend instead of a full-resolution weight image.
    sums = []
    for s in scales:
        row_sum, col_sum = torch.zeros(s * h), torch.zeros(s * w)
        for top in tops:
            row_sum[s * top : s * (top + th)] += _profile(top, th, h, s, overlap)
        for left in lefts:
            col_sum[s * left : s * (left + tw)] += _profile(left, tw, w, s, overlap)
        sums.append((row_sum.to(out_device), col_sum.to(out_device)))

    def finish(i: int, strip: Tensor, r0: int, r1: int) -> None:
        row_sum, col_sum = sums[i]
        rows = strip[:, :, : r1 - r0]
        rows.div_(row_sum[r0:r1].view(-1, 1)).div_(col_sum)
        emit(i, r0, r1, rows)

    bar = tqdm(total=len(tops) * len(lefts), desc="tiles", unit="tile", leave=False, disable=not progress)
    strips: list[Tensor] = []  # level i: HR rows [s_i * strip_top, s_i * (strip_top + th))
    strip_top = 0
    for top in tops:
        if strips and top > strip_top:
            for i, (strip, s) in enumerate(zip(strips, scales)):
                finish(i, strip, s * strip_top, s * top)
                # The rows the next tiles overlap move up; a copy, as the two ranges may overlap.
                kept = strip[:, :, s * (top - strip_top) :].clone()
                strip.zero_()[:, :, : kept.shape[2]] = kept
                del kept
        strip_top = top
        for left in lefts:
            ys = runner(x[:, :, top : top + th, left : left + tw])
            if not strips:
                strips = [torch.zeros(b, y.shape[1], s * th, s * w, device=out_device) for y, s in zip(ys, scales)]
            for y, strip, s in zip(ys, strips, scales, strict=True):
                # Separable weights, applied in place: no tile-sized weight image.
                y.mul_(_profile(top, th, h, s, overlap).to(y.device).view(-1, 1))
                y.mul_(_profile(left, tw, w, s, overlap).to(y.device))
                strip[:, :, :, s * left : s * (left + tw)] += y.to(out_device)
            del ys
            bar.update()
    bar.close()
    for i, (strip, s) in enumerate(zip(strips, scales)):
        finish(i, strip, s * strip_top, s * h)


# --- the memory of one tile ------------------------------------------------------------------
_BYTES_PER_PIXEL: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], tuple[float, float]]] = (
    weakref.WeakKeyDictionary()
)


def _meta_peaks(runner: _Runner, in_chans: int, sides: tuple[int, ...]) -> list[int] | None:
    """`TensorBytes` peaks of the runner's forward, run on the meta device; None where it can't.

    Meta tensors have shapes and dtypes but no data, so every kernel is free: counting on them
    costs a few milliseconds of Python, where two real CPU forwards cost seconds (most of the
    first `upscale` call's extra time, benchmarks/first_call.py). The model is called with meta
    copies of its parameters and buffers (`torch.func.functional_call`), not moved. Only fp32
    on the CPU, the sizes it counts; CUDA probes are fast anyway. A model with an op that has no meta kernel, or that
    reads a value (``.item()``), gets None and the real probe.
    """
    if runner.device.type != "cpu" or runner.dtype != torch.float32:
        return None
    model = runner.net
    meta = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    }

    def forward(x: Tensor) -> Tensor | list[Tensor]:
        out: Tensor | list[Tensor] = torch.func.functional_call(model, meta, (x,))
        return out

    peaks = []
    try:
        for size in sides:
            with TensorBytes() as mode:
                # What the real probe counts: the input tile (which `.to()` hands back as is),
                # its channels_last copy, the forward, the output's sum.
                tile = torch.empty(1, in_chans, size, size, device="meta")
                x = tile.contiguous(memory_format=torch.channels_last)
                out = _self_ensemble(forward, x) if runner.ensemble else forward(x)
                for y in _outputs(out):
                    y.float().sum()
            peaks.append(mode.peak)
    except (NotImplementedError, RuntimeError, TypeError, ValueError):
        return None
    return peaks


def _memory_model(runner: _Runner, in_chans: int) -> tuple[float, float]:
    """(fixed bytes, bytes per LR pixel) of one forward, fitted on two small probes; cached."""
    key = (runner.device, runner.dtype, runner.ensemble, runner.levels)
    cache = _BYTES_PER_PIXEL.setdefault(runner.model, {})
    if key not in cache:
        peaks = _meta_peaks(runner, in_chans, (16, 32))
        if peaks is None:
            peaks = []
            for size in (16, 32):
                probe = torch.rand(1, in_chans, size, size)
                with TensorBytes() as mode:
                    runner(probe)
                peaks.append(mode.peak)
        per_pixel = max((peaks[1] - peaks[0]) / (32 * 32 - 16 * 16), 1.0)
        cache[key] = (max(peaks[0] - per_pixel * 16 * 16, 0.0), per_pixel)
    return cache[key]
