"""Functional tensor ops."""

from __future__ import annotations

from msrnet.ops.ensemble import self_ensemble
from msrnet.ops.imresize import imresize
from msrnet.ops.quantize import quantize

__all__ = ["imresize", "quantize", "self_ensemble"]
