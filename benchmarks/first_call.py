"""Where the first `msrnet.upscale` call's extra time goes, in a fresh interpreter.

A process that upscales one image pays, in order: importing torch, importing timm (which
imports torchvision and, through it, ``torch._dynamo``), building the model and loading its
weights (sha256-checked), and then the first call, which runs the memory probe of
``tile='auto'`` (`msrnet.inference.auto_tile_size`: two small forwards under a dispatch mode that
counts live tensors) and pays the first forward's one-time start-up (oneDNN's kernel creation,
thread pools). The next calls pay neither. Since 0.1.x the probe runs on the meta device
(shapes only, no kernels); ``--real-probe`` measures it as it was, with two real forwards. Each ``--runs`` is a fresh subprocess; the JSON gives
wall-clock and CPU (process) seconds of each step, and the median over runs.

    python benchmarks/first_call.py                         # msr_x4, the 128x128 sample portrait
    python benchmarks/first_call.py --model msr_small_x4 --runs 3
    python benchmarks/first_call.py --real-probe            # the probe as it was before

CPU only. On a shared machine the wall-clock seconds vary with the load; the CPU seconds less so.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

# The child: one step after another, each timed with perf_counter (wall) and process_time (CPU).
CHILD = r"""
import json, sys, time
steps = {}
def timed(name, fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    steps[name] = (time.perf_counter() - w, time.process_time() - c)
    return out
model_name, real_probe = sys.argv[1], sys.argv[2] == "real"
torch = timed("import torch", lambda: __import__("torch"))
timed("import timm (torchvision, torch._dynamo)", lambda: __import__("timm"))
import msrnet, msrnet._tiles as _tiles, msrnet.inference as inference
from importlib.resources import files
from PIL import Image
if real_probe:
    _tiles._meta_peaks = lambda *args: None
model = timed("create_model(pretrained=True)", lambda: msrnet.create_model(model_name, pretrained=True))
image = Image.open(str(files("msrnet") / "assets" / "astronaut.png")).convert("RGB")
for i in range(3):
    timed(f"upscale call {i + 1}", lambda: msrnet.upscale(model, image))
# The first call's parts, measured in a second model (same weights): its own probe, then a call.
fresh = msrnet.create_model(model_name, pretrained=True)
timed("memory probe (auto_tile_size) of a second model", lambda: inference.auto_tile_size(fresh))
print(json.dumps({"image": list(image.size), "threads": torch.get_num_threads(), "steps": steps}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="msr_x4")
    p.add_argument("--runs", type=int, default=3, help="fresh processes (default: 3)")
    p.add_argument("--real-probe", action="store_true", help="probe with two real forwards, as before")
    args = p.parse_args(argv)

    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, args.model, "real" if args.real_probe else "meta"],
            capture_output=True, text=True, check=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    names = list(runs[0]["steps"])
    median = {
        name: {
            "wall_s": round(statistics.median(r["steps"][name][0] for r in runs), 2),
            "cpu_s": round(statistics.median(r["steps"][name][1] for r in runs), 2),
        }
        for name in names
    }
    first, later = median["upscale call 1"]["wall_s"], median["upscale call 3"]["wall_s"]
    print(json.dumps({
        "model": args.model, "image": runs[0]["image"], "threads": runs[0]["threads"],
        "probe": "real" if args.real_probe else "meta", "runs": args.runs,
        "median": median, "first_call_extra_wall_s": round(first - later, 2),
        "when": time.strftime("%Y-%m-%d"),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
