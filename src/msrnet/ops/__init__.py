"""Functional tensor ops."""

from __future__ import annotations

from msrnet.ops.ensemble import self_ensemble
from msrnet.ops.imresize import imresize

__all__ = ["imresize", "self_ensemble"]
