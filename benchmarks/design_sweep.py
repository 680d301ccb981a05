"""The measurements behind msrnet's default block spread and level widths.

Two parts, both printed as one JSON object:

* ``cost``: multiply-adds per LR pixel of every pyramid level of the full-size x4 and x8 models
  for three rules of level widths: constant (64 everywhere), halving (128 / s: 64, 32, 16) and
  quartering (64, 16, 4). The default is the rule that keeps each level's cost about equal.
* ``proxy``: short, seeded training runs of narrow x4 networks (stem 64/32, 12 blocks) that
  differ only in how the 12 blocks are spread over the 2x and 4x levels, scored by Y-PSNR on a
  benchmark folder. It ranks the spreads; it is not a quality claim about the full models.
* ``small`` (``--part small``): the same proxy runs for the widths of the small variants
  (``msr_small_x*``), each candidate with its multiply-adds per LR pixel at x2, x4 and x8; only
  candidates within 0.8 M at every scale are worth running.
* ``medium`` (``--part medium``): the same for the medium variants (``msr_medium_x*``), within
  2.0 M multiply-adds per LR pixel at x4 (four times msr_small); each candidate is scored on
  every ``--val-dir`` (Set5 and Set14).

    python benchmarks/design_sweep.py --train-dir ../shared/data/train291 \
        --val-dir ../shared/data/Set5 --steps 300
    python benchmarks/design_sweep.py --part small --widths 64x32:16,64x32:24,64x40:16 \
        --train-dir ../shared/data/train291 --val-dir ../shared/data/Set5 --steps 400
    python benchmarks/design_sweep.py --part medium --widths 96x64:32,128x64:24,128x48:32 \
        --train-dir ../shared/data/train291 --val-dir ../shared/data/Set5 \
        --val-dir ../shared/data/Set14 --steps 150
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from msrnet import MultiScaleSRNet
from msrnet.data import BenchmarkDataset, InMemoryPatchSampler
from msrnet.metrics import psnr
from msrnet.ops import imresize

WIDTH_RULES = {
    "constant": lambda s: 64,
    "halving (default)": lambda s: 128 // s,
    "quartering": lambda s: max(4, 256 // s**2),
}


def level_macs(model: MultiScaleSRNet, size: int = 32) -> list[dict[str, float]]:
    """Multiply-adds per LR pixel (millions) of each level, split by where they run.

    ``lr``: the blocks' back-projection, refinement and attention, at LR resolution;
    ``hr``: up-projections, concatenate-and-compress, the skip from the previous level and the
    image head, at the level's own resolution -- the part the level widths control.
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, size, size))
    counts = {name: sum(ops.values()) / 2 / size**2 / 1e6 for name, ops in counter.get_flop_counts().items()}
    rows = []
    for i, num_blocks in enumerate(model.blocks_per_level):
        prefix = f"MultiScaleSRNet.levels.{i}"
        lr = sum(
            counts.get(f"{prefix}.blocks.{j}.{part}", 0.0)
            for j in range(num_blocks)
            for part in ("down_proj", "refine", "attn")
        )
        rows.append({"lr": round(lr, 3), "hr": round(counts.get(prefix, 0.0) - lr, 3)})
    return rows


def cost_table() -> list[dict[str, Any]]:
    rows = []
    for scale in (4, 8):
        for rule, width in WIDTH_RULES.items():
            scales = (2, 4, 8)[: {4: 2, 8: 3}[scale]]
            model = MultiScaleSRNet(scale, level_chans=[width(s) for s in scales])
            rows.append(
                {
                    "scale": scale,
                    "level_widths": rule,
                    "level_chans": [width(s) for s in scales],
                    "level_macs_m": level_macs(model),
                    "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                }
            )
    return rows


def pyramid_loss(model: MultiScaleSRNet, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    loss = lr.new_zeros(())
    for image in model.forward_pyramid(lr):
        target = hr if image.shape == hr.shape else imresize(hr, size=image.shape[-2:])
        loss = loss + F.l1_loss(image, target)
    return loss


def total_macs(model: MultiScaleSRNet, size: int = 32) -> float:
    """Multiply-adds per LR pixel of one forward, in millions."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 2 / size**2 / 1e6


def proxy_run(
    spread: tuple[int, ...] | None,
    args: argparse.Namespace,
    stem_widths: tuple[int, ...] = (64, 32),
    level_chans: tuple[int, ...] = (16, 8),
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = MultiScaleSRNet(
        4, stem_widths=stem_widths, blocks_per_level=spread, level_chans=level_chans
    )
    sampler = InMemoryPatchSampler(
        args.train_dir, 4, args.patch_size, args.batch_size, device="cpu", seed=0, progress=False
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=args.steps)
    start = time.perf_counter()
    for _ in range(args.steps):
        lr, hr = sampler.sample()
        loss = pyramid_loss(model, lr, hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    train_seconds = time.perf_counter() - start
    model.eval()
    psnrs = {}
    with torch.no_grad():
        for val_dir in args.val_dir:
            scores = []
            for item in BenchmarkDataset(val_dir, 4):
                sr = model(item["lr"][None]).clamp(0, 1)[0]
                scores.append(float(psnr((sr * 255).round() / 255, item["hr"], crop_border=4)))
            psnrs[val_dir.name] = round(sum(scores) / len(scores), 3)
    return {
        "blocks_per_level": list(model.blocks_per_level),
        "stem_widths": list(stem_widths),
        "level_chans": list(level_chans),
        # The first set's score under its old key; every set's under psnr_by_set.
        "psnr": next(iter(psnrs.values())),
        "psnr_by_set": psnrs,
        "train_seconds": round(train_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-dir", type=Path, required=True)
    parser.add_argument("--val-dir", type=Path, required=True, action="append", help="repeatable")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=24)
    parser.add_argument("--spreads", default="10-2,8-4,6-6,4-8")
    parser.add_argument("--part", choices=("spread", "small", "medium"), default="spread")
    parser.add_argument(
        "--widths",
        default="64x32:16,64x32:24,64x40:16",
        help="candidates: STEM1xSTEM2:LEVEL_WIDTH (halved at each finer level)",
    )
    args = parser.parse_args()
    setup = {
        k: v for k, v in vars(args).items() if k not in ("train_dir", "val_dir", "spreads", "widths")
    } | {"val": [d.name for d in args.val_dir], "threads": torch.get_num_threads()}
    if args.part in ("small", "medium"):
        runs = []
        for candidate in args.widths.split(","):
            stem_text, level_text = candidate.split(":")
            stem = tuple(int(w) for w in stem_text.split("x"))
            base = int(level_text)
            macs = {
                f"x{s}": round(
                    total_macs(
                        MultiScaleSRNet(
                            s, stem_widths=stem, level_chans=[max(4, base >> i) for i in range(n)]
                        )
                    ),
                    3,
                )
                for s, n in ((2, 1), (4, 2), (8, 3))
            }
            row = proxy_run(None, args, stem, (base, max(4, base >> 1)))
            runs.append(row | {"macs_per_lr_pixel_m": macs})
            print(json.dumps(runs[-1]), flush=True, file=sys.stderr)
        print(json.dumps({args.part: {"setup": setup, "runs": runs}}, indent=2))
        return
    spreads = [tuple(int(n) for n in s.split("-")) for s in args.spreads.split(",")]
    result = {
        "cost": cost_table(),
        "proxy": {
            "setup": setup,
            "runs": [proxy_run(s, args) for s in spreads],
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
