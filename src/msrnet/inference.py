"""Upscale images of any size and kind: tiling, self-ensemble, dtypes and devices.

`upscale` takes a PIL image, a numpy array or a float tensor and returns the same kind, scaled by
``model.scale``. Large images are cut into overlapping LR tiles that run one at a time, so peak
accelerator memory depends on the tile, not on the image. Tiles are blended so that there are no
seams: along every interior tile edge, each tile gives zero weight to the outer quarter of the
overlap (whose pixels lack context), ramps up with a raised cosine across the middle half, and
weighs 1 beyond it; at the image border a tile weighs 1, so borders see exactly the zero padding
they would see untiled. For a network whose receptive radius is at most ``tile_overlap / 4`` LR
pixels and which has no global pooling, tiled output therefore equals untiled output up to float
rounding. Networks with channel attention (msrnet's SE blocks) pool over the tile, so tiled and
untiled differ slightly there; docs/inference.md gives the measured PSNR.
"""
from __future__ import annotations

import copy
import math
import os
import warnings
import weakref
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from msrnet._image_kinds import store, to_tensor
from msrnet.data.deep import DeepImage
from msrnet.device import default_dtype
from msrnet.models import PyramidForward, TensorBytes, preserved
from msrnet.models.weights import count_non_finite
from msrnet.ops import self_ensemble as _self_ensemble

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


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# Compiled copies of models, one per (model, dtype, levels, device), kept while the model lives:
# a folder or a video compiles once, not once per image. The key's last part is the weights'
# identity and version, so a model trained or loaded since gets a fresh copy.
_COMPILED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], nn.Module]] = weakref.WeakKeyDictionary()


def _compiled_copy(model: nn.Module, net: nn.Module, dtype: torch.dtype, device: torch.device, levels: bool) -> nn.Module:
    """``torch.compile`` of a copy of ``net`` (``model`` or its pyramid wrapper) cast to ``dtype``.

    A copy in ``dtype`` rather than autocast (which would cast every weight on every call) or
    ``functional_call`` over cast weights; the model itself stays as it is. Shapes are
    specialised on first sight and made dynamic if a second tile shape comes (torch.compile's
    default), so a folder of one image size compiles once.
    """
    # Parameter objects and their version counters: in-place updates (an optimizer step,
    # load_state_dict) bump the counter; the layout changes `upscale` makes and undoes do not.
    version = tuple((id(p), p._version) for p in model.parameters())
    key = (dtype, levels, device, version)
    hit = _COMPILED.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    copied = copy.deepcopy(net).to(device=device, dtype=dtype).eval()
    compiled = cast(nn.Module, torch.compile(copied))
    _COMPILED[model] = (key, compiled)
    return compiled


class _Runner:
    """Calls the model on one LR tile: reduced dtype, channels_last, self-ensemble, fp32 fallback.

    Shapes: (B, 3, h, w) float32 on any device -> [(B, 3, s*h, s*w) float32 on ``device``], one
    tensor per output level: ``model(x)`` alone, or with ``levels`` every level of
    ``model.forward_pyramid(x)``, coarse first (`_output_scales` gives their scales).
    """

    def __init__(
        self, model: nn.Module, device: torch.device, dtype: torch.dtype, ensemble: bool,
        levels: bool = False, compile: bool = False,
    ):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.ensemble = ensemble
        self.levels = levels
        self.compile = compile
        # The module called on each tile, whose forward gives every output level.
        self.net: nn.Module = PyramidForward(model) if levels else model
        self._reduced: tuple[torch.dtype, dict[str, Tensor]] | None = None

    def _reduced_weights(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """The network's floating-point parameters and buffers in ``dtype``, cast once.

        Autocast would cast every weight and bias again on every call: for msr_x4 that is 173
        of the 371 ops of a frame (`benchmarks/inference_profile.py`), and on a GPU each is a
        kernel launch. Casting once keeps the model itself in float32 for the fallback.
        """
        if self._reduced is None or self._reduced[0] != dtype:
            tensors = {**dict(self.net.named_parameters()), **dict(self.net.named_buffers())}
            cast = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
            self._reduced = (dtype, cast)
        return self._reduced[1]

    def _forward(self, x: Tensor, dtype: torch.dtype) -> list[Tensor]:
        net: Callable[[Tensor], Any]
        if self.compile and dtype == self.dtype:
            # The fp32 fallback of a broken reduced dtype runs eager: it is the rare path.
            compiled = _compiled_copy(self.model, self.net, dtype, self.device, self.levels)
            net = lambda t: compiled(t.to(dtype))  # noqa: E731
        elif dtype == torch.float32:
            net = self.net
        else:
            weights = self._reduced_weights(dtype)
            net = lambda t: torch.func.functional_call(self.net, weights, (t.to(dtype),))  # noqa: E731

        out = _self_ensemble(net, x) if self.ensemble else net(x)
        return [y.float() for y in _outputs(out)]

    def __call__(self, x: Tensor) -> list[Tensor]:
        x = x.to(self.device, torch.float32, non_blocking=True).contiguous(memory_format=torch.channels_last)
        ys = self._forward(x, self.dtype)
        if self.dtype != torch.float32 and not all(_all_finite(y) for y in ys):
            # A reduced dtype overflowed (fp16) or otherwise broke: redo this tile, and every
            # later one, in fp32 rather than return NaNs.
            warnings.warn(
                f"{self.dtype} inference produced NaN/inf; falling back to float32", RuntimeWarning,
                stacklevel=3,
            )
            self.dtype = torch.float32
            ys = self._forward(x, torch.float32)
        if not all(_all_finite(y) for y in ys):
            # The input was checked finite, so float32 NaN/inf come from the model itself.
            broken = count_non_finite(self.model.parameters())
            cause = (
                f"{broken} of its parameters are NaN/inf: the weights are broken" if broken
                else "its parameters are finite, so a layer overflowed"
            )
            raise FloatingPointError(f"the model produced NaN/inf values in float32; {cause}")
        # The caller blends in place, which must never touch the input.
        return [
            y.clone() if y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() else y
            for y in ys
        ]


def _outputs(out: Tensor | list[Tensor]) -> list[Tensor]:
    """A model's output as a list: [(B, C, H', W')] for one tensor, the list itself for many."""
    return [out] if isinstance(out, Tensor) else list(out)


def _all_finite(y: Tensor) -> bool:
    """Whether ``y`` has no NaN/inf. NaN and inf carry into a sum, which needs no y-sized mask;
    only a sum that overflowed on huge finite values needs the exact check."""
    return bool(torch.isfinite(y.sum())) or bool(torch.isfinite(y).all())


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


# --- every level of the pyramid --------------------------------------------------------------
def _output_scales(model: nn.Module, levels: bool) -> list[int]:
    """The scale of each output level of `_Runner`: ``[model.scale]``, or with ``levels`` the
    pyramid's ``model.level_scales``, coarse first."""
    if not levels:
        return [getattr(model, "scale", 1)]
    scales = list(getattr(model, "level_scales", ()))
    if not scales or not hasattr(model, "forward_pyramid"):
        raise ValueError("levels=True needs a pyramid model with forward_pyramid and level_scales (msrnet's)")
    return scales


# --- automatic tile size -----------------------------------------------------------------------
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
    device = torch.device(device) if device is not None else _model_device(model)
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
    device = torch.device(device) if device is not None else _model_device(model)
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

    device = torch.device(device) if device is not None else _model_device(model)
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
