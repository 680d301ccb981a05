"""Resuming a run: the checkpoint to resume from, checked against the new settings and the
degradation pipeline the run trained with, before anything is written (`resume_state`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .config import RESUMABLE_FIELDS, TrainConfig, config_diff
from .outputs import CONFIG_NAME

__all__ = ["Resume", "resume_state"]


@dataclass
class Resume:
    """The checkpoint a run resumes from, and the settings it changes (`RESUMABLE_FIELDS`)."""

    path: Path
    checkpoint: dict[str, Any]
    changed: dict[str, tuple[Any, Any]]  # field -> (stored, new), as JSON


# Fields that say how a run starts, not how it trains: never reported as changed on resume.
_STARTUP_FIELDS = ("resume", "overwrite")


def resume_state(config: TrainConfig, degradation: dict[str, Any]) -> Resume | None:
    """The checkpoint to resume from, checked against ``config`` and the content of its
    ``degradation`` (resolved) before anything is written."""
    if not config.resume:
        return None
    path = Path(config.resume)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists() and (path.parent / CONFIG_NAME).exists():
        # A run killed before its first checkpoint leaves config.json and nothing to resume.
        raise FileNotFoundError(
            f"no checkpoint at {path}: the run in {path.parent} stopped before its first checkpoint; "
            f"start it again with --overwrite (without --resume)"
        )
    state = load_checkpoint(path)
    _check_same_degradation(path, state, config, degradation)
    diff = config_diff(state["config"], config)
    refused = [k for k in diff if k not in RESUMABLE_FIELDS]
    if refused:
        details = ", ".join(f"{k} ({diff[k][0]!r} -> {diff[k][1]!r})" for k in refused)
        raise CheckpointError(
            f"cannot resume {path} with other settings: {details}. A resumed run may change only "
            f"its length (max_steps, time_budget) and bookkeeping (val_every, ckpt_every, "
            f"log_every, progress, output_dir); start a new run (another --output-dir) to change the rest"
        )
    changed = {k: v for k, v in diff.items() if k not in _STARTUP_FIELDS}
    return Resume(path, state, changed)


def _check_same_degradation(
    path: Path, checkpoint: dict[str, Any], config: TrainConfig, degradation: dict[str, Any]
) -> None:
    """Refuse to resume ``checkpoint`` when ``config.degradation`` now resolves to another
    pipeline than the one the run trained with (a file edited between the runs)."""
    recorded = checkpoint.get("degradation")
    if recorded is None:
        warnings.warn(
            f"{path} does not record its degradation pipeline (written by an older msrnet): "
            f"resuming with {config.degradation} as it reads now",
            stacklevel=4,
        )
        return
    changed = _json_differences(recorded, degradation)
    if changed:
        where, old, new = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise CheckpointError(
            f"cannot resume {path}: the degradation {config.degradation} has changed since the run "
            f"started: {where or 'the pipeline'} {old!r} -> {new!r}{more}; restore it, or start a new run "
            f"(another --output-dir)"
        )


def _json_differences(old: Any, new: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """``(field path, old, new)`` for each place where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d for key in sorted(set(old) | set(new))
            for d in _json_differences(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        ]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and all(
        isinstance(v, dict) for v in old + new
    ):  # the stages: named one by one
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _json_differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [(where, old, new)]
