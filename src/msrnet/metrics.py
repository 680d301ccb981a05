"""PSNR and SSIM computed the way the super-resolution tables compute them.

The protocol: scores are taken on Y of YCbCr (ITU-R BT.601, studio range 16-235)
on the 0-255 scale, after shaving ``crop_border`` pixels from every border;
grayscale images count as R = G = B. SSIM is Wang et al.'s ``ssim_index``: an
11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, over the
valid region only, averaged over the map.

Every function takes either ``uint8`` numpy images ``(H, W)`` / ``(H, W, C)``
(returning Python floats) or float tensors in [0, 1] of shape ``(C, H, W)``
(returning a 0-d tensor) or ``(B, C, H, W)`` (returning one value per image, shape
``(B,)``) on any device. On quantized float input (multiples of 1/255) the two
paths agree. Arithmetic is float64 so that the 4th decimal of a dB is meaningful.
"""

from __future__ import annotations

import functools
from typing import TypeVar, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["psnr", "rgb_to_y", "ssim", "ssim_per_plane"]

ImageT = TypeVar("ImageT", np.ndarray, Tensor)

# BT.601 luma for R, G, B in [0, 1], giving Y on the 0-255 scale in [16, 235].
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03


def _compute_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; everything else does.
    return torch.float32 if device.type == "mps" else torch.float64


def _as_chw(img: np.ndarray | Tensor) -> Tensor:
    """Either input kind as a float ``(..., C, H, W)`` tensor on the 0-255 scale."""
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"numpy images must be uint8, got {img.dtype}")
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3:
            raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {img.shape}")
        return torch.from_numpy(img.transpose(2, 0, 1).astype(np.float64))
    if isinstance(img, Tensor):
        if not img.is_floating_point():
            raise TypeError(f"tensors must be float in [0, 1], got {img.dtype}")
        if img.dim() not in (3, 4):
            raise ValueError(
                f"expected a (C, H, W) or (B, C, H, W) tensor, got shape {tuple(img.shape)}"
            )
        return img.detach().to(_compute_dtype(img.device)) * 255.0
    raise TypeError(f"expected a numpy array or a tensor, got {type(img).__name__}")


def _y_from_chw(x: Tensor) -> Tensor:
    """``(..., C, H, W)`` on the 0-255 scale (C = 1 or 3) to ``(..., 1, H, W)`` Y."""
    channels = x.shape[-3]
    if channels == 1:
        # R = G = B = g: the luma weights sum to 219.
        return _Y_OFFSET + x * (sum(_Y_WEIGHTS) / 255.0)
    if channels == 3:
        w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1) / 255.0
        return _Y_OFFSET + (x * w).sum(dim=-3, keepdim=True)
    raise ValueError(f"expected 1 or 3 channels, got {channels}")


@overload
def rgb_to_y(img: np.ndarray) -> np.ndarray: ...
@overload
def rgb_to_y(img: Tensor) -> Tensor: ...
def rgb_to_y(img: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """BT.601 luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (R, G, B in [0, 1]).

    Args:
        img: ``uint8`` array ``(H, W)`` / ``(H, W, C)``, or a float tensor in [0, 1]
            ``(C, H, W)`` / ``(B, C, H, W)``; C is 3, or 1 for grayscale (R = G = B).

    Returns:
        Y on the 0-255 scale, unrounded, in [16, 235]: a float64 ``(H, W)`` array
        for numpy input, a ``(H, W)`` / ``(B, H, W)`` tensor for tensor input.
    """
    y = _y_from_chw(_as_chw(img)).squeeze(-3)
    return y.numpy() if isinstance(img, np.ndarray) else y


def _prepare(sr: ImageT, hr: ImageT, crop_border: int, y_channel: bool) -> tuple[Tensor, bool]:
    """Both images as ``(B, C, H, W)`` float tensors on the 0-255 scale, shaved.

    Also returns whether the input was a single (unbatched) image.
    """
    if type(sr) is not type(hr):
        raise TypeError("sr and hr must both be numpy arrays or both be tensors")
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: sr {tuple(sr.shape)} vs hr {tuple(hr.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    a, b = _as_chw(sr), _as_chw(hr)
    single = a.dim() == 3
    if single:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    b = b.to(a.device)
    if y_channel:
        a, b = _y_from_chw(a), _y_from_chw(b)
    if crop_border:
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    if a.shape[-1] == 0 or a.shape[-2] == 0:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {tuple(sr.shape)} image")
    return torch.stack((a, b)), single


def _finish(values: Tensor, single: bool, numpy_input: bool) -> float | Tensor:
    if numpy_input:
        return float(values[0])
    return values[0] if single else values


@overload
def psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = True) -> float: ...
@overload
def psnr(sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool = True) -> Tensor: ...
def psnr(sr: ImageT, hr: ImageT, crop_border: int, y_channel: bool = True) -> float | Tensor:
    """Peak signal-to-noise ratio in dB, with peak 255.

    Args:
        sr, hr: ``uint8`` arrays ``(H, W[, C])``, or float tensors in [0, 1] of shape
            ``(C, H, W)`` or ``(B, C, H, W)``, the same shape and kind.
        crop_border: pixels shaved from each border first (the scale, by convention).
        y_channel: score Y (BT.601, 16-235); else all channels on the 0-255 scale.

    Returns:
        A float for numpy input; for tensors a 0-d tensor, or ``(B,)`` for a batch.
        Identical images give ``inf``.
    """
    pair, single = _prepare(sr, hr, crop_border, y_channel)
    mse = (pair[0] - pair[1]).pow(2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(255.0**2 / mse)
    return _finish(values, single, isinstance(sr, np.ndarray))


@functools.lru_cache(maxsize=16)
def _gaussian_1d(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The 1-D factor of MATLAB's ``fspecial('gaussian', 11, 1.5)``, normalized: ``(11,)``.

    The 2-D window is the outer product of this with itself, so filtering with it
    along H and then W is the same filter at a tenth of the cost.
    """
    # Built outside inference mode: a cached inference tensor could not be saved for backward
    # by a later call that needs gradients (the DSSIM loss).
    with torch.inference_mode(False):
        half = (_SSIM_WINDOW - 1) / 2
        coords = torch.arange(_SSIM_WINDOW, dtype=torch.float64) - half
        g = torch.exp(-(coords**2) / (2 * _SSIM_SIGMA**2))
        return (g / g.sum()).to(device=device, dtype=dtype)


def ssim_per_plane(x: Tensor, y: Tensor, data_range: float = 255.0) -> Tensor:
    """Wang's SSIM of each ``(H, W)`` plane of ``(N, 1, H, W)`` inputs: shape ``(N,)``.

    The plain formula (11x11 Gaussian window, sigma 1.5, valid region, mean of the map), no
    colour conversion or shaving, differentiable: the DSSIM training loss uses it with
    ``data_range=1``, :func:`ssim` with 255.
    """
    c1, c2 = (_SSIM_K1 * data_range) ** 2, (_SSIM_K2 * data_range) ** 2
    g = _gaussian_1d(x.device, x.dtype)
    # The five local statistics (N, 5, H, W) are filtered as the planes (N*5, 1, H, W) of one
    # batch ('valid' region), then split back into five (N, H', W') maps.
    moments = torch.cat((x, y, x * x, y * y, x * y), dim=1)
    stats = F.conv2d(F.conv2d(moments.flatten(0, 1).unsqueeze(1), g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))
    mu_x, mu_y, xx, yy, xy = stats.unflatten(0, (-1, 5)).squeeze(2).unbind(1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(dim=1)


@overload
def ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = True) -> float: ...
@overload
def ssim(sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool = True) -> Tensor: ...
def ssim(sr: ImageT, hr: ImageT, crop_border: int, y_channel: bool = True) -> float | Tensor:
    """Structural similarity (Wang et al. 2004, the reference ``ssim_index.m``).

    Args:
        sr, hr: as for :func:`psnr`.
        crop_border: pixels shaved from each border first.
        y_channel: score Y; else the mean of the per-channel SSIMs.

    Returns:
        A float for numpy input; for tensors a 0-d tensor, or ``(B,)`` for a batch.
    """
    pair, single = _prepare(sr, hr, crop_border, y_channel)
    if min(pair.shape[-2:]) < _SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, "
            f"got {tuple(pair.shape[-2:])}"
        )
    # (2, B, C, H, W) -> the B*C planes (B*C, 1, H, W) of each side; their SSIMs (B*C,) -> (B, C).
    sr_planes, hr_planes = pair.flatten(1, 2).unsqueeze(2)
    per_plane = ssim_per_plane(sr_planes, hr_planes)
    values = per_plane.unflatten(0, (pair.shape[1], -1)).mean(dim=1)
    return _finish(values, single, isinstance(sr, np.ndarray))
