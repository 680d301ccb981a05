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

import math
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from tqdm.auto import tqdm

from msrnet.models.weights import preserved
from msrnet.ops import self_ensemble as _self_ensemble
from msrnet.ops.ensemble import _inverse, _transform

__all__ = ["CPU_MEMORY_BUDGET", "auto_tile_size", "resolve_dtype", "upscale"]

ImageT = TypeVar("ImageT", Image.Image, np.ndarray, Tensor)

# Memory a tile may take when `tile='auto'` runs on the CPU, where free memory is shared with
# everything else on the machine and swapping is far worse than a smaller tile.
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
# PIL modes converted before upscaling (palette, bilevel, other colour spaces), and what to.
_PIL_CONVERT = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}
_PIL_16BIT = ("I;16", "I;16L", "I;16B", "I")


# --- dtypes and devices ------------------------------------------------------------------------
def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """The compute dtype: given, or bf16 on CUDA (fp16 where bf16 is unsupported), else fp32."""
    if dtype is None:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        dtype = _DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    return dtype


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _Runner:
    """Calls the model on one LR tile: autocast, channels_last, self-ensemble, fp32 fallback.

    Shapes: (B, 3, h, w) float32 on any device -> (B, 3, s*h, s*w) float32 on ``device``.
    """

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype, ensemble: bool):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.ensemble = ensemble
        self.channels_last = device.type == "cuda"

    def _forward(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        autocast = (
            torch.autocast(self.device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
        )
        with autocast:
            y = _self_ensemble(self.model, x) if self.ensemble else self.model(x)
        return y.float()

    def __call__(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32, non_blocking=True).contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
        )
        y = self._forward(x, self.dtype)
        if self.dtype != torch.float32 and not bool(torch.isfinite(y).all()):
            # A reduced dtype overflowed (fp16) or otherwise broke: redo this tile, and every
            # later one, in fp32 rather than return NaNs.
            warnings.warn(
                f"{self.dtype} inference produced NaN/inf; falling back to float32", RuntimeWarning,
                stacklevel=3,
            )
            self.dtype = torch.float32
            y = self._forward(x, torch.float32)
        return y


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


def _tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, h, w) of every LR tile, row by row."""
    for top in _tile_starts(height, tile, overlap):
        for left in _tile_starts(width, tile, overlap):
            yield top, left, min(tile, height), min(tile, width)


def _run_tiled(
    runner: _Runner, x: Tensor, scale: int, tile: int, overlap: int, out_device: torch.device,
    progress: bool,
) -> Tensor:
    """(B, 3, H, W) -> blended (B, 3, s*H, s*W) float32 on ``out_device``, one tile at a time."""
    b, _, h, w = x.shape
    if tile < 2 * overlap:
        raise ValueError(f"tile ({tile}) must be at least twice tile_overlap ({overlap})")
    boxes = list(_tiles(h, w, tile, overlap))
    if len(boxes) == 1:
        return runner(x).to(out_device)
    out: Tensor | None = None
    # The weights of a grid of tiles are outer products, so their sum is too: two 1D buffers
    # normalise the blend instead of a full-resolution weight image.
    row_sum = torch.zeros(scale * h)
    col_sum = torch.zeros(scale * w)
    for top in _tile_starts(h, tile, overlap):
        row_sum[scale * top : scale * (top + min(tile, h))] += _profile(top, min(tile, h), h, scale, overlap)
    for left in _tile_starts(w, tile, overlap):
        col_sum[scale * left : scale * (left + min(tile, w))] += _profile(left, min(tile, w), w, scale, overlap)
    for top, left, th, tw in tqdm(boxes, desc="tiles", unit="tile", leave=False, disable=not progress):
        y = runner(x[:, :, top : top + th, left : left + tw])
        if out is None:
            out = torch.zeros(b, y.shape[1], scale * h, scale * w, device=out_device)
        weight = torch.outer(_profile(top, th, h, scale, overlap), _profile(left, tw, w, scale, overlap))
        y = y * weight.to(y.device)
        out[:, :, scale * top : scale * (top + th), scale * left : scale * (left + tw)] += y.to(out_device)
    assert out is not None
    return out.div_(torch.outer(row_sum, col_sum).to(out_device))


# --- every level of the pyramid --------------------------------------------------------------
class _PackedPyramid(nn.Module):
    """``forward_pyramid`` as one tensor, so that `_Runner` (autocast, fp32 fallback) runs it.

    Shapes: (B, C, h, w) -> (B, C', sum_i s_i^2 * h * w): every level flattened, coarse first.
    """

    def __init__(self, model: nn.Module, ensemble: bool) -> None:
        super().__init__()
        self.model = model
        self.ensemble = ensemble
        self.in_chans = getattr(model, "in_chans", 3)

    def forward(self, x: Tensor) -> Tensor:
        if not self.ensemble:
            levels = self.model.forward_pyramid(x)
        else:
            levels = None
            for flip in (False, True):
                for rot in range(4):
                    ys = [_inverse(y, flip, rot) for y in self.model.forward_pyramid(_transform(x, flip, rot))]
                    levels = ys if levels is None else [a + b for a, b in zip(levels, ys)]
            levels = [y / 8 for y in levels]
        return torch.cat([y.flatten(2) for y in levels], dim=2)


def _unpack(packed: Tensor, scales: list[int], h: int, w: int) -> list[Tensor]:
    """Inverse of `_PackedPyramid`: (B, C, N) -> [(B, C, s*h, s*w) for s in scales]."""
    sizes = [s * s * h * w for s in scales]
    return [y.unflatten(2, (s * h, s * w)) for y, s in zip(packed.split(sizes, dim=2), scales)]


def _run_tiled_levels(
    runner: _Runner, x: Tensor, scales: list[int], tile: int, overlap: int, out_device: torch.device,
    progress: bool,
) -> list[Tensor]:
    """`_run_tiled` for a `_PackedPyramid` runner: (B, C, H, W) -> [(B, C', s*H, s*W) for s in scales].

    Every level is blended with the weights `_run_tiled` would give it at its own scale, so each
    level of a tiled pass equals that level of an untiled pass as `_run_tiled`'s output does.
    """
    b, _, h, w = x.shape
    if tile < 2 * overlap:
        raise ValueError(f"tile ({tile}) must be at least twice tile_overlap ({overlap})")
    outs: list[Tensor] | None = None
    for top, left, th, tw in tqdm(list(_tiles(h, w, tile, overlap)), desc="tiles", unit="tile", leave=False,
                                  disable=not progress):
        ys = _unpack(runner(x[:, :, top : top + th, left : left + tw]), scales, th, tw)
        if outs is None:
            outs = [torch.zeros(b, y.shape[1], s * h, s * w, device=out_device) for y, s in zip(ys, scales)]
        for y, out, s in zip(ys, outs, scales):
            weight = torch.outer(_profile(top, th, h, s, overlap), _profile(left, tw, w, s, overlap))
            out[:, :, s * top : s * (top + th), s * left : s * (left + tw)] += (y * weight.to(y.device)).to(out_device)
    assert outs is not None
    for out, s in zip(outs, scales):
        row_sum, col_sum = torch.zeros(s * h), torch.zeros(s * w)
        for top in _tile_starts(h, tile, overlap):
            row_sum[s * top : s * (top + min(tile, h))] += _profile(top, min(tile, h), h, s, overlap)
        for left in _tile_starts(w, tile, overlap):
            col_sum[s * left : s * (left + min(tile, w))] += _profile(left, min(tile, w), w, s, overlap)
        out.div_(torch.outer(row_sum, col_sum).to(out_device))
    return outs


# --- automatic tile size -----------------------------------------------------------------------
class _LiveBytes(TorchDispatchMode):
    """Tracks the bytes of tensors created inside the mode that are still alive, and their peak.

    Counting tensors rather than asking the allocator works on every device, and measures the
    model (with autocast, self-ensemble and channels_last) exactly as `upscale` will run it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors referring]
        self.current = 0
        self.peak = 0

    def _release(self, ptr: int) -> None:
        entry = self.live[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor):
                storage = t.untyped_storage()
                ptr = storage.data_ptr()
                if ptr not in self.live:
                    self.live[ptr] = [storage.nbytes(), 0]
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                self.live[ptr][1] += 1
                weakref.finalize(t, self._release, ptr)
        return out


_BYTES_PER_PIXEL: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], tuple[float, float]]] = (
    weakref.WeakKeyDictionary()
)


def _memory_model(runner: _Runner, in_chans: int) -> tuple[float, float]:
    """(fixed bytes, bytes per LR pixel) of one forward, fitted on two small probes; cached."""
    key = (runner.device, runner.dtype, runner.ensemble)
    cache = _BYTES_PER_PIXEL.setdefault(runner.model, {})
    if key not in cache:
        peaks = []
        for size in (16, 32):
            probe = torch.rand(1, in_chans, size, size)
            with _LiveBytes() as mode:
                runner(probe)
            peaks.append(mode.peak)
        per_pixel = max((peaks[1] - peaks[0]) / (32 * 32 - 16 * 16), 1.0)
        cache[key] = (max(peaks[0] - per_pixel * 16 * 16, 0.0), per_pixel)
    return cache[key]


def auto_tile_size(
    model: nn.Module,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    self_ensemble: bool = False,
    batch_size: int = 1,
) -> int:
    """The largest square LR tile whose activations fit the memory budget of ``device``.

    The budget is 60% of the free memory on CUDA (``torch.cuda.mem_get_info``, counting blocks
    the caching allocator holds but does not use) or of `CPU_MEMORY_BUDGET` on the CPU; the rest
    is headroom for allocator blocks and kernel workspaces. Memory per pixel is measured by
    running the model on two small probes.
    """
    device = torch.device(device) if device is not None else _model_device(model)
    runner = _Runner(model, device, resolve_dtype(dtype, device), self_ensemble)
    with torch.inference_mode():
        fixed, per_pixel = _memory_model(runner, getattr(model, "in_chans", 3))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    else:
        budget = CPU_MEMORY_BUDGET
    budget *= _MEMORY_SHARE
    side = math.sqrt(max(budget - fixed, 0.0) / (per_pixel * batch_size))
    return max(_MIN_AUTO_TILE, int(side) // _TILE_ALIGN * _TILE_ALIGN)


def _run_auto(
    runner: _Runner, x: Tensor, scale: int, overlap: int, out_device: torch.device, progress: bool
) -> Tensor:
    """`_run_tiled` with `auto_tile_size`, halving the tile after every CUDA out-of-memory."""
    tile = auto_tile_size(
        runner.model, device=runner.device, dtype=runner.dtype,
        self_ensemble=runner.ensemble, batch_size=x.shape[0],
    )
    tile = max(tile, 2 * overlap)
    while True:
        try:
            return _run_tiled(runner, x, scale, tile, overlap, out_device, progress)
        except torch.cuda.OutOfMemoryError:
            if tile // 2 < max(_MIN_AUTO_TILE, 2 * overlap):
                raise
            tile //= 2
            torch.cuda.empty_cache()
            warnings.warn(f"out of memory; retrying with tile={tile}", RuntimeWarning, stacklevel=3)


# --- image kinds <-> (B, C, H, W) float tensors -----------------------------------------------
def _from_pil(img: Image.Image) -> tuple[Tensor, Callable[[Tensor], Image.Image]]:
    """PIL image -> (1, C, H, W) float32 in [0, 1] and the inverse for the upscaled result."""
    icc = img.info.get("icc_profile")
    img = ImageOps.exif_transpose(img)
    if img.mode in _PIL_CONVERT:
        img = img.convert(_PIL_CONVERT[img.mode])
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode not in ("L", "LA", "RGB", "RGBA", *_PIL_16BIT):
        img = img.convert("RGB")
    mode = img.mode
    arr = np.asarray(img)
    if mode == "I":
        # 32-bit integer mode is how older Pillows open 16-bit PNGs; its range is 16-bit.
        arr = arr.clip(0, 65535).astype(np.uint16)
    elif mode in _PIL_16BIT:
        arr = arr.astype(np.uint16)
    x, to_array = _from_numpy(arr)

    def restore(y: Tensor) -> Image.Image:
        out_arr = to_array(y)
        if mode in _PIL_16BIT:
            out = Image.fromarray(out_arr.astype(np.int32) if mode == "I" else out_arr)
        else:
            out = Image.fromarray(out_arr)
        if icc:
            out.info["icc_profile"] = icc
        return out

    return x, restore


def _from_numpy(arr: np.ndarray) -> tuple[Tensor, Callable[[Tensor], np.ndarray]]:
    """(H, W[, C]) uint8/uint16 -> (1, C, H, W) float32 in [0, 1] and the inverse."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"numpy images must be uint8 or uint16, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"numpy images must be (H, W) or (H, W, C) with C in 1..4, got {arr.shape}")
    dtype, ndim = arr.dtype, arr.ndim
    peak = float(np.iinfo(dtype).max)
    hwc = arr if ndim == 3 else arr[:, :, None]
    x = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)).astype(np.float32) / peak)

    def restore(y: Tensor) -> np.ndarray:
        # Round half up on the integer scale, as MATLAB's and the benchmarks' uint8() do.
        levels = torch.floor(y[0].clamp(0.0, 1.0) * peak + 0.5).permute(1, 2, 0).cpu().numpy()
        out = levels.astype(dtype)
        return out if ndim == 3 else out[:, :, 0]

    return x[None], restore


def _from_tensor(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """(C, H, W) or (B, C, H, W) float in [0, 1] -> (B, C, H, W) float32 and the inverse."""
    if not x.is_floating_point():
        raise TypeError(f"tensor images must be floating point in [0, 1], got {x.dtype}")
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 2, 3, 4):
        raise ValueError(
            f"tensor images must be (C, H, W) or (B, C, H, W) with C in 1..4, got {tuple(x.shape)}"
        )
    dtype, ndim = x.dtype, x.ndim

    def restore(y: Tensor) -> Tensor:
        y = y.clamp_(0.0, 1.0).to(dtype)
        return y if ndim == 4 else y[0]

    return (x if ndim == 4 else x[None]).float(), restore


# --- the public entry point --------------------------------------------------------------------
def upscale(
    model: nn.Module,
    image: ImageT,
    *,
    tile: int | Literal["auto"] | None = None,
    tile_overlap: int = 32,
    self_ensemble: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = False,
    levels: bool = False,
) -> ImageT | list[ImageT]:
    """Upscale an image by ``model.scale``, returning the same kind of image.

    Args:
        model: a super-resolution network with an integer ``scale`` attribute, mapping
            (B, 3, H, W) in [0, 1] to (B, 3, scale*H, scale*W) (1-channel models take gray).
            It runs in eval mode on ``device`` (channels_last on CUDA), and is handed back in the
            mode, on the device and in the memory format it came in.
        image: one of
            - a PIL image: RGB, RGBA, L, LA or 16-bit gray (I;16, I); EXIF orientation is
              applied first and the ICC profile is kept (``result.info['icc_profile']``); other
              modes (P, CMYK, 1, ...) are converted to RGB, RGBA or L first;
            - a numpy array (H, W) or (H, W, C), C in 1..4, uint8 or uint16;
            - a float tensor (C, H, W) or (B, C, H, W), C in 1..4, values in [0, 1].
            One channel is gray, two are gray + alpha, four are RGBA. Gray runs through an RGB
            model as R = G = B and comes back as gray (BT.601 luma); alpha is upscaled
            separately with bicubic interpolation.
        tile: LR tile side. ``None`` runs the whole image at once; an int tiles it; ``'auto'``
            picks the largest tile that fits the memory of ``device`` (`auto_tile_size`) and
            halves it on CUDA out-of-memory.
        tile_overlap: LR pixels shared by neighbouring tiles; the outer quarter at each cut is
            discarded, the middle half blended. Exact (tiled == untiled) when the network has no
            global pooling and its receptive radius is <= ``tile_overlap / 4``.
        self_ensemble: average the 8 flips/rotations (8x the compute).
        device: where the model runs (default: where its parameters are).
        dtype: compute dtype under autocast: ``'fp32'``, ``'bf16'``, ``'fp16'`` or a torch
            dtype; default bf16 on CUDA (fp16 where bf16 is unsupported) and fp32 elsewhere.
            A tile whose reduced-precision output is not finite is redone in fp32.
        progress: show a progress bar over tiles (stderr).
        levels: return every level of the model's pyramid from the one pass, coarse first
            (x2, x4, x8 for msr_x8), each blended across tiles at its own scale. Needs a model
            with ``forward_pyramid`` and ``level_scales`` (msrnet's).

    Returns:
        The upscaled image: a PIL image of the same mode, a numpy array of the same dtype and
        number of dimensions, or a tensor of the same dtype, device and number of dimensions,
        clamped to [0, 1]. Tensor results are inference tensors (no autograd). With
        ``levels=True``, a list of such images, one per pyramid level, coarse first.
    """
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"model must have a positive integer `scale` attribute, got {scale!r}")
    if tile is not None and tile != "auto" and (not isinstance(tile, int) or tile < 1):
        raise ValueError(f"tile must be None, 'auto' or a positive int, got {tile!r}")
    if tile_overlap < 0:
        raise ValueError(f"tile_overlap must be >= 0, got {tile_overlap}")

    if isinstance(image, Image.Image):
        x, restore = _from_pil(image)
        out_device = torch.device("cpu")
    elif isinstance(image, np.ndarray):
        x, restore = _from_numpy(image)
        out_device = torch.device("cpu")
    elif isinstance(image, Tensor):
        x, restore = _from_tensor(image)
        out_device = image.device
    else:
        raise TypeError(f"image must be a PIL image, numpy array or tensor, got {type(image).__name__}")

    device = torch.device(device) if device is not None else _model_device(model)
    if levels:
        scales = list(getattr(model, "level_scales", ()))
        if not scales or not hasattr(model, "forward_pyramid"):
            raise ValueError("levels=True needs a pyramid model with forward_pyramid and level_scales (msrnet's)")
        # The wrapper runs the self-ensemble itself, on every level.
        runner = _Runner(_PackedPyramid(model, self_ensemble), device, resolve_dtype(dtype, device), False)
    else:
        scales = [scale]
        runner = _Runner(model, device, resolve_dtype(dtype, device), self_ensemble)

    in_chans = getattr(model, "in_chans", 3)
    gray = x.shape[1] in (1, 2)
    color, alpha = (x[:, :1], x[:, 1:]) if gray else (x[:, :3], x[:, 3:])
    if color.shape[1] != in_chans:
        if not (gray and in_chans == 3):
            raise ValueError(f"a {in_chans}-channel model cannot upscale {color.shape[1]}-channel images")
        color = color.expand(-1, 3, -1, -1)

    with preserved(model):  # the caller's model comes back in its mode, device and layout
        model.to(device).eval()
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            h, w = color.shape[-2:]
            if levels:
                if tile == "auto":
                    tile = auto_tile_size(runner.model, device=device, dtype=runner.dtype, batch_size=color.shape[0])
                ys = _run_tiled_levels(runner, color, scales, max(tile or max(h, w), 2 * tile_overlap),
                                       tile_overlap, out_device, progress)
            elif tile == "auto":
                ys = [_run_auto(runner, color, scale, tile_overlap, out_device, progress)]
            else:
                ys = [_run_tiled(runner, color, scale, tile or max(h, w, 2 * tile_overlap),
                                 tile_overlap, out_device, progress)]
            results = []
            for y, s in zip(ys, scales):
                if gray and y.shape[1] == 3:
                    y = (y * torch.tensor(_LUMA, device=y.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
                if alpha.shape[1]:
                    # Alpha is not an image the network was trained on: interpolate it.
                    a = F.interpolate(alpha.to(out_device), scale_factor=s, mode="bicubic",
                                      align_corners=False)
                    y = torch.cat([y, a.clamp_(0.0, 1.0)], dim=1)
                results.append(restore(y))
            return results if levels else results[0]
