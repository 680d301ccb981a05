"""Train msr_x2, msr_x4 and msr_x8 on the 291 images, the recipe of the pretrained weights.

The 291 images (T91 + BSD200) are the training set of LapSRN, VDSR, DRRN and MemNet, so the
results compare with theirs. Scales train in order, each larger one warm-started from the
smaller one's trunk (the stem and the shared 2x/4x blocks), as EDSR warm-starts x4 from x2.
After each scale the EMA weights are scored on Set5 and Set14 with the field's protocol, and
``--package`` copies them into the package (``src/msrnet/weights/<arch>.t291.safetensors``)
and prints the sha256 lines for ``PRETRAINED_SHA256`` in ``src/msrnet/models/_registry.py``.

    # one GPU, all three scales (the folder holds train291/, Set5/ and Set14/)
    python examples/train_291.py --data-dir ../shared/data --package
    # one scale, warm-started from a finished x2 run
    python examples/train_291.py --data-dir ../shared/data --scales 4 --init runs/t291/x2/best.safetensors
    # CPU smoke run
    python examples/train_291.py --data-dir ../shared/data --device cpu --max-steps 2 2 2 \\
        --batch-size 2 --patch-size 16

Outputs go to ``--output-dir`` (default ``runs/t291``): ``x<s>/`` per scale with the trainer's
files (``best.safetensors``, ``log.jsonl``, ``config.json``, ``checkpoint.pt``) and
``results.json``, one row per scale and set, as ``msrnet benchmark --json`` prints them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from msrnet._utils import sha256sum
from msrnet.evaluate import evaluate
from msrnet.train import TrainConfig, train

PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "msrnet" / "weights"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding train291/, Set5/, Set14/")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8], choices=(2, 4, 8))
    p.add_argument("--max-steps", type=int, nargs="+", default=[6000, 5000, 4000], help="per scale, in order")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patch-size", type=int, default=48, help="LR patch side")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", default="charbonnier")
    p.add_argument("--model-kwargs", type=json.loads, default={}, help="non-default architecture (JSON)")
    p.add_argument("--init", default=None, help="weights the first scale starts from")
    p.add_argument("--output-dir", type=Path, default=Path("runs/t291"))
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--package", action="store_true", help="copy the weights into src/msrnet/weights/")
    p.add_argument("--package-dir", type=Path, default=PACKAGE_WEIGHTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.package and args.model_kwargs:
        p.error("--package ships weights of the registered architectures: drop --model-kwargs")
    if len(args.max_steps) == 1:
        args.max_steps *= len(args.scales)
    if len(args.max_steps) != len(args.scales):
        p.error(f"--max-steps needs one value, or one per scale ({len(args.scales)})")

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    results = []
    init = args.init
    for scale, steps in zip(sorted(args.scales), args.max_steps):
        arch, run_dir = f"msr_x{scale}", args.output_dir / f"x{scale}"
        summary = train(
            TrainConfig(
                train_dir=str(args.data_dir / "train291"),
                val_dir=str(args.data_dir / "Set5"),
                output_dir=str(run_dir),
                model=arch,
                model_kwargs=args.model_kwargs,
                init_weights=init,
                max_steps=steps,
                batch_size=args.batch_size,
                patch_size=args.patch_size,
                lr=args.lr,
                warmup_steps=max(1, steps // 20),
                loss=args.loss,
                ema_decay=0.999,
                val_every=max(1, steps // 4),
                ckpt_every=max(1, steps // 4),
                device=device,
                compile=args.compile,
            )
        )
        weights = Path(summary["weights"])
        for dataset in ("Set5", "Set14"):
            row = evaluate(weights, args.data_dir / dataset, scale, device=device, progress=False)
            results.append(row | {"model": arch, "steps": steps})
            print(json.dumps(results[-1]), file=sys.stderr)
        if args.package:
            target = args.package_dir / f"{arch}.t291.safetensors"
            shutil.copyfile(weights, target)
            print(f'    "{arch}.t291": "{sha256sum(target)}",')
        init = str(weights)  # the next scale starts from this one's trunk

    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
