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
    p = subparsers.add_parser(
        "benchmark",
        help="Y-PSNR/SSIM on benchmark sets, as the field's tables",
        description="Score a model (or the bicubic baseline) on folders of HR images: LR made by "
        "MATLAB-exact bicubic down-scaling, output rounded to uint8, PSNR/SSIM on Y (BT.601) with "
        "`scale` pixels shaved. One row per (dataset, scale).",
    )
    p.add_argument(
        "--model",
        required=True,
        help="a registered model name (msr_x4), 'bicubic', or a .safetensors/.pth weights file",
    )
    p.add_argument("--pretrained", action="store_true", help="load the packaged weights of --model")
    p.add_argument(
        "--model-arch",
        default=None,
        help="architecture of a weights file (default: its safetensors metadata, else msr_x<scale>)",
    )
    p.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="DIR",
        help="folder of HR images, named by the folder (repeatable)",
    )
    p.add_argument(
        "--scale",
        action="append",
        type=int,
        metavar="S",
        help="super-resolution factor (repeatable; default: the model's)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--self-ensemble", action="store_true", help="average over the 8 flips/rotations")
    p.add_argument(
        "--save-images", metavar="DIR", default=None, help="write SR images to DIR/<dataset>/x<scale>/"
    )
    p.add_argument("--json", action="store_true", help="print one JSON list of result objects")
    p.set_defaults(func=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from msrnet.evaluate import evaluate, load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    try:
        scales = args.scale or [load_model(args.model, None, args.pretrained, args.model_arch)[2]]
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"msrnet benchmark: error: {e} (pass --scale)", file=sys.stderr)
        return 1
    for dataset in args.dataset:
        for scale in scales:
            save_dir = None
            if args.save_images:
                save_dir = Path(args.save_images) / Path(dataset).name / f"x{scale}"
            try:
                rows.append(
                    evaluate(
                        args.model,
                        dataset,
                        scale,
                        device=device,
                        self_ensemble=args.self_ensemble,
                        save_dir=save_dir,
                        pretrained=args.pretrained,
                        arch=args.model_arch,
                    )
                )
            except (FileNotFoundError, ValueError, RuntimeError) as e:
                print(f"msrnet benchmark: error: {e}", file=sys.stderr)
                return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'model':<20} {'dataset':<12} {'scale':>5} {'PSNR (dB)':>10} {'SSIM':>7} {'images':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<20} {r['dataset']:<12} {'x' + str(r['scale']):>5} "
            f"{r['psnr']:>10.2f} {r['ssim']:>7.4f} {r['images']:>6}"
        )
    return 0


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
