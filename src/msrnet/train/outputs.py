"""The run folder: refusing to clobber another run, its lock, ``config.json`` and the
``log.jsonl`` log.

Everything is written without following a symlink planted at its path: ``config.json`` by an
atomic rename, ``log.jsonl`` created the same way and then appended to with ``O_NOFOLLOW``, the
lock file opened with ``O_NOFOLLOW``.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from msrnet._utils import MAX_JSON_BYTES, atomic_write, parse_json, remove_temp_files

from .checkpoint import CHECKPOINT_NAME

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CONFIG_NAME", "LOG_NAME", "WEIGHTS_NAME", "LOCK_NAME", "RUN_FILES", "prepare_output_dir", "lock_run_folder",
    "RunLog",
]

CONFIG_NAME = "config.json"
LOG_NAME = "log.jsonl"
WEIGHTS_NAME = "best.safetensors"
LOCK_NAME = ".lock"
RUN_FILES = (CONFIG_NAME, LOG_NAME, CHECKPOINT_NAME, WEIGHTS_NAME)
# A genuine log holds a line per `log_every` steps and one per validation, about 200 bytes
# each: 64 MiB is a million of them. Resuming reads it back, so a larger one is refused rather
# than read.
MAX_LOG_BYTES = 64 << 20


def check_output_dir(out_dir: Path, resuming: bool, overwrite: bool, locked: bool = False) -> None:
    """Refuse an ``out_dir`` that cannot hold the run, or holds another one (all ranks call it).

    Args:
        out_dir: the run folder.
        resuming, overwrite: what the run does with a run it finds there.
        locked: this process holds the folder's lock (`lock_run_folder`), so it is not asked
            whether another one does.

    Raises:
        ValueError: ``out_dir`` is a file, is in use by another training, or holds a run and
            neither ``resuming`` nor ``overwrite`` says what to do with it.
        PermissionError: ``out_dir`` is not writable.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output_dir {out_dir} is a file, not a folder")
    if out_dir.is_dir() and not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"output_dir {out_dir} is not writable")
    if not locked:
        _refuse_if_held(out_dir / LOCK_NAME)  # a run in progress is not a run to resume or replace
    existing = [name for name in RUN_FILES if (out_dir / name).exists()]
    if existing and not resuming and not overwrite:
        if CHECKPOINT_NAME not in existing:
            # Killed before its first checkpoint: --resume would find nothing to continue.
            raise ValueError(
                f"{out_dir} holds a run that stopped before its first checkpoint ({', '.join(existing)}), "
                f"so there is nothing to resume: pass --overwrite to start it again (overwrite=True), "
                f"or pick another --output-dir"
            )
        raise ValueError(
            f"{out_dir} already holds a run ({', '.join(existing)}): pass --resume to continue "
            f"it or --overwrite to replace it (resume=... / overwrite=True), or pick another "
            f"--output-dir"
        )


@contextlib.contextmanager
def lock_run_folder(out_dir: Path, active: bool = True) -> Iterator[None]:
    """Hold ``out_dir`` for one training: an advisory ``fcntl.flock`` on ``out_dir/.lock``,
    which records the holder's pid for the message another run gets.

    The kernel drops the lock when its process dies, however it dies, so a lock file left by
    a killed run (kill -9, a crash) is taken over, with a warning naming the old pid. On the
    way out the lock file is removed, and so is the folder (and any parent) this call created
    if the run left nothing in it: a run refused after its checks keeps the disk as it was.
    Without ``fcntl`` (Windows) runs are not locked.

    Args:
        out_dir: the run folder (created if missing).
        active: whether this process takes the lock (rank 0; other ranks pass through).

    Raises:
        ValueError: another live process holds the folder, or the lock file cannot be opened
            (a symlink planted at its name, a folder that is not writable).
    """
    if not active or fcntl is None:
        yield
        return
    created = [p for p in (out_dir, *out_dir.parents) if not p.exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    try:
        fd = _locked(path)
    except ValueError:
        _remove_empty(created)
        raise
    try:
        with os.fdopen(os.dup(fd), "r+") as f:
            previous = f.read(64).strip()
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
        if previous and previous != str(os.getpid()):
            warnings.warn(
                f"{out_dir}: took over the lock left by process {previous}, which no longer holds it "
                f"(a run killed before it could clean up)",
                stacklevel=3,
            )
        yield
    finally:
        # Removed while still held, so the next run finds either no file or a free one.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) that hold nothing: those a refused run created."""
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty: the run wrote something
            folder.rmdir()


def _refuse_held(path: Path, fd: int) -> typing.NoReturn:
    """Raise the error of a run folder whose lock file ``path`` (open as ``fd``, which this
    closes) another process holds, naming the pid it recorded."""
    with os.fdopen(fd, "r") as f:
        holder = f.read(64).strip() or "unknown"
    raise ValueError(
        f"{path.parent} is in use by another training (process {holder}): wait for it to end, "
        f"or pick another --output-dir"
    )


def _refuse_if_held(path: Path) -> None:
    """`_refuse_held` if another process holds the lock file ``path``; creates nothing."""
    if fcntl is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # no lock file (or a link, which `lock_run_folder` refuses): not held
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return  # not one msrnet made: `lock_run_folder` refuses it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        _refuse_held(path, fd)
    os.close(fd)  # closing drops the shared lock


def _locked(path: Path) -> int:
    """A descriptor of ``path`` holding its exclusive flock (not blocking for it)."""
    assert fcntl is not None
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            raise ValueError(f"cannot lock the run folder: {path}: {e.strerror or e}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"cannot lock the run folder: {path} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _refuse_held(path, fd)
        # The holder before us may have removed the file between our open and our lock: the
        # lock then sits on a file no one else will open. Lock the file at the name instead.
        try:
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


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


def _log_lines_up_to(path: Path, step: int) -> list[str]:
    """The lines of the log ``path`` whose records are at or before ``step``, read as a file from
    a stranger: a regular file (not a link, a FIFO or a device) of at most `MAX_LOG_BYTES`,
    streamed a line at a time, a line longer than `MAX_JSON_BYTES` or one that is not JSON
    dropped with a warning. No log (or none readable) keeps nothing.

    Raises:
        ValueError: the log is larger than `MAX_LOG_BYTES`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # no log yet, or a link planted at its name (replaced, not followed)
        return []
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return []
        if info.st_size > MAX_LOG_BYTES:
            raise ValueError(
                f"{path} is {info.st_size:,} bytes, more than a run's log of {MAX_LOG_BYTES:,}: "
                f"move it aside to resume with a fresh log"
            )
        kept: list[str] = []
        for number, raw in enumerate(iter(lambda: f.readline(MAX_JSON_BYTES + 1), b""), 1):
            line = raw.rstrip(b"\n")
            try:
                if len(raw) > MAX_JSON_BYTES:  # the rest of an overlong line reads as more lines
                    raise ValueError("too long")
                record = parse_json(line.decode(), f"{path}:{number}")
            except (ValueError, UnicodeDecodeError):
                warnings.warn(f"{path}:{number}: dropped an unreadable log line", stacklevel=3)
                continue
            if isinstance(record, dict) and record.get("step", 0) <= step:
                kept.append(line.decode())
    return kept


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
        kept = [] if resume_step is None else _log_lines_up_to(path, resume_step)
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
