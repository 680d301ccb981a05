"""``msrnet weights``: list the weights files that ship with msrnet, or copy them (e.g. into ComfyUI).

Torch-free: listing and copying read `msrnet._catalogue` and answer at once
(tests/test_cli_weights.py).
"""
from __future__ import annotations

import argparse
import os
import typing
from pathlib import Path

from msrnet._catalogue import PRETRAINED_SHA256, SUFFIX, WEIGHTS_DIR, resolve_names
from msrnet._utils import atomic_write, remove_temp_files, sha256sum
from msrnet.cli._common import CommandError, UsageError, raise_on_sigterm

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "saved"]


HELP = "list the weights files that ship with msrnet, or copy them (e.g. into ComfyUI)"
DESCRIPTION = (
    "List the pretrained weights files inside the installed package (name, scale, "
    "size, path), or copy them into a folder with --copy-to, e.g. ComfyUI/models/upscale_models "
    "(each file's sha256 is checked first). See docs/integrations.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    def folder(value: str) -> str:
        if not value:  # "" would quietly mean the current folder
            raise argparse.ArgumentTypeError("an empty folder name (write . for the current folder)")
        return value

    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="only these models or files (msr_x4, msr_x4.t291, msr_x4.t291.safetensors); default: all",
    )
    p.add_argument("--copy-to", metavar="DIR", type=folder, default=None, help="copy the files into DIR (created if missing)")
    p.add_argument(
        "--force",
        action="store_true",
        help="with --copy-to: replace a file of the same name in DIR that is not the shipped one "
        "(refused without it)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        chosen = resolve_names(args.names)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.copy_to is None:
        for name in chosen:
            path = WEIGHTS_DIR / f"{name}{SUFFIX}"
            scale = name.split(".", 1)[0].rsplit("_x", 1)[-1]
            size = f"{path.stat().st_size / 1e6:6.1f} MB" if path.is_file() else "missing (reinstall msrnet)"
            print(f"{name:<20} x{scale:<3} {size}  {path}")
        return 0
    return _copy_weights(chosen, Path(args.copy_to), args.force)


def _copy_weights(chosen: list[str], dest: Path, force: bool) -> int:
    """`msrnet weights --copy-to`: every file checked and every target decided before any write."""
    if dest.is_symlink() and not dest.exists():
        raise UsageError(f"--copy-to {dest} is a symbolic link to {os.readlink(dest)}, which does not exist")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--copy-to {dest} is a file, not a folder")
    todo: list[tuple[str, Path, Path]] = []
    try:
        for name in chosen:
            path, digest = WEIGHTS_DIR / f"{name}{SUFFIX}", PRETRAINED_SHA256[name]
            target = dest / path.name
            # A target with the recorded sha256 is the shipped file, whatever the source's state:
            # only a file to copy has its source hashed (half the reading when all are there).
            if target.is_file() and target.stat().st_size == path.stat().st_size and sha256sum(target) == digest:
                print(f"{name}: already in {dest}")
            elif os.path.lexists(target) and not force:
                # Someone's file of that name (an older copy, their own training): never replaced
                # unasked, and refused before anything is written.
                raise UsageError(f"{target} exists and is not the shipped {name}; pass --force to replace it")
            elif sha256sum(path) != digest:
                raise CommandError(f"{path} does not match its recorded sha256 (reinstall msrnet)")
            else:
                todo.append((name, path, target))
        # What a copy killed outright (SIGKILL, power loss) left beside any of these targets:
        # atomic_write's own naming only, never another file.
        for name in chosen if dest.is_dir() else []:
            for stale in remove_temp_files(dest, f"{name}{SUFFIX}"):
                print(f"{name}: removed {stale.name}, left by an interrupted copy")
        if not todo:
            return 0
        dest.mkdir(parents=True, exist_ok=True)
        # SIGTERM and Ctrl-C unwind through atomic_write, which removes the partial copy.
        with raise_on_sigterm():
            for name, path, target in todo:
                # Written beside the target, then renamed: a half-copied file never sits where a
                # host (ComfyUI) would list it.
                with open(path, "rb") as src, atomic_write(target) as out:
                    _copy_chunks(src, out)
                print(f"{name}: copied -> {target}")
    except OSError as e:
        raise CommandError(str(e)) from None
    return 0


def _copy_chunks(src: typing.BinaryIO, out: typing.BinaryIO) -> None:
    while chunk := src.read(1 << 20):
        out.write(chunk)


def saved(args: argparse.Namespace) -> str:
    """What an interrupted ``--copy-to`` leaves: whole files only."""
    return "the file being copied was discarded; files copied before it are complete"
