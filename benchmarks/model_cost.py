"""Parameters, multiply-adds per LR pixel and CPU latency of msrnet's registered models.

    python benchmarks/model_cost.py            # JSON on stdout
    python benchmarks/model_cost.py --table    # and a markdown table on stderr

Multiply-adds are counted by torch's FlopCounterMode (FLOPs / 2) on a 64x64 input and divided by
its 4096 pixels; every op here is local, so the count per pixel does not depend on the size.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

import msrnet
from msrnet import MultiScaleSRNet


def macs_per_lr_pixel(model: MultiScaleSRNet, size: int = 64) -> float:
    x = torch.rand(1, model.in_chans, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2 / (size * size)


def cpu_latency_ms(model: MultiScaleSRNet, size: int, repeats: int) -> float:
    """Median forward time in channels_last, the layout `msrnet.upscale` runs in."""
    model.to(memory_format=torch.channels_last)
    x = torch.rand(1, model.in_chans, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)  # warm-up: allocator and oneDNN primitive caches
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(name: str, size: int, repeats: int, **kwargs: Any) -> dict[str, Any]:
    model = msrnet.create_model(name, **kwargs).eval()
    return {
        "model": name,
        "scale": model.scale,
        "blocks_per_level": list(model.blocks_per_level),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "macs_per_lr_pixel_m": round(macs_per_lr_pixel(model) / 1e6, 3),
        "cpu_latency_ms": round(cpu_latency_ms(model, size, repeats), 1),
        "cpu_input": f"{size}x{size}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="LR input side for the latency")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--table", action="store_true", help="also print a markdown table to stderr")
    args = parser.parse_args()
    rows = [measure(name, args.size, args.repeats) for name in msrnet.list_models()]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "models": rows}, indent=2))
    if args.table:
        print("| model | blocks per level | params (M) | MACs / LR pixel (M) | CPU latency, 128x128 (ms) |", file=sys.stderr)
        print("| --- | --- | --- | --- | --- |", file=sys.stderr)
        for r in rows:
            print(
                f"| {r['model']} | {'/'.join(map(str, r['blocks_per_level']))} | {r['params_m']} "
                f"| {r['macs_per_lr_pixel_m']} | {r['cpu_latency_ms']} |",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
