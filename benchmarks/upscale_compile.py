"""What ``msrnet.upscale(..., compile=True)`` costs and gains on one image; prints one JSON object.

The first compiled call (inductor compiles the network, then runs the image), the first eager
call, then eager and compiled calls interleaved (so that both share the machine's load), the
best of ``--repeats`` each, in the dtype ``--dtype`` (``auto``: `msrnet.device.default_dtype`).
``images_to_win_back`` is how many images a job needs before the compile has paid for itself.

    OMP_NUM_THREADS=1 python benchmarks/upscale_compile.py --size 480x320
    OMP_NUM_THREADS=1 python benchmarks/upscale_compile.py --model msr_medium_x4 --no-pretrained \
        --baseline msr_small_x4 --size 480x320

``--baseline MODEL`` also times that model eager in fp32 in the same interleaving (what
``msrnet upscale --dtype fp32 --compile off`` runs), and reports ``vs_baseline_fp32_eager``:
the model's time with ``--dtype`` and compiled over the baseline's.
"""
from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

import torch
from PIL import Image

import msrnet
from msrnet.inference import resolve_dtype


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="msr_small_x4.real")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--image", type=Path, default=None, help="default: the bundled sample image")
    p.add_argument("--size", default=None, help="resize the image to WxH first")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--baseline", default=None, help="a model timed eager in fp32 beside it")
    args = p.parse_args()

    image_file = args.image or resources.files("msrnet") / "assets" / "astronaut.png"
    with Image.open(str(image_file)) as img:
        image = img.convert("RGB")
    if args.size:
        width, height = map(int, args.size.split("x"))
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    model = msrnet.create_model(args.model, pretrained=args.pretrained)
    dtype = resolve_dtype(args.dtype, torch.device("cpu"))

    baseline = msrnet.create_model(args.baseline, pretrained=args.pretrained) if args.baseline else None

    def seconds(mode: str) -> float:
        start = time.perf_counter()
        if mode == "baseline":
            assert baseline is not None
            msrnet.upscale(baseline, image, dtype="fp32")
        else:
            msrnet.upscale(model, image, dtype=dtype, compile=mode == "compiled")
        return time.perf_counter() - start

    first_compiled, first_eager = seconds("compiled"), seconds("eager")
    best = {"eager": float("inf"), "compiled": float("inf")}
    if baseline is not None:
        seconds("baseline")  # its first call
        best["baseline"] = float("inf")
    for _ in range(args.repeats):
        for mode in best:
            best[mode] = min(best[mode], seconds(mode))
    compile_cost = first_compiled - best["compiled"]
    saved = best["eager"] - best["compiled"]
    print(json.dumps({
        "model": args.model,
        "image": f"{image.width}x{image.height}",
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "first_compiled_call_s": round(first_compiled, 2),
        "first_eager_call_s": round(first_eager, 2),
        "eager_s": round(best["eager"], 3),
        "compiled_s": round(best["compiled"], 3),
        "compiled_vs_eager": round(best["eager"] / best["compiled"], 3),
        "images_to_win_back": round(compile_cost / saved, 1) if saved > 0 else None,
        **({
            "baseline": args.baseline,
            "baseline_fp32_eager_s": round(best["baseline"], 3),
            "vs_baseline_fp32_eager": round(best["compiled"] / best["baseline"], 3),
        } if baseline is not None else {}),
    }))


if __name__ == "__main__":
    main()
