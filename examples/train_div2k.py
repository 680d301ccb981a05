"""Train msrnet on DIV2K: the complete recipe for x2, x4 and x8.

The 800 DIV2K training images are decoded once into the GPU's memory (about 7 GB as uint8) and
patches are cut there; LR patches are MATLAB-bicubic down-scalings of the HR patches, as DIV2K's
own LR images are. Validation is Y-PSNR on the first ``--val-images`` DIV2K validation images
(0801, 0802, ...) or on ``--val-dir`` (e.g. Set5), scored as the field's tables score it.

    # fetch DIV2K (about 4.3 GB for x4: HR + bicubic LR of both splits) and train x4
    python examples/train_div2k.py --data-dir data/DIV2K --download --scale 4
    # 8 GPUs (download first with one process: add --max-steps 0 to only fetch the data)
    torchrun --nproc-per-node 8 examples/train_div2k.py --data-dir data/DIV2K --batch-size 8
    # continue an interrupted run where it stopped, bit for bit on the CPU
    python examples/train_div2k.py --data-dir data/DIV2K --scale 4 --resume
    # CPU smoke run on 8 images
    python examples/train_div2k.py --data-dir data/DIV2K --scale 4 --device cpu --max-steps 4 \\
        --batch-size 2 --patch-size 24 --train-images 8 --val-images 1

Outputs (``--output-dir``, default ``runs/div2k_x<scale>``): ``best.safetensors`` (fp16 EMA
weights, loadable with ``msrnet benchmark --weights runs/div2k_x4/best.safetensors``),
``checkpoint.pt``, ``log.jsonl``, ``config.json``. See docs/training.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from msrnet.data import DIV2K
from msrnet.train import TrainConfig, train

SCALES = (2, 4, 8)  # the registered msr_x2 / msr_x4 / msr_x8


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data-dir", required=True, help="folder holding (or to receive) DIV2K's official layout"
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch missing DIV2K archives (sha256-checked, resumable)",
    )
    p.add_argument("--scale", type=int, choices=SCALES, default=4)
    p.add_argument("--max-steps", type=int, default=300_000, help="0 only prepares the data")
    # 32 LR patches of 48x48 per step: the EDSR convention for DIV2K, at every scale.
    p.add_argument("--batch-size", type=int, default=32, help="patches per step per process")
    p.add_argument("--patch-size", type=int, default=48, help="LR patch side")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--loss", default="charbonnier")
    p.add_argument(
        "--train-images", type=int, default=None, help="use only the first N training images"
    )
    p.add_argument("--val-dir", default=None, help="HR validation folder (default: DIV2K_valid_HR)")
    p.add_argument(
        "--val-images", type=int, default=10, help="validation images scored (0: no validation)"
    )
    p.add_argument("--val-every", type=int, default=5000)
    p.add_argument("--ckpt-every", type=int, default=5000)
    p.add_argument("--output-dir", default=None)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model's blocks (default: on a CPU, not on CUDA)")
    p.add_argument("--resume", action="store_true", help="continue from --output-dir/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    if args.download and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        p.error(
            "download with one process first (add --max-steps 0), "
            "then start torchrun without --download"
        )
    try:
        train_set = DIV2K(args.data_dir, "train", args.scale, download=args.download)
        val_set = DIV2K(args.data_dir, "valid", args.scale, download=args.download)
    except (FileNotFoundError, RuntimeError) as e:
        print(f"train_div2k: error: {e}", file=sys.stderr)
        return 1
    if args.max_steps == 0:
        print(f"DIV2K x{args.scale} is ready in {args.data_dir}", file=sys.stderr)
        return 0

    output_dir = args.output_dir or f"runs/div2k_x{args.scale}"
    config = TrainConfig(
        train_dir=str(train_set.hr_root),
        train_images=args.train_images,
        val_dir=(args.val_dir or str(val_set.hr_root)) if args.val_images else None,
        val_images=args.val_images or None,
        output_dir=output_dir,
        model=f"msr_x{args.scale}",
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        warmup_steps=2000,
        loss=args.loss,
        ema_decay=0.999,
        grad_clip=1.0,
        val_every=args.val_every,
        ckpt_every=args.ckpt_every,
        log_every=100,
        device=args.device,
        compile=args.compile,
        seed=args.seed,
        resume=output_dir if args.resume else None,
    )
    summary = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
