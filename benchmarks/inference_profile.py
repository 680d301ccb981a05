"""What one upscaled frame runs: every aten op, counted and sized, per precision mode (JSON).

Why bf16 is barely faster than fp32 on a GPU: a step made of many small kernels is bound by
launches and memory traffic, not by arithmetic, and bf16 only speeds up arithmetic. This
script counts, for one forward pass of a model on one frame, every op that reaches the kernel
level (a `TorchDispatchMode` sees them below autocast, so the casts autocast inserts count too),
and the bytes each reads and writes:

- ``conv`` / ``conv_transpose``: convolutions (the arithmetic);
- ``cast``: dtype conversions (autocast casts every weight and bias on every call);
- ``layout``: copies that only change the memory format (channels_last <-> contiguous);
- ``cat``, ``pixel_shuffle``, ``elementwise`` (add, sub, mul, activations), ``reduction``
  (squeeze-and-excitation's mean), ``other``.

Modes: ``fp32``; ``bf16-autocast`` (what ``upscale(dtype="bf16")`` runs); ``bf16-weights``
(model and input cast to bf16 once, as spandrel-based tools run it). The op counts and bytes
do not depend on the machine; the CPU milliseconds from `torch.profiler` (``--time``) do.

    python benchmarks/inference_profile.py                          # msr_x4, 1280x720 output
    python benchmarks/inference_profile.py --model msr_small_x4 --time
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from msrnet.models import create_model

MODES = ("fp32", "bf16-autocast", "bf16-weights")
ELEMENTWISE = {
    "add", "sub", "mul", "div", "relu", "sigmoid", "silu", "gelu", "leaky_relu", "clamp",
    "hardtanh", "threshold", "add_", "mul_", "relu_", "sigmoid_", "clamp_",
}
REDUCTION = {"mean", "sum", "amax", "adaptive_avg_pool2d", "_adaptive_avg_pool2d"}
SHAPE_ONLY = {"view", "_unsafe_view", "reshape", "expand", "permute", "t", "as_strided", "slice",
              "select", "unsqueeze", "squeeze", "detach", "alias", "transpose"}


def _bytes(values: Any) -> int:
    return sum(t.nelement() * t.element_size() for t in tree_leaves(values) if isinstance(t, Tensor))


def _category(name: str, args: tuple[Any, ...], out: Any) -> str | None:
    """The kind of work an aten op does, or None for ops that move no data (views)."""
    base = name.split(".")[1] if name.startswith("aten.") else name
    if base in SHAPE_ONLY:
        return None
    if base in ("conv2d", "conv_transpose2d", "convolution", "_convolution"):
        transposed = base == "conv_transpose2d" or (base.endswith("convolution") and bool(args[6]))
        return "conv_transpose" if transposed else "conv"
    if base in ("_to_copy", "to", "copy_", "clone", "contiguous"):
        source = next((a for a in tree_leaves(args) if isinstance(a, Tensor)), None)
        result = next((t for t in tree_leaves(out) if isinstance(t, Tensor)), None)
        if source is not None and result is not None and source.dtype != result.dtype:
            return "cast"
        return "layout"
    if base == "cat":
        return "cat"
    if base in ("pixel_shuffle", "pixel_unshuffle"):
        return "pixel_shuffle"
    if base in ELEMENTWISE:
        return "elementwise"
    if base in REDUCTION:
        return "reduction"
    return "other"


class OpCounter(TorchDispatchMode):
    """Counts the ops of a forward pass by category, with the bytes they read and write."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "bytes": 0})
        self.names: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        category = _category(str(func), args, out)
        if category is not None:
            row = self.ops[category]
            row["count"] += 1
            row["bytes"] += _bytes(args) + _bytes(kwargs) + _bytes(out)
            self.names[str(func)] += 1
        return out


def _runner(model: torch.nn.Module, x: Tensor, mode: str) -> Callable[[], Tensor]:
    """One forward pass of ``model`` on ``x`` in ``mode`` (weights already in the mode's dtype)."""
    if mode == "bf16-weights":
        x = x.to(torch.bfloat16)
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if mode == "bf16-autocast" else nullcontext()

    def run() -> Tensor:
        with torch.inference_mode(), autocast:
            return model(x)

    return run


def profile(model_name: str, width: int, height: int, modes: tuple[str, ...], time_it: bool) -> list[dict[str, Any]]:
    model = create_model(model_name, pretrained=False).eval()
    scale = model.scale
    x = torch.rand(1, 3, height // scale, width // scale).contiguous(memory_format=torch.channels_last)
    model.to(memory_format=torch.channels_last)
    rows = []
    for mode in modes:
        model.to(torch.bfloat16 if mode == "bf16-weights" else torch.float32)
        run = _runner(model, x, mode)
        run()  # one-time work (oneDNN primitive creation) stays out of the counts
        with OpCounter() as counter:
            run()
        total = {"count": sum(r["count"] for r in counter.ops.values()),
                 "bytes": sum(r["bytes"] for r in counter.ops.values())}
        row: dict[str, Any] = {
            "model": model_name, "mode": mode, "output": f"{width}x{height}", "scale": scale,
            "ops": total["count"], "bytes": total["bytes"],
            "by_category": {k: dict(v) for k, v in sorted(counter.ops.items())},
            "top_ops": dict(sorted(counter.names.items(), key=lambda kv: -kv[1])[:12]),
        }
        if time_it:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                run()
            events = prof.key_averages()
            row["cpu_ms"] = round(sum(e.self_cpu_time_total for e in events) / 1e3, 2)
            row["cpu_ms_top"] = {
                e.key: round(e.self_cpu_time_total / 1e3, 2)
                for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
            }
        rows.append(row)
    model.float()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="msr_x4")
    parser.add_argument("--size", default="1280x720", help="output WIDTHxHEIGHT")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--time", action="store_true", help="add CPU milliseconds (torch.profiler)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(json.dumps(profile(args.model, width, height, tuple(args.modes), args.time), indent=1))


if __name__ == "__main__":
    main()
