"""Do the shipped models survive fp16 and bf16 weights? Y-PSNR per dtype on Set5/Set14 (JSON).

spandrel-based tools (ComfyUI, chaiNNer) cast the whole model and its input to the dtype of a
descriptor's ``supports_half`` / ``supports_bfloat16``, not autocast, so this script does the same:
``model.to(dtype)(lr.to(dtype))``, the output rounded to uint8 as an image would be. It reports,
for each model and dtype, whether every output was finite, the mean Y-PSNR against HR and the
largest change from fp32 in uint8 levels. msrnet.integrations.spandrel sets its flags from this.

    python benchmarks/precision.py                        # ../shared/data/Set5, on the CPU
    python benchmarks/precision.py --data ../shared/data --sets Set5 Set14 --device cuda
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from msrnet.data import BenchmarkDataset
from msrnet.metrics import psnr
from msrnet.models import create_model

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--sets", nargs="+", default=["Set5"])
    parser.add_argument("--models", nargs="+", default=["msr_x2", "msr_x4", "msr_x8"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    results = []
    for name in args.models:
        base = create_model(name, pretrained=True).eval().to(args.device)
        for set_name in args.sets:
            data = BenchmarkDataset(Path(args.data) / set_name, base.scale)
            start = time.perf_counter()
            row: dict[str, object] = {"model": name, "dataset": set_name, "images": len(data)}
            reference = []
            for dtype_name, dtype in DTYPES.items():
                model = base.to(dtype)
                scores, finite, max_diff = [], True, 0
                for i, item in enumerate(data):
                    lr = item["lr"][None].to(args.device, dtype)
                    sr = model(lr).float()
                    finite &= bool(torch.isfinite(sr).all())
                    levels = torch.floor(sr.clamp(0, 1) * 255 + 0.5).cpu()
                    if dtype_name == "fp32":
                        reference.append(levels)
                    else:
                        max_diff = max(max_diff, int((levels - reference[i]).abs().max()))
                    scores.append(float(psnr(levels / 255, item["hr"][None], base.scale)))
                row[dtype_name] = {
                    "finite": finite, "psnr": round(sum(scores) / len(scores), 3), "max_uint8_diff_vs_fp32": max_diff
                }
            base.float()
            row["seconds"] = round(time.perf_counter() - start, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({"device": args.device, "torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
