"""Do the shipped models survive fp16 and bf16 weights? Output change vs fp32 per dtype (JSON).

spandrel-based tools (ComfyUI, chaiNNer) cast the whole model and its input to the dtype that a
descriptor's ``supports_half`` / ``supports_bfloat16`` allow, not autocast, so this script does
the same: ``model.to(dtype)(lr.to(dtype))``, the output rounded to uint8 as an image would be.
For each model and dtype it reports whether every output was finite, the Y-PSNR against the
fp32 output (borders included) and the largest change in uint8 levels.
msrnet.integrations.spandrel sets its flags from this.

Inputs are ``imresize(HR, 1/8)`` of Set5 (MATLAB bicubic on uint8) for every model, which keeps
a CPU run to minutes; precision problems (overflow, lost detail) do not depend on image size.

    python benchmarks/precision.py                        # ../shared/data/Set5, on the CPU
    python benchmarks/precision.py --sets Set5 Set14 --device cuda
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

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--sets", nargs="+", default=["Set5"])
    parser.add_argument("--models", nargs="+", default=["msr_x2", "msr_x4", "msr_x8"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    inputs = []
    for set_name in args.sets:
        for path in list_images(Path(args.data) / set_name):
            lr = bicubic_degrade(mod_crop(read_image(path, 3), 8), 8)
            inputs.append(torch.from_numpy(lr.transpose(2, 0, 1).copy()).float()[None] / 255)
    start = time.perf_counter()
    results = []
    for name in args.models:
        model = create_model(name, pretrained=True).eval().to(args.device)
        reference = [quantize(model(x.to(args.device)).cpu()) for x in inputs]
        row: dict[str, object] = {"model": name, "images": len(inputs)}
        for dtype_name, dtype in DTYPES.items():
            model.to(dtype)
            finite, diffs, scores = True, [], []
            for x, ref in zip(inputs, reference):
                y = model(x.to(args.device, dtype)).float().cpu()
                finite &= bool(torch.isfinite(y).all())
                levels = quantize(y)
                diffs.append(int((levels - ref).abs().max()))
                scores.append(float(psnr(levels / 255, ref / 255, 0)))
            row[dtype_name] = {"finite": finite, "max_uint8_diff": max(diffs),
                               "psnr_vs_fp32": round(float(np.mean(scores)), 2) if np.isfinite(np.mean(scores)) else "identical"}
            model.float()
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"lr": "imresize(HR, 1/8)", "sets": args.sets, "device": args.device,
                      "torch": torch.__version__, "seconds": round(time.perf_counter() - start, 1),
                      "results": results}))


if __name__ == "__main__":
    main()
