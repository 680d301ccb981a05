"""`main`: the parser of every command, and the one place that prints how a command ended."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from msrnet import __version__
from msrnet._utils import missing_extra
from msrnet.cli import benchmark, export, train, upscale, weights
from msrnet.cli._common import EXIT_FAILED, CommandError, Terminated, say_warning

__all__ = ["build_parser", "main"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM

# Each command is a module with HELP and DESCRIPTION (its --help), add_arguments(parser),
# run(args) -> exit status, and saved(args): what an interrupted run leaves behind, in words.
COMMANDS: dict[str, ModuleType] = {
    "upscale": upscale, "benchmark": benchmark, "train": train, "export": export, "weights": weights,
}


def build_parser() -> argparse.ArgumentParser:
    """``msrnet``'s parser: one subparser per module of `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="msrnet", description="Multi-scale pyramid super-resolution networks.")
    parser.add_argument("--version", action="version", version=f"msrnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = subparsers.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(func=command.run, saved=command.saved)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status.

    Every command's errors and warnings are printed here, one line each: an error as
    ``msrnet COMMAND: error: ...`` (`CommandError`: exit 1, or 2 for refused arguments), a
    warning from anywhere (msrnet, torch, a worker thread) as ``msrnet COMMAND: warning: ...``
    instead of Python's two lines of file name and source, and Ctrl-C (exit 130) or SIGTERM
    (exit 143) as ``msrnet COMMAND: interrupted (Ctrl-C); ...`` with what was saved.
    """
    import warnings

    args = build_parser().parse_args(argv)
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        say_warning(args.command, message)

    warnings.showwarning = show
    try:
        return _run(args)
    finally:
        warnings.showwarning = previous


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"msrnet {args.command}: interrupted (Ctrl-C); {args.saved(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"msrnet {args.command}: terminated (SIGTERM); {args.saved(args)}", file=sys.stderr)
        return EXIT_TERMINATED
    except CommandError as e:
        message, code = str(e), e.code
        if e.hint:
            message += f"\nmsrnet {args.command}: {e.hint}"
    except ImportError as e:
        # An optional extra that is not installed (onnx, video, spandrel, docs) is one line that
        # says what to install, not a traceback; any other import error is a bug and keeps it.
        hint = missing_extra(e)
        if hint is None:
            raise
        message, code = hint, EXIT_FAILED
    print(f"msrnet {args.command}: error: {message}", file=sys.stderr)
    return code
