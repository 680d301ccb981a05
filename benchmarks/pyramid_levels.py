"""Are msr_x8's x2 and x4 pyramid levels as good as the dedicated msr_x2 and msr_x4? (JSON)

One LR image per HR image, ``LR = imresize(HR, 1/8)`` (MATLAB bicubic on uint8, the tables'
degradation, HR mod-cropped to 8). Every model upscales that same LR:

- x2: msr_x8's first level vs msr_x2, both against ``imresize(HR, 1/4)``;
- x4: msr_x8's second level vs msr_x4, both against ``imresize(HR, 1/2)``;
- x8: msr_x8's output against HR (for reference).

Scores are Y-PSNR with the level's scale shaved from each border (the field's protocol), in
fp32 on the CPU by default. This is the regime of ``msrnet upscale --pyramid``: one x8 pass
over the input. It is not the tables' x2 protocol (LR = HR/2), whose inputs are 16x larger.

    python benchmarks/pyramid_levels.py                           # ../shared/data Set5 Set14
    python benchmarks/pyramid_levels.py --sets Set5 --device cuda
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from msrnet.data.benchmark import bicubic_degrade, mod_crop
from msrnet.data.io import list_images, read_image
from msrnet.metrics import psnr
from msrnet.models import create_model
from msrnet.ops import quantize


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255


def _uint8(y: torch.Tensor) -> np.ndarray:
    return quantize(y[0]).to(torch.uint8).permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    models = {s: create_model(f"msr_x{s}", pretrained=True).eval().to(args.device) for s in (2, 4, 8)}
    start = time.perf_counter()
    rows = []
    for set_name in args.sets:
        scores: dict[str, list[float]] = {k: [] for k in ("x2_pyramid", "x2_dedicated", "x4_pyramid", "x4_dedicated", "x8")}
        for path in list_images(Path(args.data) / set_name):
            hr = mod_crop(read_image(path, 3), 8)
            lr = _tensor(bicubic_degrade(hr, 8)).to(args.device)
            targets = {2: bicubic_degrade(hr, 4), 4: bicubic_degrade(hr, 2), 8: hr}
            pyramid = [_uint8(y.cpu()) for y in models[8].forward_pyramid(lr)]
            for s, level in ((2, 0), (4, 1)):
                scores[f"x{s}_pyramid"].append(psnr(pyramid[level], targets[s], s))
                scores[f"x{s}_dedicated"].append(psnr(_uint8(models[s](lr).cpu()), targets[s], s))
            scores["x8"].append(psnr(pyramid[2], hr, 8))
        row = {"dataset": set_name, "images": len(scores["x8"])}
        row |= {k: round(float(np.mean(v)), 3) for k, v in scores.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"lr": "imresize(HR, 1/8)", "device": args.device, "torch": torch.__version__,
                      "seconds": round(time.perf_counter() - start, 1), "results": rows}))


if __name__ == "__main__":
    main()
