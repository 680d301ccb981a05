"""The benchmark runner behind ``msrnet benchmark``: Y-PSNR / SSIM as the published tables.

The protocol (see ``docs/evaluation.md``): HR images are mod-cropped to the scale,
LR images are MATLAB's bicubic down-scaling of the uint8 HR images, the model's
output is clamped and rounded to uint8, and PSNR / SSIM are taken on Y (BT.601)
with ``scale`` pixels shaved from each border.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

from msrnet import metrics
from msrnet.data.benchmark import BenchmarkDataset, Sample
from msrnet._utils import first_line
from msrnet.data.io import tensor_to_uint8, write_image
from msrnet.inference import available_memory, whole_image_memory
from msrnet.metrics import _SSIM_WINDOW
from msrnet.models import build_model, preserved
from msrnet.models.weights import WEIGHT_SUFFIXES
from msrnet.ops.ensemble import self_ensemble as _self_ensemble
from msrnet.ops.imresize import imresize
from msrnet.ops.quantize import quantize

__all__ = ["bicubic_upscale", "evaluate"]

SRFunction = Callable[[Tensor], Tensor]


def bicubic_upscale(lr: Tensor, scale: int) -> Tensor:
    """The tables' bicubic baseline: MATLAB ``imresize(lr, scale, 'bicubic')`` on uint8 LR.

    Args:
        lr: float ``(B, C, h, w)`` in [0, 1]; rounded to uint8 levels first, as the
            LR images of the tables are uint8.
        scale: integer up-scaling factor.

    Returns:
        Float ``(B, C, h * scale, w * scale)`` in [0, 1] on uint8 levels.
    """
    levels = quantize(lr).to(torch.uint8)
    return imresize(levels, scale).to(lr.dtype) / 255.0


def _resolve_model(
    model: str | Path | nn.Module | SRFunction,
    scale: int | None,
    pretrained: bool,
    arch: str | None,
) -> tuple[SRFunction, str, int]:
    """What ``evaluate`` accepts as a model, as ``(fn, name, scale)``; names and files are
    built by `~msrnet.models.build_model`.

    Raises:
        ValueError: the scale is unknown or disagrees with the model's.
    """
    if isinstance(model, (str, Path)):
        name = str(model)
        if name == "bicubic":
            if scale is None:
                raise ValueError("the bicubic baseline needs a scale")
            return (lambda lr: bicubic_upscale(lr, scale)), "bicubic", scale
        path = Path(model)
        if path.suffix in WEIGHT_SUFFIXES or path.is_file():
            model, name = build_model(arch, path), path.name
        else:
            model = build_model(name, pretrained=pretrained)
    else:
        name = (
            type(model).__name__
            if isinstance(model, nn.Module)
            else getattr(model, "__name__", "model")
        )
    model_scale = getattr(model, "scale", None)
    if scale is None:
        scale = model_scale
    if scale is None:
        raise ValueError(f"model {name!r} has no `scale` attribute: pass the scale")
    if model_scale is not None and model_scale != scale:
        raise ValueError(f"model {name!r} up-scales x{model_scale}, but scale={scale} was asked")
    return model, name, int(scale)


def evaluate(
    model: str | Path | nn.Module | SRFunction,
    dataset_dir: str | Path | Dataset[Sample] | Sequence[Sample],
    scale: int | None = None,
    device: str | torch.device = "cpu",
    self_ensemble: bool = False,
    save_dir: str | Path | None = None,
    *,
    pretrained: bool = False,
    arch: str | None = None,
    progress: bool = True,
    condition: str = "clean",
    seed: int = 0,
) -> dict[str, Any]:
    """Score a super-resolution model on one benchmark set at one scale.

    Each LR image runs through the model whole (benchmark images are small); a
    module runs on ``device`` in eval mode, and is handed back in the mode, on the device
    and in the memory format it came in (`~msrnet.models.preserved`). An image that
    cannot be read, is too small to score at ``scale``, or whose whole-image pass through a
    module would take more memory than ``device`` has available
    (`~msrnet.inference.whole_image_memory`), is skipped and listed with the reason. The output is clamped and rounded to uint8, then scored against the mod-cropped
    HR image with :func:`msrnet.metrics.psnr` / :func:`~msrnet.metrics.ssim` on Y,
    shaving ``scale`` pixels.

    Args:
        model: ``"bicubic"``; a registered model name (``"msr_x4"``, optionally with a
            pretrained tag); a path to a weights file; an ``nn.Module``; or any callable
            mapping ``(B, 3, h, w)`` to ``(B, 3, h * scale, w * scale)``. Names and files are
            built by `~msrnet.models.build_model`.
        dataset_dir: a folder of HR images (read by
            :class:`~msrnet.data.BenchmarkDataset`), or a dataset yielding the same
            ``{"lr", "hr", "name"}`` items, e.g. :class:`~msrnet.data.PairedDataset`.
        scale: the super-resolution factor (default: the model's).
        device: where the model runs.
        self_ensemble: average the outputs over the 8 flips/rotations.
        save_dir: if given, each SR image is written there as ``<name>.png``.
        pretrained: load the packaged weights of a registered model name.
        arch: the architecture of a weights file without ``arch`` metadata (see
            `~msrnet.models.build_model`).
        progress: show a progress bar on stderr.
        condition: a fixed degradation applied to each LR image of a folder, by name
            (`~msrnet.data.degradations.BENCHMARK_CONDITIONS`, e.g. ``"jpeg75"``); ``"clean"``
            (the default) is the protocol itself.
        seed: seed of the condition's noise.

    Returns:
        ``{"model": str, "dataset": str, "scale": int, "psnr": float,
        "ssim": float, "images": int, "skipped": [{"name": str, "reason": str}, ...]}``,
        PSNR in dB and both averaged over the ``images`` scored, plus ``"condition"`` and
        ``"seed"`` when the condition is not ``"clean"``.

    Raises:
        ValueError: no image could be scored, or the output's size is not ``scale`` times
            the input's.
        FloatingPointError: the model's output has NaN/inf values.
    """
    fn, name, scale = _resolve_model(model, scale, pretrained, arch)
    device = torch.device(device)
    # A caller's module is borrowed: moved and put in eval mode here, handed back as it was.
    borrowed = preserved(fn) if isinstance(fn, nn.Module) else contextlib.nullcontext()
    if isinstance(dataset_dir, (str, Path)):
        dataset: Dataset[Sample] | Sequence[Sample] = BenchmarkDataset(
            dataset_dir, scale, condition=condition, seed=seed
        )
    elif condition != "clean":
        raise ValueError("condition applies to a folder of HR images, not to a ready dataset")
    else:
        dataset = dataset_dir
    dataset_name = getattr(dataset, "name", type(dataset).__name__)
    if save_dir is not None:
        save_dir = Path(save_dir)

    psnrs: list[float] = []
    ssims: list[float] = []
    skipped: list[dict[str, str]] = []
    saved: set[str] = set()
    # Items are fetched by index, never by iterating the dataset: Python's sequence iteration
    # ends quietly on an IndexError or StopIteration from `__getitem__`, which would score a
    # subset and look complete.
    indices = tqdm(
        range(len(dataset)),  # type: ignore[arg-type]
        desc=f"{name} {dataset_name} x{scale}",
        unit="img",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    with borrowed, torch.inference_mode():
        if isinstance(fn, nn.Module):
            fn.to(device).eval()
        for index in indices:
            try:
                item = dataset[index]
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                name_ = _item_name(dataset, index)
                skipped.append({"name": name_, "reason": str(e).removeprefix(f"{name_}: ")})
                continue
            hr = tensor_to_uint8(item["hr"])
            if min(hr.shape[:2]) < 2 * scale + _SSIM_WINDOW:
                skipped.append({
                    "name": str(item["name"]),
                    "reason": f"{hr.shape[1]}x{hr.shape[0]} after mod-crop: scoring at x{scale} "
                    f"needs {2 * scale + _SSIM_WINDOW} pixels a side ({scale} shaved from each "
                    f"border, then an {_SSIM_WINDOW}x{_SSIM_WINDOW} SSIM window)",
                })
                continue
            if isinstance(fn, nn.Module):
                # A legal but huge image (9000x9000) would take more than the machine has in one
                # pass: skipped by name before the allocator fails (or the kernel kills us).
                height, width = item["lr"].shape[-2:]
                needed = whole_image_memory(fn, height, width, device=device, self_ensemble=self_ensemble)
                available = available_memory(device)
                if needed > available:
                    skipped.append({
                        "name": str(item["name"]),
                        "reason": f"{width}x{height} LR pixels take {needed / 2**30:.1f} GiB in one pass, "
                        f"{available / 2**30:.1f} GiB of {device.type} memory is available (the protocol "
                        f"scores whole images; `msrnet upscale` tiles them)",
                    })
                    continue
            lr = item["lr"].unsqueeze(0).to(device)
            try:
                sr = _self_ensemble(fn, lr) if self_ensemble else fn(lr)
            except (MemoryError, RuntimeError) as e:
                # The estimate above fell short (or the memory went elsewhere meanwhile): the
                # allocator's refusal names this image too. Any other error is not the image's.
                if not isinstance(e, (MemoryError, torch.OutOfMemoryError)) and "can't allocate memory" not in str(e):
                    raise
                skipped.append({"name": str(item["name"]), "reason": f"out of memory in one pass: {first_line(e)}"})
                continue
            if not bool(torch.isfinite(sr).all()):
                raise FloatingPointError(
                    f"{item['name']}: the model's output has NaN/inf values (broken weights?)"
                )
            sr_u8 = tensor_to_uint8(sr[0])
            if sr_u8.shape != hr.shape:
                raise ValueError(
                    f"{item['name']}: output {sr_u8.shape} does not match HR {hr.shape} "
                    f"(is the model x{scale}?)"
                )
            psnrs.append(float(metrics.psnr(sr_u8, hr, crop_border=scale)))
            ssims.append(float(metrics.ssim(sr_u8, hr, crop_border=scale)))
            if save_dir is not None:
                if item["name"] in saved:  # a.png and a.jpg: the second would replace the first
                    raise ValueError(f"two images are named {item['name']!r}: rename one to save both")
                saved.add(str(item["name"]))
                write_image(save_dir / f"{item['name']}.png", sr_u8)
    if not psnrs:
        reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in skipped[:3])
        raise ValueError(f"no image of {dataset_name!r} could be scored ({len(skipped)} skipped: {reasons})")
    result: dict[str, Any] = {
        "model": name,
        "dataset": dataset_name,
        "scale": scale,
        "psnr": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "images": len(psnrs),
        "skipped": skipped,
    }
    if condition != "clean":
        result |= {"condition": condition, "seed": seed}
    return result


def _item_name(dataset: Any, index: int) -> str:
    """The file behind item ``index``, for messages about an item that could not be read."""
    files = getattr(dataset, "files", None) or [hr for hr, _ in getattr(dataset, "pairs", [])]
    return Path(files[index]).name if index < len(files) else f"item {index}"
