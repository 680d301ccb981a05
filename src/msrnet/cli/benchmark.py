"""``msrnet benchmark``: Y-PSNR / SSIM of a model (or bicubic) on folders of HR images (`msrnet.evaluate`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from msrnet._catalogue import BENCHMARK_CONDITION_NAMES, MAX_SEED
from msrnet._utils import first_line
from msrnet.cli._common import CommandError, UsageError, add_model_args, cli_model, user_errors

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "saved"]


HELP = "Y-PSNR/SSIM on benchmark sets, as the field's tables"
DESCRIPTION = (
    "Score a model (or the bicubic baseline) on folders of HR images: LR made by "
    "MATLAB-exact bicubic down-scaling, output rounded to uint8, PSNR/SSIM on Y (BT.601) with "
    "`scale` pixels shaved. One row per (dataset, scale)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, default=None, also="; or 'bicubic', the baseline (needs --scale)")
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
    p.add_argument(
        "--condition",
        action="append",
        metavar="NAME",
        choices=BENCHMARK_CONDITION_NAMES,
        help="score on LR images degraded after the bicubic down-scaling, by a fixed, seeded "
        f"condition: {', '.join(BENCHMARK_CONDITION_NAMES)} (repeatable; 'clean' is the protocol "
        "itself, the default). See docs/real-photos.md",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the condition's noise (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON list of result objects")


def _seed(value: str) -> int:
    """--seed: 0 to `MAX_SEED`, refused by argparse (before torch is imported) otherwise."""
    if not (value.isascii() and value.isdigit()) or len(value) > 12 or int(value) > MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got {value!r}")
    return int(value)


def run(args: argparse.Namespace) -> int:
    import torch

    from msrnet.evaluate import evaluate

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # The model is resolved once, for every dataset and scale.
    if args.model == "bicubic":
        if args.weights:
            raise UsageError("the bicubic baseline takes no --weights")
        if not args.scale:
            raise UsageError("the bicubic baseline needs --scale")
        model: Any = "bicubic"
        name, scales = "bicubic", args.scale
    else:
        if not args.model and not args.weights:
            raise UsageError("name a model: --model NAME, --model bicubic or --weights FILE")
        model = cli_model(args, "benchmark", default=None)
        name = Path(args.weights).name if args.weights else args.model
        scales = args.scale or [model.scale]
        if not args.pretrained and not args.weights:
            name += " (random)"
    conditions = args.condition or ["clean"]
    rows = []
    for dataset in args.dataset:
        for scale in scales:
            for condition in conditions:
                save_dir = None
                if args.save_images:
                    save_dir = Path(args.save_images) / Path(dataset).name / f"x{scale}"
                    if len(conditions) > 1:
                        save_dir = save_dir / condition
                try:
                    row = evaluate(
                        model, dataset, scale, device=device, self_ensemble=args.self_ensemble,
                        save_dir=save_dir, condition=condition, seed=args.seed,
                    )
                except user_errors() as e:
                    raise CommandError(first_line(e)) from None
                rows.append({**row, "model": name})
                for skip in row["skipped"]:
                    print(f"msrnet benchmark: skipped {row['dataset']}/{skip['name']}: {skip['reason']}", file=sys.stderr)
    _print_rows(rows, args.json)
    skipped = sum(len(r["skipped"]) for r in rows)
    if skipped:
        print(f"msrnet benchmark: {skipped} images skipped (listed above); the scores leave them out", file=sys.stderr)
        return 1
    return 0


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """The scores: one JSON list, or a table with one line per (dataset, scale, condition)."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    header = (
        f"{'model':<20} {'dataset':<12} {'scale':>5} {'input':<14} {'PSNR (dB)':>10} {'SSIM':>7} "
        f"{'images':>6} {'skipped':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<20} {r['dataset']:<12} {'x' + str(r['scale']):>5} {r.get('condition', 'clean'):<14} "
            f"{r['psnr']:>10.2f} {r['ssim']:>7.4f} {r['images']:>6} {len(r['skipped']):>7}"
        )


def saved(args: argparse.Namespace) -> str:
    """What an interrupted benchmark leaves: no scores, and the images saved so far."""
    saved = f"; the images saved so far are in {args.save_images}" if args.save_images else ""
    return f"no scores were printed{saved}"
