"""What every ``msrnet`` command shares: its errors and their exit codes, warnings, SIGTERM, --model.

The exit-code rule has one owner, `CommandError`: arguments a command refuses exit 2 (as
argparse's own errors), work that failed exits 1; `msrnet.cli._main.main` adds Ctrl-C (130)
and SIGTERM (143). torch is imported only inside functions, so that ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from msrnet._catalogue import MODEL_NAMES, shipped_tags
from msrnet._utils import first_line

if TYPE_CHECKING:  # msrnet.models imports torch, which `msrnet --help` does without
    from msrnet.models import MultiScaleSRNet

__all__ = [
    "EXIT_ARGUMENTS", "EXIT_FAILED", "DEFAULT_MODEL", "CommandError", "UsageError", "Terminated",
    "add_model_args", "cli_model", "model_label", "raise_on_sigterm", "say_warning", "user_errors",
]

EXIT_FAILED = 1  # the work failed (an unreadable image, a run that stopped)
EXIT_ARGUMENTS = 2  # the arguments were refused, as argparse refuses its own

# What `upscale` and `export` run without --model: the weights trained for JPEG and noisy inputs,
# since photos are what people upscale (docs/real-photos.md has the numbers behind the choice).
DEFAULT_MODEL = "msr_small_x4.real"


class CommandError(Exception):
    """What stops a command: `main` prints it as ``msrnet COMMAND: error: MESSAGE`` and exits 1.

    Raised where a command finds the problem, so that every command's errors are one line in one
    format, and its steps need not hand exit codes back up. ``hint`` is a second line: what to
    do about it.
    """

    code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(CommandError):
    """Arguments the command refuses (exit 2), found before or while it reads what they name."""

    code = EXIT_ARGUMENTS


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that the atomic writers remove their temporary files.

    A BaseException, like KeyboardInterrupt: no ``except Exception`` on the way swallows it.
    """


@functools.cache
def user_errors() -> tuple[type[BaseException], ...]:
    """What a user's files, names or arguments can make the library raise; anything else is a bug
    and keeps its traceback.

    A pickle that is no state dict raises anything (AttributeError, EOFError, LookupError), an
    image too large for memory MemoryError or PIL's bomb error. A function, so that the
    imports wait until a command runs.
    """
    import pickle

    from PIL import Image
    from safetensors import SafetensorError

    return (
        OSError, ValueError, RuntimeError, TypeError, LookupError, EOFError, AttributeError,
        ArithmeticError, MemoryError, pickle.UnpicklingError, SafetensorError, Image.DecompressionBombError,
    )


def say_warning(command: str, text: object) -> None:
    """The one form of a warning on the command line: ``msrnet COMMAND: warning: TEXT``, on one
    line (printed above any progress bar)."""
    from tqdm.auto import tqdm

    tqdm.write(f"msrnet {command}: warning: {' '.join(str(text).split())}", file=sys.stderr)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def raise_on_sigterm() -> Iterator[None]:
    """SIGTERM raises `Terminated` inside the block (the main thread's handler is restored after).

    Commands that write files run in it, so that a SIGTERM unwinds through their atomic writers
    as Ctrl-C does; `main` prints the one line and exits 143. Off the main thread (where
    ``signal.signal`` cannot be called) SIGTERM keeps its handler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the model flags: --model, --pretrained/--no-pretrained, --weights --------------------------
PRETRAINED_HELP = (
    "load the weights that ship with msrnet for --model (the default); --no-pretrained: random "
    "weights, to try the pipeline. Ignored for a weights file."
)


def _models_help() -> str:
    """'msr_x2 (weights: t291), ...': the models and the tags of their shipped weights."""
    parts = []
    for name in MODEL_NAMES:
        tags = shipped_tags(name)
        parts.append(f"{name} (weights: {', '.join(tags)})" if tags else name)
    return ", ".join(parts)


def add_model_args(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL, also: str = "") -> None:
    """--model, --pretrained/--no-pretrained and --weights: the same flags in every command that
    runs a model (`msrnet.models.build_model` takes the same three)."""
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help=f"a registered model, NAME or NAME.TAG: {_models_help()}{also}; default: "
        f"{f'{default}, or ' if default else ''}the architecture recorded in --weights. "
        "`msrnet weights` shows the files.",
    )
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True, help=PRETRAINED_HELP)
    p.add_argument(
        "--weights",
        metavar="FILE",
        default=None,
        help="a .safetensors/.pth state dict (e.g. best.safetensors from `msrnet train`), in the "
        "architecture --model names if the file records none; overrides --pretrained",
    )


def cli_model(args: argparse.Namespace, command: str, default: str | None = DEFAULT_MODEL) -> MultiScaleSRNet:
    """`msrnet.models.build_model` of --model/--weights/--pretrained (``default`` without either).

    Raises:
        UsageError: the reason in one line (naming the file), and a hint where the shipped
            weights of a known model are missing: the name or the file is the user's argument.
    """
    from msrnet.models import build_model

    name = args.model or (None if args.weights else default)
    try:
        model = build_model(name, args.weights, pretrained=args.pretrained)
    except user_errors() as e:
        message = first_line(e)
        if args.weights and str(args.weights) not in message:
            message = f"{args.weights}: {message}"
        # The --weights / --no-pretrained hint helps when weights are missing, not when the
        # name is wrong (the error lists the valid names then).
        hint = None
        if not args.weights and args.pretrained and name and name.split(".", 1)[0] in MODEL_NAMES:
            hint = (
                "pass --weights FILE (a state dict, e.g. best.safetensors from `msrnet train`), or "
                "--no-pretrained to run with random weights"
            )
        raise UsageError(message, hint) from None
    if not args.pretrained and not args.weights:
        print(
            f"msrnet {command}: note: {name} has random weights (--no-pretrained); "
            "its output shows the pipeline working, not a useful result",
            file=sys.stderr,
        )
    return model


def model_label(args: argparse.Namespace, pretrained_cfg: dict[str, Any]) -> str:
    """What `cli_model` built, as commands print it: 'msr_x4.t291 (packaged weights)'."""
    weights = args.weights or ("packaged weights" if args.pretrained else "random weights")
    arch = pretrained_cfg["architecture"]
    if args.pretrained and not args.weights and pretrained_cfg.get("tag"):
        arch = f"{arch}.{pretrained_cfg['tag']}"
    return f"{arch} ({weights})"
