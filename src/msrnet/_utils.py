"""Small helpers shared across msrnet's modules."""
from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

TMP_SUFFIX = ".tmp"


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights and archives can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def temp_path(path: Path) -> Path:
    """The hidden temporary sibling that `atomic_write` writes ``path`` through."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def remove_temp_files(folder: Path, name: str) -> list[Path]:
    """Delete what writes of ``folder / name`` left behind when their process was killed."""
    removed = []
    for stale in folder.glob(f".{name}.*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[IO[bytes]]:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a file or link left by an earlier process with this pid
    # O_EXCL never follows a link planted at the temporary path; the mode follows the umask.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
        yield f


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary sibling, then rename it into place.

    Readers see the old file or the new one, never a partial one; a symlink planted at
    ``path`` is replaced, not followed; on any error (ENOSPC, an interrupt) the temporary
    file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        with _exclusive(tmp) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """`atomic_write` of UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode()))
