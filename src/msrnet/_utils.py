"""Small helpers shared across msrnet's modules."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


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


def atomic_copy(source: str | Path, target: str | Path) -> Path:
    """Copy the file ``source`` to ``target`` through `atomic_write`: readers of ``target`` see
    the old file or the whole copy, and a link planted at ``target`` is replaced, not written
    through. Returns ``target``."""
    with open(source, "rb") as src, atomic_write(target) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return Path(target)


def remove_temp_files(folder: Path, name: str) -> list[Path]:
    """Delete what `atomic_write` of ``folder / name`` left behind when its process was killed."""
    removed = []
    for stale in folder.glob(f".{name}.*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed


# --- JSON from strangers -----------------------------------------------------------------------
# Every JSON file msrnet takes from a user (a `msrnet train --config`, a degradation pipeline)
# and every JSON text inside one of its inputs (a weights file's metadata, a model's
# config buffer, a log line of a run folder) is small and shallow when it is genuine. These
# bound what a hostile one costs before the parser sees it: Python's parser recurses once per
# nesting level (100,000 brackets: a RecursionError), and its int() refuses integers of more
# than 4300 digits with a message that names neither the file nor the field.
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 100

# What the nesting scan looks at: an escape (a backslash and the character after it, taken
# together so that an escaped quote does not end a string), a quote, a bracket. One pass over
# the text, linear in its length whatever it holds.
_JSON_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
# The key of the value that ends a text: `"quality": [1, ` -> quality.
_JSON_LAST_KEY = re.compile(r'"([^"\\]{1,64})"\s*:\s*(?:\[[^\[\]{}"]*)?$')


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply the arrays and objects of a JSON ``text`` nest, counted without recursion
    (brackets inside strings do not count); the count stops once it passes ``limit``."""
    depth = deepest = 0
    in_string = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or token[0] == "\\":
            continue  # a backslash outside a string is where the parser stops anyway
        elif token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def parse_json(text: str, source: str, what: str = "valid JSON") -> Any:
    """``json.loads(text)`` within `MAX_JSON_DEPTH` and `MAX_JSON_INT_DIGITS`.

    Args:
        text: the JSON text.
        source: what the text is (a file, an option, a metadata entry): every message starts
            with it.
        what: the noun of the parse-error message (``"{source}: not {what} (...)"``).

    Raises:
        ValueError: one line naming ``source``: text that is not JSON (with the line and
            column), nested deeper than `MAX_JSON_DEPTH`, or an integer of more digits than
            `MAX_JSON_INT_DIGITS` (with the line and the key it belongs to).
    """
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{source}: JSON nested more than {MAX_JSON_DEPTH} levels deep; refusing to parse it")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) <= MAX_JSON_INT_DIGITS:
            return int(digits)
        at = max(text.find(digits), 0)
        key = _JSON_LAST_KEY.search(text, max(0, at - 256), at)
        field = f"{key.group(1)}: " if key else ""
        raise ValueError(
            f"{source}: line {text.count(chr(10), 0, at) + 1}: {field}an integer of "
            f"{len(digits.lstrip('-'))} digits (at most {MAX_JSON_INT_DIGITS})"
        )

    try:
        return json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not {what} ({e})") from None


def read_json(path: str | Path, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse the JSON file ``path`` from anyone: a regular file of at most ``max_bytes``, then
    `parse_json`.

    The file is opened without blocking (a FIFO does not hang the reader) and checked by its
    open descriptor: a folder, a FIFO or a device (``/dev/zero``), under any name or through a
    link, is refused before a byte is read, and at most ``max_bytes + 1`` bytes are ever read.

    Raises:
        ValueError: one line naming ``path``: missing, unreadable, not a regular file, too
            large, not UTF-8, or refused by `parse_json`; ``what`` names the kind of file in
            the messages.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise ValueError(f"{path}: {kind}, not a {what}")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes} bytes, too large for a {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a {what} (not UTF-8 text: {e.reason} at byte {e.start})") from None
    return parse_json(text, str(path), what=f"a {what}")
