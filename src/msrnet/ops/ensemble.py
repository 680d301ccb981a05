"""Geometric self-ensemble (the "x8" / "+" trick of EDSR)."""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

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


@overload
def self_ensemble(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor: ...
@overload
def self_ensemble(fn: Callable[[Tensor], list[Tensor]], x: Tensor) -> list[Tensor]: ...
@overload
def self_ensemble(fn: Callable[[Tensor], Tensor | list[Tensor]], x: Tensor) -> Tensor | list[Tensor]: ...
def self_ensemble(fn: Callable[[Tensor], Tensor | list[Tensor]], x: Tensor) -> Tensor | list[Tensor]:
    """Average ``fn`` over the 8 dihedral transforms of ``x``.

    Each of the 4 rotations, with and without a horizontal flip, is applied to the
    input, passed through ``fn``, mapped back by the inverse transform and averaged.
    ``fn`` is called 8 times sequentially, so peak memory is one call's.

    Args:
        fn: an image-to-image function, e.g. a super-resolution model, mapping
            ``(B, C, H, W)`` to ``(B, C', H', W')`` with ``H' / H == W' / W``
            (rotations swap ``H`` and ``W``, so the scale must be isotropic); or to a
            list of such outputs, e.g. every level of a pyramid network, each of which
            is averaged on its own.
        x: input of shape ``(B, C, H, W)`` (any leading dims).

    Returns:
        The averaged output, shape ``(B, C', H', W')``, or a list of them, one per
        output of ``fn``, when ``fn`` returns a list.
    """
    total: list[Tensor] | None = None
    single = True
    for flip in (False, True):
        for rot in range(4):
            out = fn(_transform(x, flip, rot))
            single = isinstance(out, Tensor)
            ys = [_inverse(y, flip, rot) for y in ([out] if isinstance(out, Tensor) else out)]
            del out  # inverted into copies: not kept alive through the next call
            total = ys if total is None else [a + b for a, b in zip(total, ys, strict=True)]
    assert total is not None
    means = [t / 8 for t in total]
    return means[0] if single else means
