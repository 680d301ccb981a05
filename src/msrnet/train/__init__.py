"""The reference trainer: `TrainConfig` and `train`.

One module per concern:

- `msrnet.train.config`: `TrainConfig` (torch-free: the CLI builds ``msrnet train`` from it);
- `msrnet.train.trainer`: `TrainState` and `RunContext`, `train_step`, `validate`, `save` and `train`;
- `msrnet.train.losses`: `pyramid_loss` and the per-pixel `LOSSES`;
- `msrnet.train.checkpoint`: the checkpoint file format;
- `msrnet.train.outputs`: the run folder, ``config.json`` and ``log.jsonl``;
- `msrnet.train.shipping`: where a run of a shipped architecture starts, when its weights
  replace the shipped file, and the copy (`examples/train_291.py`, `scripts/gpu_run.py`).

The names below load on first use (PEP 562), so reading `TrainConfig` does not import torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from msrnet._lazy import attach

_LAZY: dict[str, str | None] = {
    "TrainConfig": "config",
    "RESUMABLE_FIELDS": "config",
    "TrainState": "trainer",
    "RunContext": "trainer",
    "train": "trainer",
    "train_step": "trainer",
    "validate": "trainer",
    "pyramid_loss": "losses",
    "LOSSES": "losses",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from .config import RESUMABLE_FIELDS, TrainConfig
    from .losses import LOSSES, pyramid_loss
    from .trainer import RunContext, TrainState, train, train_step, validate

__getattr__, __dir__ = attach(__name__, _LAZY)
