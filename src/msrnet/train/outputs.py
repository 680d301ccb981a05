"""The run folder: refusing to clobber another run, ``config.json`` and the ``log.jsonl`` log.

Everything is written without following a symlink planted at its path: ``config.json`` by an
atomic rename, ``log.jsonl`` created the same way and then appended to with ``O_NOFOLLOW``.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import IO, Any

from msrnet._utils import atomic_write, remove_temp_files

from .checkpoint import CHECKPOINT_NAME

__all__ = ["CONFIG_NAME", "LOG_NAME", "WEIGHTS_NAME", "RUN_FILES", "prepare_output_dir", "RunLog"]

CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
WEIGHTS_NAME = "best.safetensors"
RUN_FILES = (CONFIG_NAME, LOG_NAME, CHECKPOINT_NAME, WEIGHTS_NAME)


def check_output_dir(out_dir: Path, resuming: bool, overwrite: bool) -> None:
    """Refuse an ``out_dir`` that cannot hold the run, or holds another one (all ranks call it).

    Raises:
        ValueError: ``out_dir`` is a file, or holds a run and neither ``resuming`` nor
            ``overwrite`` says what to do with it.
        PermissionError: ``out_dir`` is not writable.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output_dir {out_dir} is a file, not a folder")
    if out_dir.is_dir() and not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"output_dir {out_dir} is not writable")
    existing = [name for name in RUN_FILES if (out_dir / name).exists()]
    if existing and not resuming and not overwrite:
        raise ValueError(
            f"{out_dir} already holds a run ({', '.join(existing)}): pass --resume to continue "
            f"it or --overwrite to replace it (resume=... / overwrite=True), or pick another "
            f"--output-dir"
        )


def prepare_output_dir(out_dir: Path, config: dict[str, Any], overwrite: bool) -> None:
    """Create ``out_dir`` (rank 0), clear what killed writes left, write ``config.json``.

    Called only after every check of the run has passed, so a refused run changes nothing.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        for stale in remove_temp_files(out_dir, name):
            warnings.warn(f"removed {stale}, left by an interrupted write", stacklevel=3)
        if overwrite and name != CONFIG_NAME:
            (out_dir / name).unlink(missing_ok=True)
    with atomic_write(out_dir / CONFIG_NAME) as f:
        f.write((json.dumps(config, indent=2) + "\n").encode())


class RunLog:
    """The JSON-lines log; silent on ranks other than 0.

    Args:
        path: the ``log.jsonl`` file.
        active: whether this process writes it (rank 0).
        resume_step: the step of the checkpoint resumed from: lines past it belong to the
            interrupted run and will be written again; a torn last line (a kill mid-write) is
            dropped. None starts an empty log.
    """

    def __init__(self, path: Path, active: bool, resume_step: int | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        if not active:
            return
        kept: list[str] = []
        if resume_step is not None and path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                try:
                    record = json.loads(line)
                except ValueError:
                    warnings.warn(f"{path}:{number}: dropped an unreadable log line", stacklevel=2)
                    continue
                if isinstance(record, dict) and record.get("step", 0) <= resume_step:
                    kept.append(line)
        with atomic_write(path) as f:
            f.write(("".join(line + "\n" for line in kept)).encode())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        self._file = os.fdopen(fd, "a")

    def write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
