"""Peak memory of `msrnet.upscale` on large images: how much the stitching costs beyond the output.

Each image size runs in a fresh subprocess, which measures its own peak resident set size (RSS)
around one `upscale` call: the peak is reset through /proc/self/clear_refs just before the call
and read from VmHWM in /proc/self/status after it, and the RSS before the call (model, input and
one warm-up call loaded) is subtracted. The result is reported in units of the output's own
size (uint8 RGB, s*H x s*W x 3 bytes), which the call must allocate anyway; with ``--levels``
(``upscale(..., levels=True)``, what ``--pyramid`` and ``--outscale`` run) the output is every
level of the pyramid (x2 and x4 for x4), and the ratio is to all of them together.

The model does not change what stitching costs, only the time and the per-tile working memory,
so by default it is nearest-neighbour up-scaling (``--model nearest``: no activations, seconds
on 2 CPU cores); ``--model tiny`` runs a narrow msr network (minutes on 2 cores). With a fixed
tile the per-tile working memory is small and constant, so the ratio measures the stitching;
with ``--tile auto`` the tile grows to the memory budget, which small images then do not reach.

    python benchmarks/upscale_memory.py                      # x4, tile 128, up to 6000x4000
    python benchmarks/upscale_memory.py --model tiny --sizes 250x180 500x375 1000x750
    python benchmarks/upscale_memory.py --tile auto --kind pil
    python benchmarks/upscale_memory.py --levels             # every pyramid level, x2 + x4

Linux only (/proc). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Literal
from pathlib import Path

DEFAULT_SIZES = ("500x375", "1000x750", "1500x1000")  # LR width x height; x4: up to 6000x4000


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(
    width: int, height: int, scale: int, tile: str, overlap: int, kind: str, model_name: str,
    levels: bool = False,
) -> dict[str, object]:
    """Upscale one random (height, width, 3) uint8 image; the peak RSS the call added."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    import msrnet

    class Nearest(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = scale

            # The pyramid of a power-of-two scale, as msrnet's networks have it.
            self.level_scales = tuple(2**i for i in range(1, scale.bit_length()))

        def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [F.interpolate(x, scale_factor=s, mode="nearest") for s in self.level_scales]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")

    torch.set_num_threads(2)
    torch.manual_seed(0)
    if model_name == "nearest":
        model: torch.nn.Module = Nearest()
    else:
        model = msrnet.create_model(f"msr_x{scale}", stem_widths=(8, 8), num_blocks=2, se_ratio=0).eval()
    arr = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image: Image.Image | None = Image.fromarray(arr) if kind == "pil" else None
    tile_arg: int | Literal["auto"] | None = None if tile == "none" else "auto" if tile == "auto" else int(tile)
    # Warm-up on a small image: kernels, thread pools and the auto-tile probe are not stitching.
    msrnet.upscale(model, arr[:64, :64], tile=tile_arg, tile_overlap=overlap, levels=levels)
    before = _status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    out: object = (
        msrnet.upscale(model, arr, tile=tile_arg, tile_overlap=overlap, levels=levels) if image is None
        else msrnet.upscale(model, image, tile=tile_arg, tile_overlap=overlap, levels=levels)
    )
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    scales = getattr(model, "level_scales", (scale,)) if levels else (scale,)
    out_bytes = sum(s * height * s * width * 3 for s in scales)
    tile_used = (
        msrnet.inference.auto_tile_size(model, image_width=width, levels=levels) if tile == "auto" else tile
    )
    del out
    return {
        "lr": f"{width}x{height}",
        "hr": f"{scale * width}x{scale * height}",
        "kind": kind,
        "model": model_name,
        "levels": list(scales),
        "tile": tile_used,
        "output_mb": round(out_bytes / 2**20, 1),
        "peak_extra_mb": round((peak - before) / 2**20, 1),
        "peak_extra_over_output": round((peak - before) / out_bytes, 2),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="WxH", help="LR sizes")
    parser.add_argument("--scale", type=int, default=4, choices=(2, 4, 8))
    parser.add_argument("--tile", default="128", help="LR tile side, 'auto' or 'none'")
    parser.add_argument("--tile-overlap", type=int, default=32)
    parser.add_argument("--kind", choices=("numpy", "pil"), default="numpy", help="what upscale gets and returns")
    parser.add_argument("--model", choices=("nearest", "tiny"), default="nearest")
    parser.add_argument("--levels", action="store_true", help="every pyramid level (upscale(levels=True))")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        width, height = map(int, args.child.split("x"))
        print(json.dumps(child(width, height, args.scale, args.tile, args.tile_overlap, args.kind, args.model,
                               args.levels)))
        return
    rows = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", size, "--scale", str(args.scale), "--tile", args.tile,
               "--tile-overlap", str(args.tile_overlap), "--kind", args.kind, "--model", args.model,
               *(["--levels"] if args.levels else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            rows.append({"lr": size, "error": (proc.stderr.strip().splitlines() or ["killed"])[-1],
                         "returncode": proc.returncode})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    import torch

    print(json.dumps({"torch": torch.__version__, "scale": args.scale, "levels": args.levels, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
