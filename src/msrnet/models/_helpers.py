"""Helpers for functions that run a caller's model.

`preserved` is the one policy for functions that borrow a model (`~msrnet.evaluate.evaluate`,
`~msrnet.upscale`): they may move it and switch it to eval mode, and hand it back as they
found it. `PyramidForward` calls a pyramid network's every level as its forward.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["PyramidForward", "preserved"]


class PyramidForward(nn.Module):
    """A pyramid network whose ``forward`` is its ``forward_pyramid``: every level, coarse first.

    So whatever calls a module's forward sees the whole pyramid: the trainer's DDP and
    ``torch.compile``, `~msrnet.upscale`'s runner (reduced dtype, self-ensemble) and its
    memory probe. It holds no parameters of its own; its state dict is ``model``'s, under
    ``model.``.

    Shapes: (B, C, h, w) -> [(B, C', s*h, s*w) for s in ``model.level_scales``].
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model  # an msrnet network: it has forward_pyramid

    def forward(self, x: Tensor) -> list[Tensor]:
        levels: list[Tensor] = self.model.forward_pyramid(x)
        return levels


def _memory_format(model: nn.Module) -> torch.memory_format:
    """channels_last when the model's first 4-d parameter (a conv weight) is stored so."""
    for p in model.parameters():
        if p.ndim == 4:
            channels_last = p.is_contiguous(memory_format=torch.channels_last)
            return torch.channels_last if channels_last and not p.is_contiguous() else torch.contiguous_format
    return torch.contiguous_format


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Borrow ``model``: on exit its training mode, device and memory format are as on entry.

    Functions that run a caller's model (`~msrnet.evaluate.evaluate`, `~msrnet.upscale`) move it
    and switch it to eval mode inside this block; `~msrnet.export.export_model` works on a copy.
    """
    was_training = model.training
    first = next(model.parameters(), None)
    device = first.device if first is not None else None
    memory_format = _memory_format(model)
    try:
        yield model
    finally:
        model.train(was_training)
        if device is not None:
            model.to(device).to(memory_format=memory_format)
