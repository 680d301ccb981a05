"""Upscale images of any size and kind: tiling, self-ensemble, dtypes and devices.

`upscale` takes a PIL image, a numpy array or a float tensor and returns the same kind, scaled by
``model.scale``. Large images are cut into overlapping LR tiles that run one at a time, so peak
accelerator memory depends on the tile, not on the image; tiles are blended without seams
(`msrnet._tiles`), and each runs through `msrnet._runner`. For a network whose receptive
radius is at most ``tile_overlap / 4`` LR pixels and which has no global pooling, tiled output
equals untiled output up to float rounding. Networks with channel attention (msrnet's SE blocks) pool over the tile, so tiled and
untiled differ slightly there; docs/inference.md gives the measured PSNR.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Literal, TypeVar, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from msrnet._image_kinds import store, to_tensor
from msrnet._runner import _output_scales, _Runner
from msrnet._tiles import _memory_model, _run_tiled
from msrnet.data.deep import DeepImage
from msrnet.device import default_dtype, run_device
from msrnet.models import preserved

__all__ = [
    "CPU_MEMORY_BUDGET", "auto_tile_size", "available_memory", "resolve_dtype", "upscale", "whole_image_memory",
]

ImageT = TypeVar("ImageT", Image.Image, np.ndarray, Tensor, DeepImage)

# The most memory a tile may take when `tile='auto'` runs on the CPU (less when less RAM is
# available), where memory is shared with everything else on the machine and swapping is far
# worse than a smaller tile.
CPU_MEMORY_BUDGET = 2 << 30
# Share of the budget (or of free CUDA memory) that the live tensors of a tile may fill: the
# estimate below counts tensors, not allocator blocks or kernel workspaces. On the CPU, peak RSS
# grew by 1.6-1.9x the counted bytes (msr_x4, fp32 and bf16, a 160x160 tile).
_MEMORY_SHARE = 0.6
# Auto tiles are multiples of this (whole 8x8 blocks suit every backend's conv kernels) and
# never smaller than `_MIN_AUTO_TILE`.
_TILE_ALIGN = 8
_MIN_AUTO_TILE = 32

_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}
# Luma weights of ITU-R BT.601, the ones PIL's convert('L') uses.
_LUMA = (0.299, 0.587, 0.114)


# --- dtypes and devices ------------------------------------------------------------------------
def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device, bits: int = 8) -> torch.dtype:
    """The compute dtype: given, or (None, ``"auto"``) `msrnet.device.default_dtype` for input
    samples of ``bits`` bits: bf16 on CUDA (fp16 where bf16 is unsupported) and on a CPU with
    native bf16, else fp32; fp32 wherever that dtype keeps fewer bits than the input has."""
    if dtype is None or dtype == "auto":
        return default_dtype(device, bits)
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use auto or one of {', '.join(_DTYPES)}")
        dtype = _DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    return dtype


# --- automatic tile size -----------------------------------------------------------------------
def available_memory(device: torch.device | str) -> int:
    """Bytes that ``device`` can still allocate without evicting anything.

    CUDA: free memory (``torch.cuda.mem_get_info``) plus what PyTorch's caching allocator holds
    but does not use. CPU: ``MemAvailable`` from /proc/meminfo (else free pages from
    ``os.sysconf``), and no more than the cgroup limit leaves (containers), if there is one.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            available = CPU_MEMORY_BUDGET  # no way to ask: assume the default budget is free
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read())
        if limit != "max":
            available = min(available, max(int(limit) - current, 0))
    except (OSError, ValueError):
        pass
    return available


def _check_fits(nbytes: int, device: torch.device) -> None:
    """Refuse an output larger than the memory ``device`` has left, before allocating it.

    On Linux a huge allocation succeeds and the process is killed later, as pages are touched.
    """
    available = available_memory(device)
    if nbytes > available:
        raise MemoryError(
            f"the upscaled image needs {nbytes / 2**30:.2f} GiB, but only "
            f"{available / 2**30:.2f} GiB of {device.type} memory is available"
        )


def auto_tile_size(
    model: nn.Module,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    self_ensemble: bool = False,
    batch_size: int = 1,
    image_width: int = 0,
    levels: bool = False,
) -> int:
    """The largest square LR tile whose memory fits the budget of ``device``.

    The budget is 60% of the memory ``device`` can still allocate (`available_memory`: free
    CUDA memory, or available RAM on the CPU, there at most `CPU_MEMORY_BUDGET`); the rest is
    headroom for allocator blocks and kernel workspaces. Memory per pixel is measured by
    running the model on two small probes. With ``image_width`` (LR pixels), the float32 strip
    that stitching keeps on the same device, (batch, 3, scale*tile, scale*image_width) and a
    copy, is paid from the budget too. With ``levels``, the tile is that of
    ``upscale(..., levels=True)``: the probes run ``forward_pyramid``, and there is a strip for
    every level.
    """
    device = run_device(model, device)
    scales = _output_scales(model, levels)
    runner = _Runner(model, device, resolve_dtype(dtype, device), self_ensemble, levels)
    with torch.inference_mode():
        fixed, per_pixel = _memory_model(runner, getattr(model, "in_chans", 3))
    available = available_memory(device)
    if device.type != "cuda":
        available = min(available, CPU_MEMORY_BUDGET)
    budget = available * _MEMORY_SHARE
    # Solve per_pixel * b * t^2 + strip * t + fixed <= budget for the side t.
    area = sum(s * s for s in scales)  # HR pixels per LR pixel over every level's strip
    a = per_pixel * batch_size
    strip = 2 * 4 * batch_size * 3 * area * image_width
    side = (-strip + math.sqrt(strip * strip + 4 * a * max(budget - fixed, 0.0))) / (2 * a)
    return max(_MIN_AUTO_TILE, int(side) // _TILE_ALIGN * _TILE_ALIGN)


def whole_image_memory(
    model: nn.Module, height: int, width: int, *, device: torch.device | str | None = None,
    self_ensemble: bool = False,
) -> int:
    """Bytes of the live tensors of one untiled float32 forward of ``model`` on a
    ``(1, C, height, width)`` LR image: what `~msrnet.evaluate.evaluate` (which scores whole
    images, as the protocol does) checks against `available_memory` before each image.

    Measured as `auto_tile_size` measures a tile (two small probes, cached per model).
    """
    device = run_device(model, device)
    runner = _Runner(model, device, torch.float32, self_ensemble)
    with torch.inference_mode():
        fixed, per_pixel = _memory_model(runner, getattr(model, "in_chans", 3))
    return int(fixed + per_pixel * height * width)


def _run_auto(
    runner: _Runner, x: Tensor, scales: list[int], overlap: int,
    emit: Callable[[int, int, int, Tensor], None], out_device: torch.device, progress: bool,
) -> None:
    """`_run_tiled` with `auto_tile_size`, halving the tile after every CUDA out-of-memory."""
    tile = auto_tile_size(
        runner.model, device=runner.device, dtype=runner.dtype, self_ensemble=runner.ensemble,
        batch_size=x.shape[0], image_width=x.shape[-1] if out_device.type == runner.device.type else 0,
        levels=runner.levels,
    )
    tile = max(tile, 2 * overlap)
    while True:
        try:
            return _run_tiled(runner, x, scales, tile, overlap, emit, out_device, progress)
        except torch.cuda.OutOfMemoryError:
            if tile // 2 < max(_MIN_AUTO_TILE, 2 * overlap):
                raise
            tile //= 2
            torch.cuda.empty_cache()
            warnings.warn(f"out of memory; retrying with tile={tile}", RuntimeWarning, stacklevel=3)


# --- the public entry point --------------------------------------------------------------------
@overload
def upscale(
    model: nn.Module,
    image: ImageT,
    *,
    tile: int | Literal["auto"] | None = "auto",
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
    levels: Literal[False] = False,
    compile: bool = False,
) -> ImageT: ...
@overload
def upscale(
    model: nn.Module,
    image: ImageT,
    *,
    tile: int | Literal["auto"] | None = "auto",
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
    levels: Literal[True],
    compile: bool = False,
) -> list[ImageT]: ...
@overload
def upscale(
    model: nn.Module,
    image: ImageT,
    *,
    tile: int | Literal["auto"] | None = "auto",
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
    levels: bool,
    compile: bool = False,
) -> ImageT | list[ImageT]: ...
def upscale(
    model: nn.Module,
    image: ImageT,
    *,
    tile: int | Literal["auto"] | None = "auto",
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
    levels: bool = False,
    compile: bool = False,
) -> ImageT | list[ImageT]:
    """Upscale an image by ``model.scale``, returning the same kind of image.

    Args:
        model: a super-resolution network with an integer ``scale`` attribute, mapping
            (B, 3, H, W) in [0, 1] to (B, 3, scale*H, scale*W) (1-channel models take gray).
            It runs in eval mode on ``device`` (channels_last), and is handed back in the
            mode, on the device and in the memory format it came in.
        image: one of
            - a PIL image: RGB, RGBA, L, LA or 16-bit gray (I;16, I); EXIF orientation is
              applied first; ``result.info`` keeps the ICC profile, the DPI and the EXIF, its
              orientation reset to 1; other modes (P, CMYK, 1, ...) are converted to RGB, RGBA
              or L first; a 16-bit colour file opened by Pillow is 8-bit (with a
              `FidelityWarning`): pass `msrnet.data.deep.read_deep`'s image instead;
            - a `msrnet.data.deep.DeepImage` (16-bit RGB or RGBA, with its ``info``);
            - a numpy array (H, W) or (H, W, C), C in 1..4, uint8 or uint16;
            - a float tensor (C, H, W) or (B, C, H, W), C in 1..4, values in [0, 1] (finite).
            Of an animated image, the current frame is upscaled, with a warning.
            One channel is gray, two are gray + alpha, four are RGBA. Gray runs through an RGB
            model as R = G = B and comes back as gray (BT.601 luma); alpha is upscaled
            separately with bicubic interpolation.
        tile: LR tile side. ``'auto'`` (the default) picks the largest tile that fits the
            memory ``device`` has available (`auto_tile_size`) and halves it on CUDA
            out-of-memory; an int tiles with that side; ``None`` runs the whole image at once,
            however much memory that takes. Tiled or not, the result is assembled in its final
            dtype from float32 strips one row of tiles tall.
        tile_overlap: LR pixels shared by neighbouring tiles; the outer quarter at each cut is
            discarded, the middle half blended. Exact (tiled == untiled) when the network has no
            global pooling and its receptive radius is <= ``tile_overlap / 4``.
        self_ensemble: average the 8 flips/rotations (8x the compute).
        device: where the model runs (default: where its parameters are).
        dtype: compute dtype: ``'auto'`` (the default), ``'fp32'``, ``'bf16'``, ``'fp16'`` or a
            torch dtype. ``auto`` is `msrnet.device.default_dtype`: bf16 on CUDA (fp16 where bf16
            is unsupported) and on a CPU with native bf16 (AMX, AVX-512 BF16), fp32 elsewhere
            (an AVX2 CPU emulates bf16, slower than fp32); and fp32 for an input whose samples
            carry more bits than that dtype keeps: 16-bit images, float32 tensors (bf16 holds 8
            bits, fp16 11). A reduced dtype runs
            the network with its weights cast once (the model itself is left in float32).
            A tile whose reduced-precision output is not finite is redone in fp32 (with a
            warning); NaN/inf in float32 raise `FloatingPointError`.
        progress: show a progress bar over tiles (stderr).
        levels: return every level of the model's pyramid from the one pass, coarse first
            (x2, x4, x8 for msr_x8), each blended across tiles at its own scale. Needs a model
            with ``forward_pyramid`` and ``level_scales`` (msrnet's).
        compile: run a ``torch.compile`` (inductor) copy of the model in ``dtype``, made on the
            first call and reused by later calls with the same model, dtype and device (a
            folder or a video compiles once). Compiling takes seconds to a minute, once per
            process (inductor's on-disk cache shortens it in the next); it pays on long jobs
            (docs/inference.md, "Speed"). Outputs match the eager ones to rounding.

    Returns:
        The upscaled image: a PIL image of the same mode, a `DeepImage`, a numpy array of the
        same dtype and number of dimensions, or a tensor of the same dtype, device and number of dimensions,
        clamped to [0, 1]. Tensor results are inference tensors (no autograd). With
        ``levels=True``, a list of such images, one per pyramid level, coarse first.

    Warns:
        FidelityWarning: a property of a PIL image the result cannot keep: 16-bit samples Pillow
            read at 8 bits, a CMYK/LAB/HSV image converted to RGB, an ICC profile for another
            colour space, unreadable EXIF (docs/inference.md has the table).
        UserWarning: an animated image, of which the current frame is upscaled.

    Raises:
        TypeError: an image of the wrong type or dtype.
        ValueError: a bad shape, an empty image, a tensor with NaN/inf or values outside
            [0, 1] (such as 0..255), or bad arguments.
        FloatingPointError: the model gave NaN/inf in float32 for a finite input (broken
            weights, or an overflow).
        MemoryError: the result would not fit in the memory available.
    """
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"model must have a positive integer `scale` attribute, got {scale!r}")
    if tile is not None and tile != "auto" and (
        not isinstance(tile, int) or isinstance(tile, bool) or tile < 1
    ):
        raise ValueError(f"tile must be None, 'auto' or a positive int, got {tile!r}")
    if not isinstance(tile_overlap, int) or isinstance(tile_overlap, bool):
        raise TypeError(f"tile_overlap must be an int, got {tile_overlap!r}")
    if tile_overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")

    x, output = to_tensor(image)
    out_device = output.device
    if min(x.shape[-2:]) == 0:
        raise ValueError(f"the image is empty: {x.shape[-1]}x{x.shape[-2]} pixels")

    device = run_device(model, device)
    scales = _output_scales(model, levels)
    runner = _Runner(model, device, resolve_dtype(dtype, device, output.bits), self_ensemble, levels, compile)

    in_chans = getattr(model, "in_chans", 3)
    gray = x.shape[1] in (1, 2)
    color, alpha = (x[:, :1], x[:, 1:]) if gray else (x[:, :3], x[:, 3:])
    if color.shape[1] != in_chans:
        if not (gray and in_chans == 3):
            raise ValueError(f"a {in_chans}-channel model cannot upscale {color.shape[1]}-channel images")
        color = color.expand(-1, 3, -1, -1)

    with preserved(model):  # the caller's model comes back in its mode, device and layout
        # channels_last on every device: oneDNN's CPU convolutions run these layers faster in it
        # too (docs/inference.md).
        model.to(device).to(memory_format=torch.channels_last).eval()
        with torch.inference_mode():
            luma = torch.tensor(_LUMA, device=out_device).view(1, 3, 1, 1)
            h, w = color.shape[-2:]
            # Every output (one per level with levels=True) in its final dtype, allocated once;
            # tiles reach them through float32 strips one row of tiles tall.
            _check_fits(output.nbytes(scales), out_device)
            outs = output.allocate(scales)

            def emit(i: int, r0: int, r1: int, rows: Tensor) -> None:
                if gray and rows.shape[1] == 3:
                    rows = (rows * luma).sum(1, keepdim=True)
                store(outs[i][0], rows, r0, r1)

            if tile == "auto":
                _run_auto(runner, color, scales, tile_overlap, emit, out_device, progress)
            else:
                _run_tiled(runner, color, scales, tile or max(h, w, 2 * tile_overlap),
                           tile_overlap, emit, out_device, progress)
            if alpha.shape[1]:
                # Alpha is not an image the network was trained on: interpolate it.
                for (out, _), s in zip(outs, scales):
                    a = F.interpolate(alpha.to(out_device), scale_factor=s, mode="bicubic", align_corners=False)
                    store(out, a, 0, a.shape[2], c0=out.shape[1] - alpha.shape[1])
                    del a
            results = [finish() for _, finish in outs]
            return results if levels else results[0]
