"""The msrnet command line: ``msrnet upscale | benchmark | train | export`` (or ``python -m msrnet``).

Each subcommand is a pair of functions, ``_add_<name>_parser`` and ``_run_<name>``; the work
itself lives in the library (`msrnet.inference`, `msrnet.evaluate`, `msrnet.train`,
`msrnet.export`) so that everything the CLI does is also one Python call away.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from msrnet import __version__


# --- upscale ---------------------------------------------------------------------------------
def _add_upscale_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upscale", help="upscale images, folders or globs")
    p.set_defaults(func=_run_upscale)


def _run_upscale(args: argparse.Namespace) -> int:
    raise NotImplementedError("msrnet upscale is not implemented yet")


# --- benchmark -------------------------------------------------------------------------------
def _add_benchmark_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("benchmark", help="Y-PSNR/SSIM on benchmark sets, as the field's tables")
    p.set_defaults(func=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    raise NotImplementedError("msrnet benchmark is not implemented yet")


# --- train -----------------------------------------------------------------------------------
def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model on a folder of HR images")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    raise NotImplementedError("msrnet train is not implemented yet")


# --- export ----------------------------------------------------------------------------------
def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX or a torch.export program")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    raise NotImplementedError("msrnet export is not implemented yet")


# --- entry point -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msrnet", description="Multi-scale pyramid super-resolution networks."
    )
    parser.add_argument("--version", action="version", version=f"msrnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_upscale_parser, _add_benchmark_parser, _add_train_parser, _add_export_parser):
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
