"""Training throughput of the reference trainer; prints one JSON object.

Runs `msrnet.train.train` itself (sampler, pyramid loss, AdamW, clipping, EMA, scheduler) on
generated images for ``2 * steps`` steps and reports the second half (the first absorbs start-up,
cudnn autotuning and compilation). Model FLOPs per step (forward + backward) are counted once with
``torch.utils.flop_counter.FlopCounterMode``; on CUDA the achieved rate is compared with the H100's
dense bf16 peak (989 TFLOP/s).

    python benchmarks/train_speed.py --device cpu --batch-size 2 --steps 2
    python benchmarks/train_speed.py --device cuda --batch-size 64 --steps 50 --compile
    python benchmarks/train_speed.py --device cuda --batch-size 64 --steps 50 --compile-mode reduce-overhead

``--cpu-modes`` measures the four CPU modes side by side in one run, one JSON row each, for every
``--model`` given: ``fp32-eager``, ``bf16-eager``, ``fp32-compiled``, ``bf16-compiled`` (bf16:
autocast; compiled: inductor, the regional compile of the blocks), each with its seconds per
step, HR pixels per second, compile seconds (the first step's extra time) and ``vs_fp32_eager``.
On a CPU without native bf16 (`msrnet.device.cpu_has_native_bf16`) the bf16 rows are still run,
emulated, to show what they would cost; the last line is the JSON list of all rows:

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --device cpu --cpu-modes \
        --model msr_small_x4 --batch-size 16 --patch-size 24 --json

``hr_pixels_per_s`` (samples/s times the HR patch's pixels) compares patch sizes: a step on
larger patches trains on more pixels for less overhead per pixel.

Also reported: the patch sampler's own time per batch and its share of a step, and with
``--degradation`` (a preset of `msrnet.data.degradations`), what the degradation adds to it:

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --device cpu --model msr_small_x4 \
        --batch-size 16 --patch-size 24 --steps 30 --degradation web
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from msrnet import create_model
from msrnet.data import InMemoryPatchSampler
from msrnet.device import cpu_has_native_bf16
from msrnet.train import TrainConfig, train
from msrnet.train import trainer as trainer_module
from msrnet.train.config import COMPILE_MODES

CPU_MODES = ("fp32-eager", "bf16-eager", "fp32-compiled", "bf16-compiled")

H100_BF16_DENSE_TFLOPS = 989.0


def _model_flops(
    model_name: str, batch_size: int, patch_size: int, model_kwargs: dict[str, Any]
) -> int:
    """FLOPs of one forward + backward of the model on a (B, 3, p, p) batch (on the meta device).

    The pixel losses and the optimizer are elementwise, negligible next to the convolutions.
    """
    with torch.device("meta"):
        model = create_model(model_name, **model_kwargs)
        lr = torch.rand(batch_size, 3, patch_size, patch_size)
    with FlopCounterMode(display=False) as counter:
        torch.stack([o.mean() for o in model.forward_pyramid(lr)]).sum().backward()
    return counter.get_total_flops()


def _time_sampler(sampler: InMemoryPatchSampler, batches: int) -> float:
    """Seconds per batch of the patch sampler alone (after one warm-up batch)."""
    sampler.sample()
    if sampler.device.type == "cuda":
        torch.cuda.synchronize(sampler.device)
    start = time.perf_counter()
    for _ in range(batches):
        sampler.sample()
    if sampler.device.type == "cuda":
        torch.cuda.synchronize(sampler.device)
    return (time.perf_counter() - start) / batches


def measure(
    model: str = "msr_x4",
    batch_size: int = 32,
    patch_size: int = 48,
    steps: int = 20,
    device: str | None = None,
    compile: bool = False,
    loss: str = "charbonnier",
    model_kwargs: dict[str, Any] | None = None,
    degradation: str = "bicubic",
    compile_mode: str | None = None,
    amp: bool = True,
) -> dict[str, Any]:
    """Train ``2 * steps`` steps on generated images; throughput of the second half.

    ``compile_mode`` (a `TrainConfig` field: None for the regional compile of the blocks, or a
    ``torch.compile`` mode for the whole forward) applies with ``compile``.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model_kwargs = model_kwargs or {}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(
                images / f"{i}.png"
            )
        config = TrainConfig(
            train_dir=str(images),
            output_dir=str(Path(tmp) / "run"),
            model=model,
            model_kwargs=model_kwargs,
            max_steps=2 * steps,
            batch_size=batch_size,
            patch_size=patch_size,
            loss=loss,
            log_every=steps,
            ckpt_every=10**9,  # only the final one
            device=str(dev),
            compile=compile,
            compile_mode=compile_mode if compile else None,
            progress=False,
            degradation=degradation,
            amp=amp,
        )
        summary = train(config)
        log = [
            json.loads(line) for line in (Path(tmp) / "run" / "log.jsonl").read_text().splitlines()
        ]
        with torch.device("meta"):  # only the scale is needed: no weights are allocated
            scale = create_model(model, **model_kwargs).scale
        samplers = {
            name: InMemoryPatchSampler(
                images, scale, patch_size, batch_size, device=dev, progress=False, degradation=name
            )
            for name in dict.fromkeys(("bicubic", degradation))
        }
        seconds = {name: _time_sampler(sampler, steps) for name, sampler in samplers.items()}
        sample_seconds = seconds[degradation]
        degrade_seconds = seconds[degradation] - seconds["bicubic"]
    samples_per_s = log[-1]["samples_per_s"]
    step_seconds = batch_size / samples_per_s
    flops_per_step = _model_flops(model, batch_size, patch_size, model_kwargs)
    tflops = flops_per_step / batch_size * samples_per_s / 1e12
    return {
        "model": model,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "patch_size": patch_size,
        "timed_steps": steps,
        "compile": compile,
        "compile_mode": compile_mode if compile else None,
        "amp_bf16": summary["amp_bf16"],
        "first_step_s": summary["seconds"]["first_step"],
        # What the first step costs beyond a timed one: compilation (and autotuning).
        "compile_s": round(summary["seconds"]["first_step"] - batch_size / log[-1]["samples_per_s"], 2),
        # Patch making (crop, augment, MATLAB-bicubic LR) is part of every step.
        "patch_ms_per_step": round(sample_seconds * 1000, 3),
        "patch_share_of_step": round(sample_seconds / step_seconds, 4),
        "degradation": degradation,
        # What degrading the LR patches adds to the clean bicubic patches.
        "degradation_ms_per_step": round(degrade_seconds * 1000, 3),
        "degradation_share_of_step": round(degrade_seconds / step_seconds, 4),
        "samples_per_s": round(samples_per_s, 3),
        "steps_per_s": round(samples_per_s / batch_size, 4),
        # What a larger patch buys shows here, not in samples/s: the HR pixels trained on.
        "hr_pixels_per_s": round(samples_per_s * (patch_size * scale) ** 2),
        "model_gflops_per_sample": round(flops_per_step / batch_size / 1e9, 2),
        "achieved_tflops": round(tflops, 4),
        "h100_bf16_peak_fraction": round(tflops / H100_BF16_DENSE_TFLOPS, 4)
        if dev.type == "cuda"
        else None,
    }


@contextlib.contextmanager
def _bf16_granted(forced: bool) -> Iterator[None]:
    """With ``forced``, the trainer runs bf16 autocast even where the CPU only emulates it."""
    if not forced:
        yield
        return
    with mock.patch.object(trainer_module, "amp_enabled", lambda config, device: (config.amp, "forced")):
        yield


def cpu_modes(models: list[str], batch_size: int, patch_size: int, steps: int) -> list[dict[str, Any]]:
    """One row per (model, mode of `CPU_MODES`), measured one after the other in this process."""
    rows = []
    for model in models:
        base = None
        for mode in CPU_MODES:
            bf16, compiled = mode.startswith("bf16"), mode.endswith("compiled")
            with _bf16_granted(bf16 and not cpu_has_native_bf16()):
                row = measure(model, batch_size, patch_size, steps, "cpu", compiled, amp=bf16)
            row |= {"mode": mode, "native_bf16": cpu_has_native_bf16()}
            if base is None:
                base = row["hr_pixels_per_s"]
            row["vs_fp32_eager"] = round(row["hr_pixels_per_s"] / base, 3)
            row["s_per_step"] = round(1 / row["steps_per_s"], 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=["msr_x4"], nargs="+", help="one or more (with --cpu-modes)")
    parser.add_argument("--model-kwargs", type=json.loads, default={}, help="JSON")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=48, help="LR patch side")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (as many again warm up)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--compile-mode", default=None, choices=COMPILE_MODES,
                        help="torch.compile the whole forward in this mode (implies --compile; "
                        "default: the regional compile of the blocks)")
    parser.add_argument("--loss", default="charbonnier")
    parser.add_argument("--degradation", default="bicubic", help="bicubic, web, real or a JSON file")
    parser.add_argument("--cpu-modes", action="store_true", help=f"measure {', '.join(CPU_MODES)} side by side")
    parser.add_argument("--no-amp", action="store_true", help="fp32 even where bf16 autocast is available")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    if args.cpu_modes:
        if args.device not in (None, "cpu"):
            parser.error("--cpu-modes measures the CPU: drop --device or pass --device cpu")
        print(json.dumps(cpu_modes(args.model, args.batch_size, args.patch_size, args.steps)))
        return
    if len(args.model) != 1:
        parser.error("several --model values need --cpu-modes")
    result = measure(
        args.model[0], args.batch_size, args.patch_size, args.steps, args.device,
        args.compile or args.compile_mode is not None, args.loss, args.model_kwargs, args.degradation,
        args.compile_mode, not args.no_amp,
    )
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
