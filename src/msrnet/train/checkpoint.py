"""The checkpoint file format: a length and sha256 header, then a ``torch.save`` payload.

::

    b"MSRNETCK" | payload length (8 bytes, little-endian) | sha256 of the payload (32 bytes) | payload

The payload is a dict of tensors and plain values (see `TrainState.state_dict`), read back with
``torch.load(weights_only=True)``. Files are written atomically (temporary sibling, fsync,
rename), so a crash leaves the previous checkpoint whole.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from msrnet._utils import atomic_write

__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # version of the payload's keys; a checkpoint of another is refused
_MAGIC = b"MSRNETCK"


class CheckpointError(RuntimeError):
    """A checkpoint that is truncated, altered, of another format or another run."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` (tensors and plain values) atomically, after a length and sha256 header."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = _MAGIC + len(payload).to_bytes(8, "little") + hashlib.sha256(payload).digest()

    with atomic_write(path) as f:
        f.write(header)
        f.write(payload)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, refusing any that fails its integrity check.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not an msrnet checkpoint, truncated, its sha256 does not match, or a
            format this version cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = path.read_bytes()
    head = len(_MAGIC) + 8 + 32
    if len(data) < head or not data.startswith(_MAGIC):
        raise CheckpointError(
            f"{path} is not an msrnet training checkpoint (or is truncated to {len(data)} bytes)"
        )
    length = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 8], "little")
    payload = data[head:]
    if len(payload) != length:
        raise CheckpointError(
            f"{path} is truncated or padded: {len(payload)} payload bytes, expected {length}; "
            f"refusing to resume from it"
        )
    if hashlib.sha256(payload).digest() != data[len(_MAGIC) + 8 : head]:
        raise CheckpointError(
            f"{path} is corrupted or was modified: sha256 mismatch; refusing to resume from it"
        )
    state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise CheckpointError(f"{path} has checkpoint format {found}, expected {CHECKPOINT_FORMAT}")
    return state
