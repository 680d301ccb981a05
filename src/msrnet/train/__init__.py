"""The reference trainer: `TrainConfig` and `train`.

One module per concern:

- `msrnet.train.config`: `TrainConfig` (torch-free: the CLI builds ``msrnet train`` from it);
- `msrnet.train.trainer`: `TrainState` and `RunContext`, `train_step`, `validate`, `keep_best`, `save`
  and `train`;
- `msrnet.train.losses`: `pyramid_loss` and the per-pixel `LOSSES`;
- `msrnet.train.checkpoint`: the checkpoint file format;
- `msrnet.train.modes`: the device and process group, bf16 autocast, compilation;
- `msrnet.train.resume`: the checkpoint a run resumes from, checked before anything is written;
- `msrnet.train.outputs`: the run folder, ``config.json`` and ``log.jsonl``.

Which trained weights ship with msrnet is release tooling, outside the package
(``scripts/shipping.py``).

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
    "keep_best": "trainer",
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
    from .trainer import RunContext, TrainState, keep_best, train, train_step, validate

__getattr__, __dir__ = attach(__name__, _LAZY)
