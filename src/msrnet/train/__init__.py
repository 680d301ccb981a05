"""The reference trainer: `TrainConfig` and `train`.

The package, one module per concern:

- `msrnet.train.config`: `TrainConfig` (torch-free; the CLI builds ``msrnet train`` from it);
- `msrnet.train.trainer`: `TrainState`, `train_step`, `validate`, `save` and `train`;
- `msrnet.train.losses`: `pyramid_loss` and the per-pixel `LOSSES`;
- `msrnet.train.checkpoint`: the checkpoint file format;
- `msrnet.train.outputs`: the run folder, ``config.json`` and ``log.jsonl``.
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import RESUMABLE_FIELDS, TrainConfig
from .losses import LOSSES, pyramid_loss
from .trainer import TrainState, train, train_step, validate

__all__ = [
    "TrainConfig",
    "RESUMABLE_FIELDS",
    "TrainState",
    "train",
    "train_step",
    "validate",
    "pyramid_loss",
    "LOSSES",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
]
