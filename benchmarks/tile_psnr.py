"""How far tiled inference is from untiled inference: PSNR between the two outputs (JSON).

msrnet's channel attention pools over whatever it is given, so a tile sees slightly different
statistics than the whole image and tiled output cannot equal untiled output exactly (for a
network without global pooling it does; tests/test_inference.py checks that). This script
measures the gap for a real model on a real image, as uint8 RGB PSNR over every pixel, borders
included, for a grid of tile sizes and overlaps. With random weights the network's output is
mostly its bicubic image path, which tiles exactly, so the script also reports
``residual_snr_db``: the energy of what the network adds to bicubic over the energy of the
tiled-untiled difference. For a trained model, the PSNR to expect is roughly that plus the
PSNR of its output against bicubic.

    python benchmarks/tile_psnr.py                       # msr_x4, random weights, the demo image
    python benchmarks/tile_psnr.py --weights best.safetensors --image photo.png --tiles 64 128
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib.resources import files

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from msrnet.inference import upscale
from msrnet.metrics import psnr
from msrnet.models import build_model
from msrnet.ops import quantize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="msr_x4")
    parser.add_argument("--weights", default=None, help="state dict file (default: random weights)")
    parser.add_argument("--image", default=None, help="LR image (default: the packaged astronaut, 128x128)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = build_model(args.model, args.weights)
    image_path = args.image or str(files("msrnet") / "assets" / "astronaut.png")
    with Image.open(image_path) as img:
        lr = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).float() / 255

    def to_uint8(x: torch.Tensor) -> np.ndarray:
        return quantize(x).to(torch.uint8).permute(1, 2, 0).numpy()

    start = time.perf_counter()
    reference = upscale(model, lr)
    bicubic = F.interpolate(lr[None], scale_factor=model.scale, mode="bicubic")[0].clamp(0, 1)
    residual_energy = (reference - bicubic).pow(2).mean().item()
    results = []
    for tile in args.tiles:
        for overlap in args.overlaps:
            if tile < 2 * overlap:
                continue
            tiled = upscale(model, lr, tile=tile, tile_overlap=overlap)
            tiled_u8, reference_u8 = to_uint8(tiled), to_uint8(reference)
            diff = np.abs(tiled_u8.astype(np.int16) - reference_u8.astype(np.int16))
            value = psnr(tiled_u8, reference_u8, crop_border=0, y_channel=False)
            error_energy = (tiled - reference).pow(2).mean().item()
            results.append(
                {
                    "model": args.model,
                    "weights": args.weights or "random",
                    "lr_size": list(lr.shape[-2:]),
                    "tile": tile,
                    "overlap": overlap,
                    "psnr_rgb": None if math.isinf(value) else round(value, 2),
                    "max_abs_diff": int(diff.max()),
                    "share_diff_gt_1": float((diff > 1).mean()),
                    "residual_snr_db": round(10 * math.log10(residual_energy / error_energy), 2),
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"results": results, "seconds": round(time.perf_counter() - start, 1)}, indent=2))


if __name__ == "__main__":
    main()
