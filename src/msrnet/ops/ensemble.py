"""Geometric self-ensemble (the "x8" / "+" trick of EDSR)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["self_ensemble"]


def _transform(x: Tensor, flip: bool, rot: int) -> Tensor:
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, rot, dims=(-2, -1))


def _inverse(y: Tensor, flip: bool, rot: int) -> Tensor:
    y = torch.rot90(y, -rot, dims=(-2, -1))
    if flip:
        y = y.flip(-1)
    return y


def self_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Average ``fn`` over the 8 dihedral transforms of ``x``.

    Each of the 4 rotations, with and without a horizontal flip, is applied to the
    input, passed through ``fn``, mapped back by the inverse transform and averaged.
    ``fn`` is called 8 times sequentially, so peak memory is one call's.

    Args:
        fn: an image-to-image function, e.g. a super-resolution model, mapping
            ``(B, C, H, W)`` to ``(B, C', H', W')`` with ``H' / H == W' / W``
            (rotations swap ``H`` and ``W``, so the scale must be isotropic).
        x: input of shape ``(B, C, H, W)`` (any leading dims).

    Returns:
        The averaged output, shape ``(B, C', H', W')``.
    """
    total: Tensor | None = None
    for flip in (False, True):
        for rot in range(4):
            y = _inverse(fn(_transform(x, flip, rot)), flip, rot)
            total = y if total is None else total + y
    assert total is not None
    return total / 8
