"""Small helpers shared across msrnet's modules."""
from __future__ import annotations

import hashlib
import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


# Optional modules -> the extra of pyproject.toml that installs them. tests/test_cli_hints.py
# checks that each extra exists there and installs the module's distribution.
OPTIONAL_MODULES: dict[str, str] = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "av": "video",
    "spandrel": "spandrel",
    "mkdocs": "docs",
    "material": "docs",
    "mkdocstrings": "docs",
    "mkdocstrings_handlers": "docs",
    "matplotlib": "docs",
}


class FidelityWarning(UserWarning):
    """A property of an input that its output does not keep (named, with the reason).

    ``msrnet upscale`` prints each as one line on stderr; docs/inference.md lists which properties
    are kept, converted with this warning, or refused.
    """


def missing_extra(error: BaseException) -> str | None:
    """One line naming the ``pip install "msrnet[EXTRA]"`` that fixes ``error``, or None.

    ``error`` (or an exception it was raised from) must be a `ModuleNotFoundError` for one of
    `OPTIONAL_MODULES`; any other error, including an ``ImportError`` from a module that *is*
    installed (a too-old version), gets None, since installing the extra may not fix it.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            top = current.name.split(".")[0]
            if top in OPTIONAL_MODULES:
                extra = OPTIONAL_MODULES[top]
                return (
                    f"the optional module {top!r} is not installed; it comes with the {extra} extra: "
                    f'pip install "msrnet[{extra}]"'
                )
        current = current.__cause__ or current.__context__
    return None


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (torch.load's run to a paragraph), else its type's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def file_identities(paths: Iterable[Path]) -> dict[object, Path]:
    """Keys under which two paths that name one file meet: the resolved path (links followed)
    and, for a file that exists, its device and inode (hard links). Maps each key to its path.

    An output that does not exist yet is compared by its resolved name only, so it is never
    taken for an input, and one that exists is caught however it is spelled.
    """
    keys: dict[object, Path] = {}
    for path in paths:
        keys[Path(path).resolve()] = path
        try:
            st = os.stat(path)
        except OSError:  # not there (yet)
            continue
        keys[(st.st_dev, st.st_ino)] = path
    return keys


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (see `file_identities`)."""
    return not file_identities([Path(a)]).keys().isdisjoint(file_identities([Path(b)]))


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights and archives can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Open a new temporary file beside ``path`` for writing; rename it onto ``path`` on success.

    Readers see the old file or the complete new one, never a partial one: a failed write (an
    encoder error, a full disk, an interrupt) removes the temporary file and leaves whatever was
    at ``path`` untouched. The rename replaces a symlink at ``path`` itself rather than writing
    through it to its target. The temporary file is created exclusively (never an existing file
    or link) with the process umask, and is fsynced before the rename.

    Writers that take a file name get it as ``f.name`` (the temporary path, whose suffix is
    ``path``'s, so that writers which look at a name still see the format).

    Usage: ``with atomic_write("out.png") as f: image.save(f, format="PNG")``.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"{path} is a folder")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        with open(tmp, "x+b") as f:  # readable too: a multi-page TIFF writer reads back its pages
            yield f
            f.flush()
        # fsync by name: a writer given the name may have replaced the file rather than filled it.
        synced = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(synced)
        finally:
            os.close(synced)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_temp_files(folder: Path, name: str) -> list[Path]:
    """Delete what `atomic_write` of ``folder / name`` left behind when its process was killed."""
    removed = []
    for stale in folder.glob(f".{name}.*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed
