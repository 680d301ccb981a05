"""`quantize`: images onto integer levels, rounded as MATLAB's ``uint8()`` rounds.

The one rounding rule of msrnet: saturate to [0, peak], then round half up (``floor(v + 0.5)``,
half away from zero for the non-negative values left). Saved images, the benchmark protocol's
uint8 LR images, the degradations' 8-bit files and MATLAB's bicubic ``imresize`` of uint8
images all round this way, so scores match the published tables.
"""
from __future__ import annotations

from torch import Tensor

__all__ = ["quantize"]


def quantize(x: Tensor, peak: float = 255.0, *, scaled: bool = False, inplace: bool = False) -> Tensor:
    """Integer levels of a float image, ``floor(clamp(x * peak, 0, peak) + 0.5)``.

    Args:
        x: float tensor of any shape, values in [0, 1] (or, with ``scaled``, already on the
            0..``peak`` scale, as ``imresize``'s uint8 arithmetic is).
        peak: the level of 1.0: 255 for 8 bits, 65535 for 16.
        scaled: ``x`` is on the 0..``peak`` scale already (not multiplied again).
        inplace: write the levels into ``x`` (large outputs: no second copy).

    Returns:
        The levels as ``x``'s float dtype and shape (``.to(torch.uint8)`` is the caller's),
        ``x`` itself with ``inplace``. ``clamp(x, 0, 1) * peak`` and ``clamp(x * peak, 0,
        peak)`` are the same floats, so values outside [0, 1] saturate to 0 and ``peak``.
    """
    if not scaled:
        x = x.mul_(peak) if inplace else x * peak
    elif not inplace:
        x = x.clone()
    return x.clamp_(0.0, peak).add_(0.5).floor_()
