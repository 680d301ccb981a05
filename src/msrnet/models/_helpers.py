"""A model's mode, device and memory format: `preserved`, for functions that borrow a model.

`preserved` is the one policy for functions that run a caller's model (`~msrnet.evaluate.evaluate`,
`~msrnet.upscale`): they may move it and switch it to eval mode, and hand it back as they
found it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["preserved"]


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
