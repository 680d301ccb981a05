"""Step e of ``scripts/gpu_run.py``: inference time of the msr variants beside their peers.

One 1280x720 output frame at x4 (``benchmarks/speed.py``), fp32 and bf16, eager, then compiled
in each of torch.compile's modes while the deadline allows. The run's docstring says what each
row holds; this module owns which models are timed and how the rows are compared.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpu_run import Run

ROOT = Path(__file__).resolve().parents[1]
# What training leaves this step: the eager timings took 33 s in the first session
# (docs/runs/gpu-2026-11-27-a.log); the rest is a guess, until a session measures it, at what
# msr_x4's two compiles with CUDA graphs take. The other compiled rows get what is left.
INFERENCE_RESERVE_S = {"cuda": 110.0, "cpu": 25.0}
# The networks at x4, timed eager in fp32 and bf16: the msr variants and EDSR-baseline,
# and spandrel's RCAN, SwinIR and SPAN where spandrel is installed.
INFERENCE_MODELS = ("msr", "msr_medium", "msr_small", "edsr_baseline")
SPANDREL_PEERS = ("rcan", "swinir", "span")
# Timed compiled too (the CPU round's inference modes, on the GPU): the msr variants beside the
# two peers as fast as they are; RCAN and SwinIR, 4 and 34 times msr_x4's latency, are far off.
COMPILED_MODELS = ("msr", "msr_medium", "msr_small", "edsr_baseline", "span")
# torch.compile's modes after eager, each model in its own process so that one the deadline
# stops costs only its rows: CUDA graphs first (reduce-overhead: inductor's kernels replayed as
# one graph, the fastest a fixed frame size runs), then the kernels alone (default), which says
# what the graphs add. max-autotune's tuning of every convolution takes minutes.
INFERENCE_COMPILE_MODES = ("reduce-overhead", "default")


def _speed_rows(report: dict[str, Any], compile_mode: str | None) -> list[dict[str, Any]]:
    """The rows of a ``benchmarks/speed.py`` report that its process was for: eager ones
    (``compile_mode`` None) or those compiled with ``compile_mode``."""
    keys = ("model", "dtype", "latency_ms", "gflop_per_frame", "achieved_tflops", "first_call_s")
    return [{k: r[k] for k in keys} | {"compile_mode": compile_mode}
            for r in report["results"] if r["compiled"] is (compile_mode is not None)]


def _compare(rows: list[dict[str, Any]]) -> None:
    """Give each row, timed in whichever process, ``latency_vs_msr`` (its latency over msr_x4's
    in the same dtype and mode) and ``vs_fp32_eager`` (its own fp32 eager latency over its
    latency, as ``speed.py --cpu-modes`` reports on the CPU)."""
    latency = {(r["model"], r["dtype"], r["compile_mode"]): r["latency_ms"] for r in rows}
    for r in rows:
        msr = latency.get(("msr", r["dtype"], r["compile_mode"]))
        eager = latency.get((r["model"], "float32", None))
        r["latency_vs_msr"] = round(r["latency_ms"] / msr, 2) if msr else None
        r["vs_fp32_eager"] = round(eager / r["latency_ms"], 3) if eager else None


def bf16_speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """fp32 latency over bf16 latency, per model and mode (``msr/eager``,
    ``edsr_baseline/reduce-overhead``, ...), where both were timed."""
    latency = {(r["model"], r["compile_mode"], r["dtype"]): r["latency_ms"] for r in rows}
    return {
        f"{model}/{mode or 'eager'}": round(ms / latency[model, mode, "bfloat16"], 3)
        for (model, mode, dtype), ms in latency.items()
        if dtype == "float32" and (model, mode, "bfloat16") in latency
    }


def inference(run: Run, args: argparse.Namespace) -> None:
    """e. The msr variants at x4 against their peers on one 1280x720 output frame, fp32 and bf16
    (weights cast once, as `msrnet.upscale` runs them), eager; then each of `COMPILED_MODELS` in
    each of `INFERENCE_COMPILE_MODES`, one process each, as long as the deadline allows."""
    peers = SPANDREL_PEERS if importlib.util.find_spec("spandrel") is not None else ()
    if not peers:
        run.log("spandrel is not installed: RCAN, SwinIR and SPAN are skipped")
    models = [*INFERENCE_MODELS, *peers]
    speed = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--scales", "4", "--dtypes", "fp32", "bf16"]
    speed += (["--quick", "--size", "64x64", "--device", "cpu"] if args.rehearse
              else ["--size", "1280x720", "--warmup", "3", "--iters", "10"])
    processes: list[tuple[str | None, list[str]]] = [(None, models)]
    if args.rehearse:
        run.log("a rehearsal compiles none: inductor on a CPU takes minutes and says nothing of a GPU")
    else:
        processes += [(mode, [m]) for mode in INFERENCE_COMPILE_MODES for m in COMPILED_MODELS if m in models]
    rows: list[dict[str, Any]] = []
    env = None
    for mode, names in processes:
        if mode is not None and run.left() < 10:
            run.log(f"{names[0]} compiled ({mode}): no time left; not timed")
            continue
        compiled = ["--compile", "none"] if mode is None else ["--compile", *names, "--compile-mode", mode]
        code, stdout = run.command([*speed, "--models", *names, *compiled], timeout=run.limit(max(5.0, run.left() - 5)))
        if code != 0:
            failure = "ran out of time" if code is None else f"exit code {code}"
            if mode is None:  # a failed step, so that it is listed as one
                raise RuntimeError(f"benchmarks/speed.py {failure}")
            run.log(f"{names[0]} compiled ({mode}): {failure}")
            continue
        report = json.loads(stdout)
        env = env or report["env"]
        new = _speed_rows(report, mode)
        rows += new
        _compare(rows)
        for row in new:
            run.log(json.dumps(row))
        run.save("inference", {"env": env, "rows": rows, "bf16_speedup": bf16_speedups(rows)})
    run.log(f"bf16 speed-up over fp32: {bf16_speedups(rows)}")
