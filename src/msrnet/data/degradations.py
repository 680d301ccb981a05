"""Degradations: what turns a clean HR patch into the LR image a model meets outside benchmarks.

Three layers, as torchvision keeps functional ops beside the objects that draw their parameters:

- **Functional ops** on batches ``(B, C, H, W)`` float in [0, 1], each sample with its own
  parameters (tensors of shape ``(B,)``): blur kernels (`gaussian_kernel`,
  `generalized_gaussian_kernel`, `plateau_kernel`, `sinc_kernel`) applied by `blur`,
  `add_gaussian_noise`, `add_poisson_noise`, `jpeg_compress` and `resize`.
- **Configs**: frozen dataclasses (`Blur`, `Resize`, `Noise`, `JPEG`, `Stage`, `Final`,
  `DegradationConfig`) that say which ops run, how likely each is and the ranges of their
  parameters. `PRESETS` holds ``bicubic`` (the benchmark protocol's clean LR, the default),
  ``web`` (mild noise and JPEG after the bicubic down-scaling, as images on the web) and
  ``real`` (Real-ESRGAN's second-order pipeline). `load_degradation` reads a preset name or a
  JSON file of the same fields; a config is held to `MAX_STAGES`, `MAX_GROWTH` and
  `MAX_DEGRADATION_BYTES` (`check_degradation_memory`) before anything is allocated. They live
  in the torch-free ``msrnet.data._degradation_config`` and are exported here.
- **`degrade`**: the seeded pipeline the trainer runs on every batch, on the training device.

Random parameters are drawn from one ``torch.Generator`` on the CPU (the same stream on any
device, so a resumed run repeats exactly); noise is drawn there too and moved to the batch's
device, which for LR patches is a few hundred kilobytes a step.

`BENCHMARK_CONDITIONS` are the fixed degradations of ``msrnet benchmark --condition``: applied
to the protocol's bicubic LR image with a seed per image, so the same seed gives the same LR
bytes on any machine and in any order.
"""
from __future__ import annotations

import io
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor

from msrnet._catalogue import BENCHMARK_CONDITION_NAMES, MAX_SEED
from msrnet.ops.imresize import imresize
from msrnet.ops.quantize import quantize

# The configs, their limits and `load_degradation` live in a torch-free module; they are part
# of this module's API.
from ._degradation_config import (
    JPEG,
    MAX_DEGRADATION_BYTES,
    MAX_GROWTH,
    MAX_STAGES,
    PRESETS,
    RESIZE_MODES,
    Blur,
    DegradationConfig,
    Final,
    Noise,
    Resize,
    Stage,
    check_degradation_memory,
    degradation_growth,
    load_degradation,
)

__all__ = [
    "BENCHMARK_CONDITIONS",
    "PRESETS",
    "RESIZE_MODES",
    "Blur",
    "Condition",
    "DegradationConfig",
    "Final",
    "JPEG",
    "MAX_DEGRADATION_BYTES",
    "MAX_GROWTH",
    "MAX_SEED",
    "MAX_STAGES",
    "Noise",
    "Resize",
    "Stage",
    "add_gaussian_noise",
    "add_poisson_noise",
    "bicubic_downscale",
    "blur",
    "check_degradation_memory",
    "degradation_growth",
    "degrade",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "jpeg_compress",
    "load_degradation",
    "plateau_kernel",
    "resize",
    "sinc_kernel",
]

# ----------------------------------------------------------------------------------------------
# The protocol's down-scaling.


def bicubic_downscale(hr: Tensor, size: int | tuple[int, int]) -> Tensor:
    """MATLAB's uint8 bicubic resize of ``(B, C, H, W)`` uint8 images to ``size``.

    Each 1-D pass is one float64 matmul (`~msrnet.ops.imresize`'s float path) followed by
    MATLAB's saturate-and-round, height first as MATLAB orders equal scales. Results equal the
    tap-exact uint8 path of ``imresize`` except at rounding ties (the summation order differs
    in the last bit): a handful of pixels per million, for a few kernels instead of a hundred,
    which matters because the training step makes a batch of these every step.
    """
    height, width = (size, size) if isinstance(size, int) else size
    out = hr.to(torch.float64)
    for axis_size in ((height, out.shape[-1]), (height, width)):
        if tuple(out.shape[-2:]) != axis_size:
            out = quantize(imresize(out, size=axis_size), scaled=True, inplace=True)
    return out.to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# Blur kernels: (B, k, k) float32, each summing to 1.


def _taps(size: int) -> tuple[Tensor, Tensor]:
    """``(k, k)`` row and column offsets of each tap from the centre of an odd ``k x k`` kernel."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    r = torch.arange(size, dtype=torch.float32) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    return y, x


def _squared_distance(size: int, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor | float) -> Tensor:
    """``(B, k, k)`` squared Mahalanobis distance ``p^T S^-1 p`` of each tap from the centre,
    for the covariance ``S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``."""
    y, x = _taps(size)
    theta = torch.as_tensor(theta, dtype=torch.float32).expand_as(sigma_x)
    cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    u = cos * x + sin * y  # coordinates along the kernel's principal axes
    v = -sin * x + cos * y
    return (u / sigma_x.view(-1, 1, 1)) ** 2 + (v / sigma_y.view(-1, 1, 1)) ** 2


def _normalized(kernel: Tensor) -> Tensor:
    return kernel / kernel.sum(dim=(-2, -1), keepdim=True)


def gaussian_kernel(
    size: int, sigma_x: Tensor, sigma_y: Tensor | None = None, theta: Tensor | float = 0.0
) -> Tensor:
    """Gaussian kernels, isotropic (``sigma_y`` None) or anisotropic and rotated by ``theta``.

    Args:
        size: odd kernel side k.
        sigma_x, sigma_y: ``(B,)`` standard deviations in pixels along the principal axes.
        theta: ``(B,)`` rotation in radians.

    Returns:
        ``(B, k, k)`` kernels, each summing to 1.
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    return _normalized(torch.exp(-0.5 * _squared_distance(size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(
    size: int, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor | float, beta: Tensor
) -> Tensor:
    """``exp(-0.5 d^beta)`` kernels (Real-ESRGAN's generalized Gaussian): ``beta`` < 1 has
    heavier tails than a Gaussian, ``beta`` > 1 a flatter top. Shapes as `gaussian_kernel`."""
    d2 = _squared_distance(size, sigma_x, sigma_y, theta)
    return _normalized(torch.exp(-0.5 * d2.pow(beta.view(-1, 1, 1))))


def plateau_kernel(
    size: int, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor | float, beta: Tensor
) -> Tensor:
    """``1 / (1 + d^beta)`` kernels (Real-ESRGAN's plateau): flat near the centre, long tails.
    Shapes as `gaussian_kernel`."""
    d2 = _squared_distance(size, sigma_x, sigma_y, theta)
    return _normalized(1.0 / (1.0 + d2.pow(beta.view(-1, 1, 1))))


def sinc_kernel(size: int, cutoff: Tensor) -> Tensor:
    """Circular low-pass (2-D sinc) kernels: the ringing and overshoot of sharpening and of
    band-limited resizing.

    Args:
        size: odd kernel side k.
        cutoff: ``(B,)`` cut-off frequency ``omega_c`` in radians per pixel, in (0, pi].

    Returns:
        ``(B, k, k)`` kernels, each summing to 1.
    """
    y, x = _taps(size)
    radius = torch.hypot(x, y)
    wc = cutoff.to(torch.float32).view(-1, 1, 1)
    safe = torch.where(radius > 0, radius, torch.ones_like(radius))
    kernel = wc * torch.special.bessel_j1(wc * safe) / (2 * math.pi * safe)
    kernel = torch.where(radius > 0, kernel, wc**2 / (4 * math.pi))  # the limit at r = 0
    return _normalized(kernel)


def blur(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each sample of ``x`` ``(B, C, H, W)`` with its own kernel ``(B, k, k)``.

    Borders are reflected (replicated where the image is smaller than the kernel's radius),
    so the image keeps its size and its mean near the edges.
    """
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    pad = k // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    # Every channel of every sample is a group of one depthwise convolution.
    padded = F.pad(rearrange(x, "b c h w -> 1 (b c) h w"), (pad, pad, pad, pad), mode=mode)
    weight = repeat(kernels.to(x), "b kh kw -> (b c) 1 kh kw", c=c)
    return rearrange(F.conv2d(padded, weight, groups=b * c), "1 (b c) h w -> b c h w", b=b)


# ----------------------------------------------------------------------------------------------
# Noise, JPEG and resizing.


def add_gaussian_noise(
    x: Tensor, sigma: Tensor, gray: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """``x + sigma * N(0, 1)``, clamped to [0, 1].

    Args:
        x: ``(B, C, H, W)`` float in [0, 1].
        sigma: ``(B,)`` standard deviation on the [0, 1] scale (sigma 10 on 0-255 is 10/255).
        gray: ``(B,)`` bool: one noise plane shared by the channels (luminance noise) instead
            of independent noise per channel.
        generator: the noise is drawn from it, on its device, then moved to ``x``'s.
    """
    device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    if gray is not None:
        noise = torch.where(gray.to(x.device, torch.bool).view(-1, 1, 1, 1), noise[:, :1].expand_as(noise), noise)
    return (x + noise * sigma.to(x).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def add_poisson_noise(
    x: Tensor, scale: Tensor, gray: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Shot noise: ``x + scale * (Poisson(255 x) / 255 - x)``, clamped to [0, 1].

    Its variance grows with the intensity, as a sensor's does; ``scale`` ``(B,)`` sets its
    strength (1: photon counts of a 0-255 image). ``gray`` as in `add_gaussian_noise` (the
    noise of the luma, added to every channel).
    """
    device = generator.device if generator is not None else x.device
    gray_mask = None if gray is None else gray.to(torch.bool).view(-1, 1, 1, 1)
    luma = x.mean(dim=1, keepdim=True).expand_as(x)
    source = x if gray_mask is None else torch.where(gray_mask.to(x.device), luma, x)
    rate = (source.clamp(0.0, 1.0) * 255.0).to(device, torch.float32)
    counts = torch.poisson(rate, generator=generator).to(x.device, x.dtype)
    noise = counts / 255.0 - source
    if gray_mask is not None:
        noise = torch.where(gray_mask.to(x.device), noise[:, :1].expand_as(noise), noise)
    return (x + noise * scale.to(x).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def jpeg_compress(x: Tensor, quality: Tensor | Sequence[int]) -> Tensor:
    """JPEG-compress each sample at its own quality with Pillow's libjpeg (4:2:0 chroma
    subsampling, standard tables), then decode it.

    The real codec rather than a differentiable approximation (kornia's): the model should meet
    the exact blocks and ringing that files carry, and the degradation needs no gradient.
    Pillow rather than ``torchvision.io``, whose image codecs are deprecated from torchvision
    0.29 on; Pillow is what msrnet reads and writes images with, and what saves most JPEGs users
    will upscale. Samples are rounded to uint8 first, as a file holds.

    Args:
        x: ``(B, C, H, W)`` float in [0, 1], C = 1 or 3.
        quality: ``(B,)`` integer qualities in [1, 100].

    Returns:
        ``(B, C, H, W)`` float in [0, 1] on uint8 levels, on ``x``'s device.
    """
    from PIL import Image

    qualities = [int(q) for q in torch.as_tensor(quality).reshape(-1).tolist()]
    if len(qualities) != x.shape[0]:
        raise ValueError(f"need one quality per sample: {len(qualities)} for a batch of {x.shape[0]}")
    if any(not 1 <= q <= 100 for q in qualities):
        raise ValueError(f"JPEG qualities must be in [1, 100], got {qualities}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"JPEG holds 1 or 3 channels, got {x.shape[1]}")
    levels = quantize(x).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for image, q in zip(levels, qualities):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            buffer, format="JPEG", quality=q, subsampling=2
        )
        with Image.open(buffer) as jpeg:
            decoded.append(torch.from_numpy(np.asarray(jpeg).copy()).reshape(image.shape))
    out = torch.stack(decoded).permute(0, 3, 1, 2)
    return out.to(x.device, x.dtype).div_(255.0)


def resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Resize ``(B, C, H, W)`` to ``size`` with ``area``, ``bilinear`` or ``bicubic``
    interpolation (anti-aliased when down-scaling), clamped to [0, 1]."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "area":
        out = F.interpolate(x, size=size, mode="area")
    else:
        down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=down)
    return out.clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# The pipeline.


def _uniform(n: int, bounds: tuple[float, float], g: torch.Generator | None) -> Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=g)


def _chance(n: int, p: float, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g) < p


def _choice(options: Sequence[str], g: torch.Generator | None) -> str:
    return options[int(torch.randint(len(options), (), generator=g))]


def _random_kernels(n: int, config: Blur, g: torch.Generator | None) -> Tensor:
    """``(n, k, k)`` kernels of the config's kinds; k is the largest side drawn, smaller
    kernels are cut to their own side within it."""
    sides = 2 * torch.randint(config.size[0] // 2, config.size[1] // 2 + 1, (n,), generator=g) + 1
    k = int(sides.max())
    sigma_x = _uniform(n, config.sigma, g)
    sigma_y = torch.where(_chance(n, config.anisotropic_prob, g), _uniform(n, config.sigma, g), sigma_x)
    theta = _uniform(n, (0.0, math.pi), g)
    kind = torch.rand(n, generator=g)
    beta_g = _uniform(n, config.generalized_beta, g)
    beta_p = _uniform(n, config.plateau_beta, g)
    kernels = gaussian_kernel(k, sigma_x, sigma_y, theta)
    generalized = kind < config.generalized_prob
    plateau = (kind >= config.generalized_prob) & (kind < config.generalized_prob + config.plateau_prob)
    if generalized.any():
        kernels[generalized] = generalized_gaussian_kernel(
            k, sigma_x[generalized], sigma_y[generalized], theta[generalized], beta_g[generalized]
        )
    if plateau.any():
        kernels[plateau] = plateau_kernel(k, sigma_x[plateau], sigma_y[plateau], theta[plateau], beta_p[plateau])
    sinc = _chance(n, config.sinc_prob, g)
    # Small sinc kernels ring only at high cut-offs (Real-ESRGAN's rule).
    cutoff = torch.where(sides < 13, _uniform(n, (math.pi / 3, math.pi), g), _uniform(n, (math.pi / 5, math.pi), g))
    if sinc.any():
        kernels[sinc] = sinc_kernel(k, cutoff[sinc])
    # Cut every kernel to its own side, then renormalize.
    r = (torch.arange(k) - k // 2).abs()
    inside = (r.view(1, -1, 1) <= sides.view(-1, 1, 1) // 2) & (r.view(1, 1, -1) <= sides.view(-1, 1, 1) // 2)
    return _normalized(kernels * inside)


def _apply_to(x: Tensor, mask: Tensor, op: Any) -> Tensor:
    """``x`` with ``op`` applied to the samples where ``mask`` (a CPU bool ``(B,)``) is set."""
    if not bool(mask.any()):
        return x
    index = mask.nonzero().squeeze(1)
    on_device = index.to(x.device)
    out = x.clone()
    out[on_device] = op(x[on_device], index)
    return out


def _run_stage(x: Tensor, stage: Stage, lr_size: tuple[int, int], g: torch.Generator | None) -> Tensor:
    n = x.shape[0]
    if stage.blur is not None:
        kernels = _random_kernels(n, stage.blur, g)
        x = _apply_to(x, _chance(n, stage.blur.prob, g), lambda part, i: blur(part, kernels[i]))
    if stage.resize is not None and bool(_chance(1, stage.resize.prob, g)):
        factor = float(_uniform(1, stage.resize.scale, g))
        # Never below the LR size: the final step only shrinks (as in Real-ESRGAN, where the
        # first stage's factor is relative to the HR size).
        size = (max(lr_size[0], round(x.shape[-2] * factor)), max(lr_size[1], round(x.shape[-1] * factor)))
        x = resize(x, size, _choice(stage.resize.modes, g))
    if stage.noise is not None:
        noise = stage.noise
        chosen = _chance(n, noise.prob, g)
        gaussian = _chance(n, noise.gaussian_prob, g)
        gray = _chance(n, noise.gray_prob, g)
        sigma = _uniform(n, noise.sigma, g) / 255.0
        scale = _uniform(n, noise.poisson_scale, g)
        x = _apply_to(x, chosen & gaussian, lambda part, i: add_gaussian_noise(part, sigma[i], gray[i], g))
        x = _apply_to(x, chosen & ~gaussian, lambda part, i: add_poisson_noise(part, scale[i], gray[i], g))
    if stage.jpeg is not None:
        quality = _quality(n, stage.jpeg, g)
        x = _apply_to(x, _chance(n, stage.jpeg.prob, g), lambda part, i: jpeg_compress(part, quality[i]))
    return x


def _quality(n: int, jpeg: JPEG, g: torch.Generator | None) -> Tensor:
    return torch.randint(jpeg.quality[0], jpeg.quality[1] + 1, (n,), generator=g)


def _finish(x: Tensor, final: Final | None, lr_size: tuple[int, int], g: torch.Generator | None) -> Tensor:
    """Bring a pipeline that started from the HR patch to the LR size (Real-ESRGAN's end)."""
    n = x.shape[0]
    if final is None:
        return resize(x, lr_size, _choice(RESIZE_MODES, g))
    mode = _choice(final.modes, g)
    sinc = _chance(n, final.sinc_prob, g)
    cutoff = _uniform(n, (math.pi / 3, math.pi), g)
    quality = _quality(n, final.jpeg, g)
    compress = _chance(n, final.jpeg.prob, g)

    def resize_and_sinc(y: Tensor) -> Tensor:
        y = resize(y, lr_size, mode)
        return _apply_to(y, sinc, lambda part, i: blur(part, sinc_kernel(7, cutoff[i])).clamp_(0.0, 1.0))

    def jpeg(y: Tensor) -> Tensor:
        return _apply_to(y, compress, lambda part, i: jpeg_compress(part, quality[i]))

    if bool(_chance(1, 0.5, g)):
        return jpeg(resize_and_sinc(x))
    return resize_and_sinc(jpeg(x))


def degrade(
    hr: Tensor,
    scale: int,
    config: DegradationConfig | str = "bicubic",
    generator: torch.Generator | None = None,
    clean_lr: Tensor | None = None,
) -> Tensor:
    """LR patches from HR patches through a degradation pipeline.

    Args:
        hr: ``(B, C, s*h, s*w)`` float in [0, 1] (on uint8 levels for the bicubic path to
            match the protocol's).
        scale: the down-scaling factor s.
        config: a `DegradationConfig` or a preset name.
        generator: a CPU generator for every random draw (reproducible on any device).
        clean_lr: the MATLAB-bicubic LR patches ``(B, C, h, w)`` if the caller has them (the
            patch sampler does); computed here otherwise.

    Returns:
        ``(B, C, h, w)`` float in [0, 1] on uint8 levels, on ``hr``'s device.
    """
    config = load_degradation(config)
    b, c, height, width = hr.shape
    if height % scale or width % scale:
        raise ValueError(f"HR patches of {height}x{width} are not a multiple of the scale {scale}")
    check_degradation_memory(config, b, c, (height, width), scale, hr.element_size())
    lr_size = (height // scale, width // scale)
    if clean_lr is None:
        levels = quantize(hr).to(torch.uint8)
        clean_lr = bicubic_downscale(levels, lr_size).to(hr.dtype) / 255.0
    if config.is_bicubic:
        return clean_lr
    x = clean_lr if config.bicubic_first else hr
    for stage in config.stages:
        if bool(_chance(1, stage.prob, generator)):
            x = _run_stage(x, stage, lr_size, generator)
    if not config.bicubic_first:
        x = _finish(x, config.final, lr_size, generator)
    x = quantize(x) / 255.0  # LR images are 8-bit files
    clean = _chance(b, config.clean_prob, generator).to(x.device).view(-1, 1, 1, 1)
    return torch.where(clean, clean_lr, x)


# ----------------------------------------------------------------------------------------------
# Fixed degradations for benchmarks.


@dataclass(frozen=True)
class Condition:
    """A fixed degradation of a benchmark's bicubic LR image: Gaussian noise, then JPEG.

    Args:
        noise_sigma: standard deviation of the Gaussian noise on the 0-255 scale (0: none);
            the noisy image is rounded to uint8 before the JPEG step, as a saved file is.
        jpeg_quality: JPEG quality (Pillow's libjpeg, 4:2:0 chroma subsampling), or None for
            no compression.
    """

    noise_sigma: float = 0.0
    jpeg_quality: int | None = None

    @classmethod
    def from_name(cls, name: str) -> Condition:
        """The condition a name spells: ``"clean"``, ``"jpeg75"``, ``"noise5"``, ``"noise5-jpeg75"``.

        Raises:
            ValueError: a name that is not ``clean`` or ``noise<sigma>``/``jpeg<quality>`` parts.
        """
        if name == "clean":
            return cls()
        # noise<sigma>, jpeg<quality> or noise<sigma>-jpeg<quality>: the order they are applied in.
        parts = re.fullmatch(r"(?:noise(\d{1,3}))?(-)?(?:jpeg(\d{1,3}))?", name, re.ASCII)
        if (
            parts is None
            or not (parts[1] or parts[3])
            or bool(parts[2]) != bool(parts[1] and parts[3])
            or (parts[3] is not None and not 1 <= int(parts[3]) <= 100)
        ):
            raise ValueError(f"unknown condition {name!r}; conditions: {', '.join(BENCHMARK_CONDITION_NAMES)}")
        sigma, quality = parts[1], parts[3]
        return cls(noise_sigma=float(sigma or 0), jpeg_quality=None if quality is None else int(quality))

    @staticmethod
    def check_seed(seed: int) -> None:
        """Raise ValueError unless ``seed`` is an integer from 0 to `MAX_SEED`."""
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")

    def apply(self, lr: Tensor, seed: int, name: str) -> Tensor:
        """Degrade one uint8 LR image ``(C, h, w)``; the noise comes from a generator seeded
        by ``seed`` (0 to `MAX_SEED`) and the image's ``name``, so neither the order of the
        images nor the machine changes the bytes. Returns uint8 ``(C, h, w)``."""
        self.check_seed(seed)
        x = lr.to(torch.float64).unsqueeze(0) / 255.0
        if self.noise_sigma > 0:
            # float64 noise on the CPU: the scalar sampler, the same bits on every CPU.
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode("utf-8")))
            x = add_gaussian_noise(x, torch.tensor([self.noise_sigma / 255.0]), generator=g)
            x = quantize(x) / 255.0
        if self.jpeg_quality is not None:
            x = jpeg_compress(x, [self.jpeg_quality])
        return quantize(x[0]).to(torch.uint8)


# The conditions of `msrnet benchmark --condition`, applied after the protocol's bicubic
# down-scaling: one per name of `msrnet._catalogue.BENCHMARK_CONDITION_NAMES` (``clean``, the
# protocol itself, is the condition that changes nothing).
BENCHMARK_CONDITIONS: dict[str, Condition] = {name: Condition.from_name(name) for name in BENCHMARK_CONDITION_NAMES}
