"""Train msr_x2, msr_x4 and msr_x8 on the 291 images, the recipe of the pretrained weights.

The 291 images (T91 + BSD200) are the training set of LapSRN, VDSR, DRRN and MemNet, so the
results compare with theirs. Scales train in order, each larger one warm-started from the
smaller one's trunk (the stem and the shared 2x/4x blocks), as EDSR warm-starts x4 from x2.
Where the package already ships weights for a scale, that scale fine-tunes them instead, at a
quarter of the learning rate (``--finetune-lr``); a medium scale with no file of its own grows
the small file of that scale into its wider network and fine-tunes that. After each scale the EMA weights are scored on Set5 and Set14
with the field's protocol, and ``--package`` copies them into the package
(``src/msrnet/weights/<arch>.t291.safetensors``) only if there were none or both scores beat
the shipped file's, and prints the sha256 lines for ``PRETRAINED_SHA256`` in
``src/msrnet/_catalogue.py``. Where a scale starts and when its weights replace the
shipped file are the rules of ``scripts/shipping.py``, which ``scripts/gpu_run.py`` follows too.

Length: ``--max-steps`` per scale, or ``--time-budget S`` seconds of training split over the
scales 30% / 35% / 35% (x2 / x4 / x8, renormalised over the scales chosen). x2 learns the trunk
from scratch, but each larger scale adds a level the smaller one never trained and its steps
cost more (a larger HR patch, one more level of loss), so the later scales get a little more.

    # one GPU, all three scales in 5 minutes of training (the folder holds train291/, Set5/, Set14/)
    python examples/train_291.py --data-dir ../shared/data --time-budget 300 --package
    # one scale, warm-started from a finished x2 run
    python examples/train_291.py --data-dir ../shared/data --scales 4 --init runs/t291/x2/best.safetensors
    # CPU smoke run
    python examples/train_291.py --data-dir ../shared/data --device cpu --time-budget 60 \\
        --batch-size 2 --patch-size 16 --output-dir O
    # the small variants on two CPU cores, an hour and a quarter in all
    python examples/train_291.py --data-dir ../shared/data --small --device cpu \\
        --time-budget 4500 --batch-size 16 --patch-size 24 --output-dir runs/small --package

Degradation-aware weights (the ``.real`` tag): ``--degradation web`` (or ``real``, or a JSON
file; `msrnet.data.degradations`) makes the LR patches noisy and JPEG-compressed on the fly,
and ``--tag real`` fine-tunes from the shipped ``.t291`` file (or the shipped ``.real`` one,
when there is one) and names the packaged file ``<arch>.real.safetensors``. Such a run is
scored on the degraded benchmark conditions as well as the clean protocol, and ``--package``
replaces a shipped ``.real`` file only if every (set, condition) score improves.

    # msr_small_x4.real on one CPU core, 80 minutes
    python examples/train_291.py --data-dir ../shared/data --small --device cpu --scales 4 \
        --degradation web --tag real --time-budget 4800 --batch-size 16 --patch-size 24 \
        --output-dir runs/real-x4 --package

A run killed on the way (a timed one checkpoints every ``TIMED_CKPT_EVERY`` steps) continues
with the same arguments and ``--resume``: each scale whose folder holds a checkpoint resumes
from it (a finished one is only scored again), the others start, and all are scored and
packaged as in one run.

Outputs go to ``--output-dir`` (default ``runs/t291``): ``x<s>/`` per scale with the trainer's
files (``best.safetensors``, ``log.jsonl``, ``config.json``, ``checkpoint.pt``) and
``results.json``, one row per scale and set, as ``msrnet benchmark --json`` prints them, plus
the run's ``steps``, ``train_seconds`` and, where weights shipped before, the shipped file's
``shipped_psnr`` and whether the new weights ``replace`` it. ``results.json`` is rewritten
after every scale, so an interrupted run keeps what it finished.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from msrnet.models import default_level_scales
from msrnet.train import TrainConfig, train
from msrnet.train.checkpoint import CHECKPOINT_NAME
from msrnet.train.config import COMPILE_MODES, float_list

ROOT = Path(__file__).resolve().parents[1]
# The shipping rules are release tooling beside scripts/gpu_run.py, not part of the package.
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
from shipping import compare_with_shipped, compare_with_small, needs_small_bar, ship, small_variant, warm_start  # noqa: E402

PACKAGE_WEIGHTS = ROOT / "src" / "msrnet" / "weights"
BUDGET_SHARES = {2: 0.30, 4: 0.35, 8: 0.35}
# Peak learning rate from scratch or from a smaller scale's trunk; trained weights of the same
# model (a shipped file, or the small one grown into a medium network) are fine-tuned at a
# fraction of it.
LR = 1e-3
FINETUNE_LR_FRACTION = 0.25
# About ten minutes of one CPU core for msr_medium; a checkpoint costs well under a second.
TIMED_CKPT_EVERY = 250


def split_budget(total: float, scales: list[int]) -> list[float]:
    """Seconds of training per scale, in the order of ``scales``."""
    weights = [BUDGET_SHARES[s] for s in scales]
    return [total * w / sum(weights) for w in weights]


def _level_weights(weights: tuple[float, ...] | None, scale: int) -> tuple[float, ...] | None:
    """The last of ``weights``, one per pyramid level of a x``scale`` model."""
    if weights is None:
        return None
    return weights[-len(default_level_scales(scale)):]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding train291/, Set5/, Set14/")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8], choices=(2, 4, 8))
    p.add_argument("--max-steps", type=int, nargs="+", default=None,
                   help="per scale, in order (default 6000 5000 4000; a cap with --time-budget)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="seconds of training for all scales together, split 30/35/35")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patch-size", type=int, default=48, help="LR patch side")
    p.add_argument("--lr", type=float, default=LR, help="peak lr from scratch or a warm start")
    p.add_argument("--finetune-lr", type=float, default=None,
                   help="peak lr when fine-tuning shipped weights (default: a quarter of --lr)")
    p.add_argument("--loss", default="charbonnier")
    p.add_argument("--degradation", default="bicubic",
                   help="how LR patches are made: bicubic (the protocol), web, real, or a JSON file")
    p.add_argument("--tag", default="t291",
                   help="pretrained tag of the packaged files (t291; real for degradation-aware weights)")
    p.add_argument("--level-weights", type=float_list, default=None, metavar="X,Y,..",
                   help="loss weight of each pyramid level of the largest scale, coarse first "
                   "(default: equal); a smaller scale takes the last ones (as msrnet train's option)")
    variant = p.add_mutually_exclusive_group()
    variant.add_argument("--small", action="store_true", help="train msr_small_x* instead of msr_x*")
    variant.add_argument("--medium", action="store_true", help="train msr_medium_x* instead of msr_x*")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="non-default architecture (JSON)")
    p.add_argument("--init", default=None, help="weights the first scale starts from")
    p.add_argument("--output-dir", type=Path, default=Path("runs/t291"))
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model's blocks (default: on a CPU, not on CUDA)")
    p.add_argument("--compile-mode", default=None, choices=COMPILE_MODES,
                   help="torch.compile the whole forward in this mode, e.g. reduce-overhead (CUDA "
                   "graphs; implies --compile; default: the regional compile of the blocks)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true", help="replace earlier runs in --output-dir")
    again.add_argument("--resume", action="store_true",
                       help="continue each scale whose folder holds a checkpoint (a run killed on the "
                       "way; the same arguments), then score and package it as usual")
    p.add_argument("--package", action="store_true",
                   help="copy weights that beat the shipped ones into src/msrnet/weights/")
    p.add_argument("--package-dir", type=Path, default=PACKAGE_WEIGHTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.package and args.model_kwargs:
        p.error("--package ships weights of the registered architectures: drop --model-kwargs")
    scales = sorted(args.scales)
    timed = args.time_budget is not None
    steps = args.max_steps or ([10**9] if timed else [6000, 5000, 4000][: len(scales)])
    if len(steps) == 1:
        steps = steps * len(scales)
    if len(steps) != len(scales):
        p.error(f"--max-steps needs one value, or one per scale ({len(scales)})")
    levels = len(default_level_scales(scales[-1]))
    if args.level_weights is not None and len(args.level_weights) < levels:
        p.error(f"--level-weights needs one weight per level of x{scales[-1]}: {levels}")
    budgets: list[float | None] = (
        list(split_budget(args.time_budget, scales)) if timed else [None] * len(scales)
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    prefix = "msr_small_x" if args.small else "msr_medium_x" if args.medium else "msr_x"

    def arch_of(scale: int) -> str:
        return f"{prefix}{scale}"

    def config(scale: int, max_steps: int, budget: float | None, init: str | None, finetune: bool) -> TrainConfig:
        folder = args.output_dir / f"x{scale}"
        return TrainConfig(
            train_dir=str(args.data_dir / "train291"),
            val_dir=str(args.data_dir / "Set5"),
            output_dir=str(folder),
            model=arch_of(scale),
            model_kwargs=args.model_kwargs,
            init_weights=init,
            max_steps=max_steps,
            time_budget=budget,
            batch_size=args.batch_size,
            patch_size=args.patch_size,
            lr=(args.finetune_lr or args.lr * FINETUNE_LR_FRACTION) if finetune else args.lr,
            warmup_steps=max(1, max_steps // 20),
            loss=args.loss,
            level_weights=_level_weights(args.level_weights, scale),
            degradation=args.degradation,
            ema_decay=0.999,
            # A timed run validates once, at its end, but checkpoints every TIMED_CKPT_EVERY steps:
            # a run killed with its shell continues (--resume) instead of starting over.
            val_every=10**9 if timed else max(1, max_steps // 4),
            ckpt_every=TIMED_CKPT_EVERY if timed else max(1, max_steps // 4),
            device=device,
            compile=True if args.compile_mode is not None else args.compile,
            compile_mode=args.compile_mode,
            overwrite=args.overwrite,
            # Where a scale never checkpointed, it starts; the trainer refuses a changed setting.
            resume=str(folder) if args.resume and (folder / CHECKPOINT_NAME).is_file() else None,
            progress=not timed,
        )

    # Every scale's settings are checked (by TrainConfig) before the first one trains.
    for scale, max_steps, budget in zip(scales, steps, budgets):
        for finetune in (False, True):
            try:
                config(scale, max_steps, budget, None, finetune)
            except ValueError as e:
                p.error(f"x{scale}: {e}")

    results: list[dict[str, Any]] = []
    chained = args.init  # the weights the next scale would warm-start from
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for index, (scale, max_steps, budget) in enumerate(zip(scales, steps, budgets)):
        arch = arch_of(scale)
        # --init is the first scale's explicit choice; later scales chain from the one before.
        start = warm_start(arch, args.tag, args.package_dir, init=args.init if index == 0 else None, chained=chained)
        summary = train(config(scale, max_steps, budget, start.weights, start.finetune))
        weights = Path(summary["weights"])
        verdict = compare_with_shipped(
            weights, arch, args.tag, args.package_dir, args.data_dir, scale, device=device, degradation=args.degradation
        )
        # A medium file (and a full-size .real one) ships only if it also beats the small file.
        small = (
            compare_with_small(verdict.scores, arch, args.tag, args.package_dir, args.data_dir, scale, device=device)
            if args.package and verdict.replace and needs_small_bar(arch, args.tag) else None
        )
        for name, score in verdict.scores.items():
            row: dict[str, Any] = score | {
                "model": arch,
                "steps": summary["step"],
                "seconds": summary["seconds"],
                "init": start.weights,
                "train_degradation": args.degradation,
            }
            if verdict.shipped is not None:
                row |= {"shipped_psnr": verdict.shipped[name]["psnr"], "replace": verdict.replace}
            if small is not None:
                if small.shipped is not None and name in small.shipped:
                    row["small_psnr"] = small.shipped[name]["psnr"]
                row["beats_small"] = small.replace
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
        (args.output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        if args.package and verdict.replace and (small is None or small.replace):
            digest = ship(weights, arch, args.tag, args.package_dir)
            print(f'    "{arch}.{args.tag}": "{digest}",', flush=True)
        elif args.package and not verdict.replace:
            print(f"{arch}: the shipped weights score higher on Set5 or Set14; kept", file=sys.stderr)
        elif args.package:
            print(f"{arch}.{args.tag}: {small_variant(arch)}.{args.tag} scores higher; not shipped", file=sys.stderr)
        chained = str(weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
