"""Training losses: per-pixel losses and `pyramid_loss`, the loss over every pyramid level."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from msrnet._catalogue import LOSS_NAMES
from msrnet.metrics import ssim_per_plane
from msrnet.ops.imresize import imresize

from .config import parse_loss

__all__ = ["LOSSES", "parse_loss", "pyramid_loss"]


def _charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def _dssim(pred: Tensor, target: Tensor) -> Tensor:
    """(1 - SSIM) / 2 over every RGB plane on [0, 1] (Wang's 11x11, sigma 1.5 window, valid region)."""
    if min(pred.shape[-2:]) < 11:
        raise ValueError(
            f"the dssim loss needs at least 11x11 pixels at every pyramid level, got "
            f"{tuple(pred.shape[-2:])}: use a larger patch_size"
        )
    planes = [t.flatten(0, 1).unsqueeze(1) for t in (pred, target)]  # (B*C, 1, H, W)
    return (1 - ssim_per_plane(planes[0], planes[1], data_range=1.0).mean()) / 2


# One function per name of `msrnet._catalogue.LOSS_NAMES` (l1, charbonnier, mse, dssim), in its
# order: the names a config's loss spec is checked against without torch. mse is the error PSNR
# measures, to fine-tune toward the metric itself.
LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = dict(
    zip(LOSS_NAMES, (F.l1_loss, _charbonnier, F.mse_loss, _dssim), strict=True)
)


def pyramid_loss(
    outputs: Sequence[Tensor],
    hr: Tensor,
    loss: str = "charbonnier",
    level_weights: Sequence[float] | None = None,
) -> Tensor:
    """Weighted loss over every pyramid level, each against ``hr`` bicubic-resized to its size.

    Args:
        outputs: ``forward_pyramid`` images, coarse first: ``(B, C, h_k, w_k)``, the last one
            the size of ``hr``.
        hr: HR target ``(B, C, H, W)`` in [0, 1].
        loss: loss spec (see `TrainConfig.loss`).
        level_weights: one weight per level (default: equal); normalised to sum to 1.

    Returns:
        Scalar float32 loss.
    """
    terms = parse_loss(loss)
    weights = list(level_weights) if level_weights is not None else [1.0] * len(outputs)
    if len(weights) != len(outputs):
        raise ValueError(f"{len(weights)} level_weights for {len(outputs)} pyramid levels")
    total = hr.new_zeros(())
    for out, w in zip(outputs, weights):
        target = hr if out.shape[-2:] == hr.shape[-2:] else imresize(hr, size=tuple(out.shape[-2:]))
        out = out.float()
        for t_w, name in terms:
            total = total + w * t_w * LOSSES[name](out, target)
    return total / sum(weights)
