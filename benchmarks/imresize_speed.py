"""CPU throughput of msrnet.ops.imresize, PIL and torch on a DIV2K-sized image down-scaled x4.

    python benchmarks/imresize_speed.py               # JSON on stdout
    python benchmarks/imresize_speed.py --threads 1   # one core (PIL always uses one)

Throughput is megapixels of the *input* (2040x1356 RGB) per second, from the median of
``--repeats`` timed calls after one warm-up call (which also fills imresize's weight cache;
the cold first call is reported separately). The PIL and ``F.interpolate`` rows are
references: neither matches MATLAB, so ``max_abs_diff_levels`` says how far each lands from
msrnet's MATLAB-exact uint8 result, in uint8 levels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image

from msrnet.ops import imresize, quantize
from msrnet.ops.imresize import _weight_blocks


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2040)
    parser.add_argument("--height", type=int, default=1356)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    h, w, s = args.height, args.width, args.scale
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pil = Image.fromarray(img)
    u8 = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    f32 = u8.float() / 255
    megapixels = h * w / 1e6
    out_h, out_w = h // s, w // s

    _weight_blocks.cache_clear()
    start = time.perf_counter()
    imresize(f32, 1 / s)
    cold = time.perf_counter() - start

    f64 = f32.double()

    def float_levels(t: torch.Tensor) -> np.ndarray:
        return quantize(t)[0].permute(1, 2, 0).numpy()

    rows: list[tuple[str, Callable[[], Any], Callable[[Any], np.ndarray]]] = [
        ("msrnet.imresize float32", lambda: imresize(f32, 1 / s), float_levels),
        ("msrnet.imresize float64", lambda: imresize(f64, 1 / s), float_levels),
        (
            "msrnet.imresize uint8 (MATLAB's uint8 rounding)",
            lambda: imresize(u8, 1 / s),
            lambda t: t[0].permute(1, 2, 0).numpy(),
        ),
        (
            "PIL BICUBIC (reducing_gap=None)",
            lambda: pil.resize((out_w, out_h), Image.Resampling.BICUBIC, reducing_gap=None),
            np.asarray,
        ),
        (
            "torch F.interpolate bicubic antialias float32",
            lambda: F.interpolate(f32, size=(out_h, out_w), mode="bicubic", antialias=True),
            float_levels,
        ),
    ]
    reference = imresize(u8, 1 / s)[0].permute(1, 2, 0).numpy().astype(np.int64)
    results = []
    for name, fn, to_levels in rows:
        diff = np.abs(to_levels(fn()).astype(np.int64) - reference).max()
        seconds = _median_seconds(fn, args.repeats)
        results.append(
            {
                "method": name,
                "ms": round(1000 * seconds, 2),
                "input_mpix_per_s": round(megapixels / seconds, 1),
                "max_abs_diff_levels": int(diff),
            }
        )
    report = {
        "input": f"{w}x{h} RGB",
        "output": f"{out_w}x{out_h}",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "msrnet_float32_cold_ms": round(1000 * cold, 2),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
