"""Inference speed of msr_x2/x4/x8 against peer SR networks, in one process, on the same input.

For every scale, each network up-scales the same random batch to a 1080p output (input 960x540
at x2, 480x270 at x4, 240x135 at x8), in fp32 and bf16, channels_last, eager and
``torch.compile``-d (``--compile-mode``, default ``max-autotune`` on CUDA, which adds CUDA graphs).
A reduced dtype runs as `msrnet.upscale` runs it: the weights cast once, the input cast, no
autocast (which would cast every weight again on every call). Reported per run:
latency (median), output megapixels per second, GFLOP per frame (2 x the multiply-adds of convs
and matmuls, counted with ``torch.utils.flop_counter.FlopCounterMode``), achieved TFLOP/s and,
on CUDA, its share of the H100's dense bf16 peak, and the ratio of each peer's latency to msr's
at the same scale, dtype and compile setting (> 1: the peer is slower).

Peers, with random weights (speed does not depend on them) and their papers' standard configs:
spandrel's RCAN (10x20 blocks, 64 channels), SwinIR (classical SR: 6x6 blocks, 180 channels,
window 8) and SPAN (48 channels); EDSR and EDSR-baseline, which spandrel does not ship, are
defined below exactly as BasicSR's ``EDSR`` (32 blocks x 256 channels, residual scale 0.1;
16 x 64).

    python benchmarks/speed.py                       # full sizes; meant for a GPU
    python benchmarks/speed.py --quick               # 128x128 outputs, a few iterations: CPU
    python benchmarks/speed.py --scales 4 --batch 8 --dtypes bf16 --models msr edsr
    python benchmarks/speed.py --scales 4 --models msr edsr_baseline --compile msr edsr_baseline \
        --compile-mode reduce-overhead

On the CPU, ``--cpu-modes`` runs every model in the four modes side by side (``fp32-eager``,
``bf16-eager``, ``fp32-compiled``, ``bf16-compiled``: both dtypes, every model compiled too) and
adds each row's ``mode`` and ``vs_fp32_eager`` (its speed over the same model's fp32 eager):

    OMP_NUM_THREADS=1 python benchmarks/speed.py --cpu-modes --quick --threads 1 --scales 4 \
        --models msr_small msr_medium msr edsr_baseline span

Prints a table on stderr and JSON on stdout. Needs ``pip install "msrnet[spandrel]"`` (spandrel).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import msrnet

H100_BF16_DENSE_TFLOPS = 989.0
DEFAULT_OUTPUT = (1920, 1080)
QUICK_OUTPUT = (128, 128)


# --- EDSR (BasicSR's definition; spandrel has no EDSR) ---------------------------------------
class _ResBlock(nn.Module):
    def __init__(self, feats: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(feats, feats, 3, padding=1)
        self.conv2 = nn.Conv2d(feats, feats, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(x))) * self.res_scale


class EDSR(nn.Module):
    """Lim et al. 2017, as BasicSR builds it: head conv, residual blocks, pixel-shuffle tail."""

    def __init__(self, scale: int, feats: int = 64, blocks: int = 16, res_scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.mean: Tensor
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1))
        self.head = nn.Conv2d(3, feats, 3, padding=1)
        self.body = nn.Sequential(*(_ResBlock(feats, res_scale) for _ in range(blocks)))
        self.body_tail = nn.Conv2d(feats, feats, 3, padding=1)
        up: list[nn.Module] = []
        factors = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
        for f in factors:
            up += [nn.Conv2d(feats, feats * f * f, 3, padding=1), nn.PixelShuffle(f)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(feats, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(x - self.mean)
        x = x + self.body_tail(self.body(x))
        return self.tail(self.upsample(x)) + self.mean


# --- the networks ------------------------------------------------------------------------------
def _spandrel_peers() -> dict[str, Callable[[int], nn.Module]]:
    try:
        from spandrel.architectures.RCAN import RCAN
        from spandrel.architectures.SPAN import SPAN
        from spandrel.architectures.SwinIR import SwinIR
    except ImportError:
        print('spandrel is not installed (pip install "msrnet[spandrel]"): skipping RCAN, SwinIR, SPAN',
              file=sys.stderr)
        return {}
    return {
        "rcan": lambda s: RCAN(scale=s, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16),
        "swinir": lambda s: SwinIR(
            upscale=s, in_chans=3, img_size=48 if s == 4 else 64, window_size=8, img_range=1.0,
            depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2,
            upsampler="pixelshuffle", resi_connection="1conv",
        ),
        "span": lambda s: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=s),
    }


def builders() -> dict[str, Callable[[int], nn.Module]]:
    return {
        "msr": lambda s: msrnet.create_model(f"msr_x{s}"),
        "msr_small": lambda s: msrnet.create_model(f"msr_small_x{s}"),
        "msr_medium": lambda s: msrnet.create_model(f"msr_medium_x{s}"),
        "edsr": lambda s: EDSR(s, feats=256, blocks=32, res_scale=0.1),
        "edsr_baseline": lambda s: EDSR(s, feats=64, blocks=16),
        **_spandrel_peers(),
    }


# --- measuring ---------------------------------------------------------------------------------
def count_flops(model: nn.Module, x: Tensor) -> float:
    """FLOPs (2 x multiply-adds of convs and matmuls) of one forward on ``x``, on the meta device."""
    meta_model = copy.deepcopy(model).to("meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta_model(torch.empty(x.shape, device="meta"))
    return float(counter.get_total_flops())


def time_forward(fn: Callable[[], Tensor], device: torch.device, warmup: int, iters: int) -> list[float]:
    """Seconds of each of ``iters`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


def measure(
    name: str, scale: int, model: nn.Module, x: Tensor, dtype: torch.dtype, compiled: bool,
    args: argparse.Namespace,
) -> dict[str, Any]:
    device = x.device
    # The weights in ``dtype`` once, as msrnet.upscale holds them; the caller's model stays fp32.
    typed = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    run_model: Callable[[Tensor], Tensor] = typed
    if compiled:
        mode = args.compile_mode if device.type == "cuda" else None
        run_model = torch.compile(typed, mode=mode, dynamic=False)

    def fn() -> Tensor:
        with torch.inference_mode():
            # The input's cast and the output's return to fp32 are part of a reduced-dtype call.
            return run_model(x.to(dtype)).float()

    t0 = time.perf_counter()
    out = fn()  # the first call compiles
    first_call = time.perf_counter() - t0
    # Read before more calls: CUDA graph replays reuse an output's memory.
    out_pixels = out.shape[0] * out.shape[-2] * out.shape[-1]
    out_size = f"{out.shape[-1]}x{out.shape[-2]}"
    times = time_forward(fn, device, args.warmup, args.iters)
    latency = statistics.median(times)
    return {
        "model": name,
        "scale": scale,
        "input": f"{x.shape[-1]}x{x.shape[-2]}",
        "output": out_size,
        "batch": x.shape[0],
        "dtype": str(dtype).removeprefix("torch."),
        "compiled": compiled,
        "latency_ms": round(latency * 1000, 3),
        "output_mp_per_s": round(out_pixels / latency / 1e6, 3),
        "first_call_s": round(first_call, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="subset of: msr msr_small edsr edsr_baseline rcan swinir span")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8], choices=[2, 4, 8])
    parser.add_argument("--size", default=None, help="output size WxH (default 1920x1080; --quick: 128x128)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", nargs="+", default=None, metavar="MODEL",
                        help="which models also run torch.compile-d: none, all, or model names "
                        "(default: all on CUDA, msr on CPU)")
    parser.add_argument("--compile-mode", default="max-autotune",
                        help="torch.compile's mode on CUDA (max-autotune also tunes every "
                        "convolution, which takes minutes; reduce-overhead adds CUDA graphs only)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=None, help="default 10 (--quick: 1)")
    parser.add_argument("--iters", type=int, default=None, help="default 30 (--quick: 3)")
    parser.add_argument("--quick", action="store_true", help="small outputs and few iterations, for the CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    parser.add_argument("--cpu-modes", action="store_true",
                        help="the CPU's four modes side by side: fp32 and bf16, eager and compiled, every model")
    args = parser.parse_args()
    if args.cpu_modes:
        if args.device != "cpu" and torch.cuda.is_available():
            parser.error("--cpu-modes measures the CPU: add --device cpu")
        args.device, args.dtypes, args.compile = "cpu", ["fp32", "bf16"], ["all"]

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = map(int, args.size.split("x")) if args.size else (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10)
    args.iters = args.iters if args.iters is not None else (3 if args.quick else 30)
    compile_which = set(args.compile or (["all"] if device.type == "cuda" else ["msr"]))
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    available = builders()
    names = args.models or list(available)
    unknown = set(names) - set(available)
    if unknown:
        parser.error(f"unknown or unavailable models: {sorted(unknown)}")
    unknown_compiled = compile_which - set(available) - {"none", "all"}
    if unknown_compiled:
        parser.error(f"--compile: unknown models {sorted(unknown_compiled)}")

    torch.manual_seed(0)
    results: list[dict[str, Any]] = []
    for scale in args.scales:
        x = torch.rand(args.batch, 3, height // scale, width // scale, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        for name in names:
            # Module.to's stubs leave out memory_format, which it takes.
            model = available[name](scale).eval().to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
            flops = count_flops(model, x)
            params = sum(p.numel() for p in model.parameters())
            compile_options = [False]
            if "all" in compile_which or name in compile_which:
                compile_options.append(True)
            for dtype_name in args.dtypes:
                for compiled in compile_options:
                    try:
                        row = measure(name, scale, model, x, dtypes[dtype_name], compiled, args)
                    except Exception as e:  # noqa: BLE001 -- one network failing to compile must not end the run
                        print(f"{name} x{scale} {dtype_name} compiled={compiled}: {type(e).__name__}: {e}",
                              file=sys.stderr)
                        continue
                    tflops = flops / (row["latency_ms"] / 1000) / 1e12
                    row.update(
                        params_m=round(params / 1e6, 2),
                        gflop_per_frame=round(flops / args.batch / 1e9, 1),
                        achieved_tflops=round(tflops, 3),
                    )
                    if device.type == "cuda":
                        row["share_of_h100_bf16_peak"] = round(tflops / H100_BF16_DENSE_TFLOPS, 4)
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()

    for row in results:
        row["mode"] = f"{row['dtype'].replace('float32', 'fp32').replace('bfloat16', 'bf16')}-" + (
            "compiled" if row["compiled"] else "eager"
        )
        base = next(
            (r for r in results if r["model"] == row["model"] and r["scale"] == row["scale"]
             and r["dtype"] == "float32" and not r["compiled"]),
            None,
        )
        row["vs_fp32_eager"] = round(base["latency_ms"] / row["latency_ms"], 3) if base else None
        ref = next(
            (r for r in results if r["model"] == "msr" and all(r[k] == row[k] for k in ("scale", "dtype", "compiled"))),
            None,
        )
        row["latency_vs_msr"] = round(row["latency_ms"] / ref["latency_ms"], 2) if ref else None

    header = (f"{'model':<14}{'scale':>6}{'input':>10}{'dtype':>10}{'compiled':>9}{'ms':>10}"
              f"{'MP/s':>9}{'GFLOP':>9}{'TFLOP/s':>9}{'vs msr':>8}")
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r['model']:<14}{'x' + str(r['scale']):>6}{r['input']:>10}{r['dtype']:>10}{r['compiled']!s:>9}"
            f"{r['latency_ms']:>10.1f}{r['output_mp_per_s']:>9.3f}{r['gflop_per_frame']:>9.1f}"
            f"{r['achieved_tflops']:>9.3f}{r['latency_vs_msr'] if r['latency_vs_msr'] is not None else '-':>8}"
        )
    print("\n".join(lines), file=sys.stderr)
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch": args.batch,
        "warmup": args.warmup,
        "iters": args.iters,
        "output_size": f"{width}x{height}",
    }
    print(json.dumps({"env": env, "results": results}, indent=2))


if __name__ == "__main__":
    main()
