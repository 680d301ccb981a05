"""A GPU session's whole job in one command: check, measure, train, score, time.

A GPU comes rarely and for minutes, so everything it has to do runs in one invocation that ends
by ``--deadline`` seconds (default 530) and writes its outputs as each step finishes:

a. versions and the GPU; the CUDA-only tests (``pytest -m cuda``, at most 30 s);
b. training throughput of msr_x4 (``benchmarks/train_speed.py``), eager: LR patch 48 then 64,
   each at batch 64, 128 and 256, a patch size's sweep stopping at its first out-of-memory; the
   fastest by HR pixels per second (samples/s would favour the smaller patch, which trains on
   fewer pixels) sets the batch and patch size of every training run. Then, at that size, each
   compile mode in a subprocess cut off after ``--compile-timeout`` seconds: the regional compile
   of the blocks, and the whole forward with ``mode="reduce-overhead"`` (CUDA graphs); the run
   trains with the one whose saving over the training time left most exceeds its compile time
   in every training process (if any does). Every row goes into ``results.json``, with the
   share of the step spent making patches;
c. msr_x8, msr_x4, msr_x2, then msr_small_x8/x4/x2 (``--no-small`` leaves them out), on the
   291 images (``examples/train_291.py``, one model per process), each fine-tuned from the
   packaged weights where those exist, else warm-started from the previous (larger) scale's
   trunk; each model's training budget is its share of the time then left, msr_x8's the
   largest (`BUDGET_SHARES`; a small model a quarter of its full one's, step f's models half);
d. Set5 and Set14 scores of each, on the GPU (done by ``train_291.py``);
f. (run before e, which comes last) msr_x4.real, then msr_x2.real and msr_x8.real
   (``--skip real`` leaves them out): each
   fine-tuned from the best weights at hand (a shipped ``.real`` file; else step c's ``.t291``
   weights where they beat the shipped ones, at the fine-tune rate; else the shipped ``.t291``
   file) with ``train_291.py --degradation web --tag real``, and scored on Set5 and Set14,
   clean and under every degraded benchmark condition (JPEG and noise after bicubic). The
   default degradation is ``web`` rather than the ``real`` preset: those conditions are what
   ``web`` trains for, and the shipped msr_small_x*.real files, the bar here, were trained on
   it; ``--real-degradation`` picks another. A file comes back only if it beats both the
   shipped file of its own tag and the small variant's (msr_small_x4.real for msr_x4.real) on
   every (set, degraded condition) score;
e. inference time of a 1280x720 output at x4, fp32 and bf16 (the weights cast once, as
   `msrnet.upscale` runs a reduced dtype): msr_x4 and msr_small_x4 against EDSR-baseline,
   RCAN, SwinIR and SPAN (``benchmarks/speed.py``; spandrel's peers skipped without spandrel);
   msr_x4 and EDSR-baseline also compiled with CUDA graphs; ``bf16_speedup`` is each one's fp32
   latency over its bf16 latency, and ``achieved_tflops`` its rate per multiply-add.

Into ``--out``: ``results.json`` (rewritten after every step), ``log.txt`` and, for each model
whose weights are new or beat the packaged ones (``scripts/shipping.py``'s rules),
``<arch>.t291.safetensors`` or ``<arch>.real.safetensors``, while the 8 files a device call
brings back allow (`MAX_OUT_FILES`; the small variants' files leave places for step f's, and
the log names what did not fit). Copy those into
``src/msrnet/weights/`` and their sha256, which ``log.txt`` names, into ``PRETRAINED_SHA256``
(``src/msrnet/_catalogue.py``).

    # on the GPU machine, from the repository root (data staged by scripts/stage_gpu_data.py)
    PYTHONPATH=src python3 scripts/gpu_run.py --data-dir .gpu_data --out "$OUT"
    # the same path on the CPU, narrow networks, each model trained 3 steps
    PYTHONPATH=src python3 scripts/gpu_run.py --rehearse --data-dir ../shared/data --out /tmp/r

A rehearsal is a test of paths, not of speed: it has no deadline (``--steps``: each model trains
a number of steps, and every command runs to its end, however busy the machine), so it runs
every step and trains every model on any machine. Only a hung command is stopped, after
`HANG_GUARD_S`, and step b's compile measurements, which ``--compile-timeout`` always bounds
(they decide only whether training compiles; a few steps never pay for it). ``--rehearse
--deadline S`` rehearses the deadline's arithmetic instead.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from shipping import CLEAN_TAG, compare_with_small, ship, shipped_file, warm_start

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_WEIGHTS = ROOT / "src" / "msrnet" / "weights"
SCALES = (2, 4, 8)
# Per scale, beyond its training budget: process start, data, first step, validation,
# checkpoint and the Set5/Set14 scoring (twice when fine-tuning). A first guess; after each
# scale the measured overhead replaces it.
SCALE_OVERHEAD_S = {"cuda": 30.0, "cpu": 15.0}
INFERENCE_RESERVE_S = {"cuda": 50.0, "cpu": 25.0}
# Each full-size model's weight in sharing out the training time, in the order they train:
# msr_x8 first and longest, since it is the weakest file (below msr_small_x8 on the held-out
# sets) and the one the headline call loads; then x4, then x2. Fine-tuned from the shipped
# files, no scale needs a smaller one's trunk first.
BUDGET_SHARES = {8: 0.45, 4: 0.30, 2: 0.25}
# With --small, the small variants share the training time at this weight relative to the full
# ones of the same scale: they are 14 times cheaper per step.
SMALL_SHARE = 0.25
# The `.real` full-size models (step f) train after all the t291 ones, x4 first (the scale of
# the shipped small .real file the issue names), at this weight relative to their t291 share.
REAL_ORDER = (4, 2, 8)
REAL_SHARE = 0.5
REAL_TAG = "real"
# What a device call brings back from --out: at most this many files, log and results included.
MAX_OUT_FILES = 8
# A rehearsal runs the same code on the CPU with networks small enough for it, each model
# for this many steps (the first is not timed; two more give a training time).
REHEARSAL_KWARGS = {"stem_widths": [16, 8], "num_blocks": 3}
REHEARSAL_STEPS = 3
# Without a deadline, a command is stopped only when it has hung: no step takes this long.
HANG_GUARD_S = 1800.0


class Run:
    """The clock, the log and ``results.json`` of one invocation.

    ``deadline`` None (a run of step counts) leaves every command its whole time: `left` is
    infinite and `limit` gives each command `HANG_GUARD_S`.
    """

    def __init__(self, out: Path, deadline: float | None) -> None:
        self.out = out
        self.start = time.monotonic()
        self.deadline = deadline
        self.results: dict[str, Any] = {"steps": {}}
        self.log_file = open(out / "log.txt", "a", buffering=1)  # noqa: SIM115 -- lives as long as the run

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - self.elapsed()

    def limit(self, seconds: float) -> float:
        """A command's time limit: ``seconds`` against a deadline, else only a guard against a hang."""
        return HANG_GUARD_S if self.deadline is None else seconds

    def log(self, message: str) -> None:
        line = f"[{self.elapsed():6.1f}s] {message}"
        print(line, file=sys.stderr, flush=True)
        self.log_file.write(line + "\n")

    def save(self, step: str, value: Any) -> None:
        self.results["steps"][step] = value
        self.results["elapsed_s"] = round(self.elapsed(), 1)
        tmp = self.out / "results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=2) + "\n")
        os.replace(tmp, self.out / "results.json")

    def command(self, argv: list[str], timeout: float) -> tuple[int | None, str]:
        """Run ``argv`` with ``timeout`` seconds, logging its output; (exit code or None, stdout)."""
        self.log("$ " + " ".join(argv))
        path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
        env = os.environ | {"PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        with open(self.out / "subprocess.stderr", "w") as errors:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
            )
            stop = time.monotonic() + max(1.0, timeout)
            while proc.poll() is None and time.monotonic() < stop:
                time.sleep(1.0)
            code = proc.poll()
            if code is None:
                proc.kill()
                self.log(f"stopped after {timeout:.0f} s")
            stdout = proc.communicate()[0]
        stderr = (self.out / "subprocess.stderr").read_text()
        (self.out / "subprocess.stderr").unlink()
        for line in stderr.splitlines()[-40:]:
            self.log_file.write("  | " + line + "\n")
        if code not in (0, None):
            self.log(f"exit code {code}: " + " / ".join(stderr.splitlines()[-3:]))
        return code, stdout


def _load(path: Path) -> Any:
    """A script of the repository (benchmarks/, examples/) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(run: Run, device: str) -> None:
    """a. Versions, the device, and the CUDA-only tests."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
    }
    for package in ("timm", "safetensors", "PIL", "spandrel"):
        try:
            env[package] = __import__(package).__version__
        except ImportError:
            env[package] = None
    run.log(json.dumps(env))
    run.results["env"] = env
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
            "--continue-on-collection-errors", "tests"]
    code, stdout = run.command(argv, timeout=run.limit(30))
    summary = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    run.log(f"cuda tests: {summary}")
    run.save("tests", {"exit_code": code, "summary": summary})


def _training_queue(args: argparse.Namespace) -> list[tuple[bool, int]]:
    """Step c's training processes, in order: (small, scale) for each variant trained, the
    full-size ones first, each variant's largest scale first (`BUDGET_SHARES`)."""
    if "train" in getattr(args, "skip", []):
        return []
    scales = sorted(args.scales, reverse=True)
    return [(small, scale) for small in (False, True)[: 1 + args.small] for scale in scales]


def throughput(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """b. HR pixels/s of msr_x4 for each LR patch size and batch size, eager; then each compile
    mode (`TrainConfig.compile_mode`) at the fastest of them, in a subprocess each."""
    train_speed = _load(ROOT / "benchmarks" / "train_speed.py")
    common = {"model": "msr_x4", "device": args.device, "model_kwargs": args.model_kwargs}
    rows = []
    for patch_size in args.patch_sizes:
        for batch in args.batch_sizes:
            try:
                row = train_speed.measure(batch_size=batch, patch_size=patch_size, steps=args.speed_steps, **common)
            except torch.cuda.OutOfMemoryError:
                run.log(f"patch {patch_size}, batch {batch}: out of memory; this patch size's sweep stops here")
                torch.cuda.empty_cache()
                break
            run.log(json.dumps(row))
            rows.append(row)
            run.save("throughput", {"rows": rows})
    # A larger patch trains on more pixels per sample: samples/s would favour the smaller one.
    best = max(rows, key=lambda r: r["hr_pixels_per_s"])
    choice: dict[str, Any] = {"batch_size": best["batch_size"], "patch_size": best["patch_size"],
                              "compile": False, "compile_mode": None}
    # Compilation repeats in each training process; it pays only if it saves more than that.
    queue = _training_queue(args)
    processes = len(queue) + len(_real_queue(args))
    if args.steps is None:
        training = max(0.0, run.left() - INFERENCE_RESERVE_S[args.kind])
    else:  # every model's steps at the eager speed
        training = processes * args.steps * best["batch_size"] / best["samples_per_s"]
    options = []
    for mode in args.compile_modes:
        argv = [sys.executable, str(ROOT / "benchmarks" / "train_speed.py"), "--compile",
                "--batch-size", str(best["batch_size"]), "--steps", str(args.speed_steps),
                "--patch-size", str(best["patch_size"]), "--model-kwargs", json.dumps(args.model_kwargs)]
        if mode is not None:
            argv += ["--compile-mode", mode]
        if args.device:
            argv += ["--device", args.device]
        # The compile timeout holds with or without a deadline: it bounds what step b may cost.
        code, stdout = run.command(argv, timeout=args.compile_timeout)
        if code != 0:
            options.append({"compile_mode": mode, "finished": False})
            continue
        compiled = json.loads(stdout)
        rows.append(compiled)
        run.log(json.dumps(compiled))
        # The time left shrinks by what this measurement took; the estimate uses what is left now.
        if args.steps is None:
            training = max(0.0, run.left() - INFERENCE_RESERVE_S[args.kind])
        saved = training * (1 - best["samples_per_s"] / compiled["samples_per_s"])
        cost = processes * compiled["first_step_s"]
        option = {"compile_mode": mode, "finished": True, "compile_saves_s": round(saved, 1),
                  "compile_costs_s": round(cost, 1)}
        options.append(option)
        if saved - cost > choice.get("compile_saves_s", 0.0) - choice.get("compile_costs_s", 0.0):
            choice |= {"compile": True} | option
            del choice["finished"]
    run.log(f"training with {choice}")
    run.save("throughput", {"rows": rows, "compile_options": options, "choice": choice})
    return choice


def _compile_argv(choice: dict[str, Any]) -> list[str]:
    """train_291.py's options for the compile ``choice`` of step b."""
    if not choice["compile"]:
        return ["--no-compile"]  # step b measured eager faster (train_291's default compiles on a CPU)
    mode = choice.get("compile_mode")
    return ["--compile"] + ([] if mode is None else ["--compile-mode", mode])


def _real_queue(args: argparse.Namespace) -> list[int]:
    """Step f's scales, in order (none when it is skipped)."""
    return [] if "real" in args.skip else [s for s in REAL_ORDER if s in args.scales]


def _share(small: bool, scale: int, real: bool = False) -> float:
    """A model's weight in sharing out the training time."""
    return BUDGET_SHARES[scale] * (SMALL_SHARE if small else 1.0) * (REAL_SHARE if real else 1.0)


def _budget(run: Run, args: argparse.Namespace, overhead: float, item: float, queued: list[float]) -> float:
    """One model's seconds of training: its weight ``item`` of the time left, shared with every
    model still ``queued`` (weights, its own among them), after each one's ``overhead``."""
    spare = run.left() - INFERENCE_RESERVE_S[args.kind] - overhead * len(queued)
    return spare * item / sum(queued)


def _ship_to_out(run: Run, weights: Path, arch: str, tag: str, keep_free: int = 0) -> None:
    """Copy ``weights`` into --out as ``<arch>.<tag>.safetensors`` while a device call can still
    bring it back (`MAX_OUT_FILES`, less ``keep_free`` places held for later models); log its
    sha256, or that there was no room."""
    present = [p for p in run.out.iterdir() if p.is_file() and p.name not in ("results.json.tmp", "subprocess.stderr")]
    if len(present) + keep_free >= MAX_OUT_FILES:
        run.log(f"{arch}.{tag}: no room in --out ({MAX_OUT_FILES} files); the weights stay at {weights}")
        return
    digest = ship(weights, arch, tag, run.out)
    run.log(f"{arch}.{tag}: new weights, sha256 {digest}")


def train_scales(run: Run, args: argparse.Namespace, choice: dict[str, Any]) -> None:
    """c, d. Each scale in its own process; its budget is its share of the time then left."""
    queue = _training_queue(args)
    later = [_share(False, scale, real=True) for scale in _real_queue(args)]  # step f's
    overhead = SCALE_OVERHEAD_S[args.kind]
    if choice["compile"]:
        overhead += choice["compile_costs_s"] / (len(queue) + len(later))
    args.overhead = overhead
    rows: list[dict[str, Any]] = []
    chained: dict[bool, str | None] = {False: None, True: None}  # per variant (small or not)

    while queue:
        small, scale = queue[0]
        arch = f"msr_small_x{scale}" if small else f"msr_x{scale}"
        budget: float | None = None
        if args.steps is None:
            budget = _budget(run, args, overhead, _share(small, scale), [_share(*i) for i in queue] + later)
            if budget < args.min_budget:
                run.log(f"{arch}: only {budget:.0f} s left for training; skipped")
                queue.pop(0)
                continue
        runs = args.work_dir / ("runs_small" if small else "runs")
        # BSD200's images are 321 pixels high, T91's smaller: x8 takes 32-pixel LR patches.
        patch_size = min(choice.get("patch_size", args.patch_size), 256 // scale)
        argv = [sys.executable, str(ROOT / "examples" / "train_291.py"),
                "--data-dir", str(args.data_dir), "--scales", str(scale),
                *(["--max-steps", str(args.steps)] if budget is None else ["--time-budget", f"{budget:.1f}"]),
                "--batch-size", str(choice["batch_size"]),
                "--patch-size", str(patch_size), "--output-dir", str(runs), "--overwrite",
                "--package-dir", str(args.package_dir)]
        if args.model_kwargs:
            argv += ["--model-kwargs", json.dumps(args.model_kwargs)]
        if small:
            argv.append("--small")
        if args.device:
            argv += ["--device", args.device]
        argv += _compile_argv(choice)
        # train_291.py fine-tunes shipped weights by itself; --init would override them.
        start = warm_start(arch, CLEAN_TAG, args.package_dir, chained=chained[small])
        if start.weights is not None and not start.finetune:
            argv += ["--init", start.weights]
        if budget is None:
            run.log(f"{arch}: {args.steps} steps of training")
        else:
            run.log(f"{arch}: {budget:.0f} s of training, {overhead:.0f} s expected around it")
        started = time.monotonic()
        code, _ = run.command(argv, timeout=run.limit((budget or 0.0) + 2 * overhead + 30))
        if budget is not None:
            overhead = args.overhead = max(overhead, 1.1 * (time.monotonic() - started - budget))
        results_file = runs / "results.json"
        new = json.loads(results_file.read_text()) if code == 0 and results_file.is_file() else []
        new = [r for r in new if r["model"] == arch]
        if not new and choice["compile"]:
            run.log(f"{arch}: failed with torch.compile; again without it")
            choice["compile"] = False
            continue
        queue.pop(0)
        if not new:
            run.log(f"{arch}: no result")
            continue
        rows += new
        weights = runs / f"x{scale}" / "best.safetensors"
        # train_291.py judged the weights (`shipping.compare_with_shipped`).
        if all(r.get("replace", True) for r in new):
            args.fresh_t291[arch] = str(weights)
            # Step f's full-size .real files, still to come, outrank the small .t291 ones: they
            # keep their places in what a device call brings back.
            _ship_to_out(run, weights, arch, CLEAN_TAG, keep_free=len(_real_queue(args)) if small else 0)
        chained[small] = str(weights)
        for r in new:
            run.log(f"{arch} {r['dataset']}: {r['psnr']:.3f} dB / {r['ssim']:.4f}, {r['steps']} steps")
        run.save("quality", rows)


def _score_key(row: dict[str, Any]) -> str:
    """A train_291.py result row's key in `shipping.Verdict.scores`."""
    return row["dataset"] + (f"/{row['condition']}" if row.get("condition") else "")


def train_real(run: Run, args: argparse.Namespace, choice: dict[str, Any]) -> None:
    """f. msr_x4.real, then msr_x2.real and msr_x8.real: each fine-tuned from its .t291 weights
    on ``--real-degradation`` LR patches, scored on the degraded conditions, and copied into
    --out only if it beats both the shipped file of its own and the small variant's
    (`shipping.compare_with_small`)."""
    train_291 = _load(ROOT / "examples" / "train_291.py")
    queue = _real_queue(args)
    overhead = getattr(args, "overhead", SCALE_OVERHEAD_S[args.kind])
    rows: list[dict[str, Any]] = []
    while queue:
        scale = queue[0]
        arch = f"msr_x{scale}"
        budget: float | None = None
        if args.steps is None:
            weights = [_share(False, s, real=True) for s in queue]
            budget = _budget(run, args, overhead, _share(False, scale, real=True), weights)
            if budget < args.min_budget:
                run.log(f"{arch}.{REAL_TAG}: only {budget:.0f} s left for training; skipped")
                queue.pop(0)
                continue
        runs = args.work_dir / "runs_real"
        argv = [sys.executable, str(ROOT / "examples" / "train_291.py"),
                "--data-dir", str(args.data_dir), "--scales", str(scale),
                *(["--max-steps", str(args.steps)] if budget is None else ["--time-budget", f"{budget:.1f}"]),
                "--batch-size", str(choice["batch_size"]),
                "--patch-size", str(min(choice.get("patch_size", args.patch_size), 256 // scale)),
                "--degradation", args.real_degradation, "--tag", REAL_TAG,
                "--output-dir", str(runs), "--overwrite", "--package-dir", str(args.package_dir)]
        if args.model_kwargs:
            argv += ["--model-kwargs", json.dumps(args.model_kwargs)]
        if args.device:
            argv += ["--device", args.device]
        argv += _compile_argv(choice)
        # A shipped .real file is fine-tuned further; else step c's t291 weights where they beat
        # the shipped .t291 file (or none ships), at the fine-tune rate; else the shipped .t291.
        fresh = None if shipped_file(arch, REAL_TAG, args.package_dir).is_file() else args.fresh_t291.get(arch)
        start = warm_start(arch, REAL_TAG, args.package_dir, init=fresh)
        if start.weights is not None and not start.finetune:
            argv += ["--init", start.weights, "--lr", str(train_291.LR * train_291.FINETUNE_LR_FRACTION)]
        run.log(f"{arch}.{REAL_TAG}: " + (f"{args.steps} steps" if budget is None else f"{budget:.0f} s")
                + f" of training on {args.real_degradation} LR, from {start.weights or 'scratch'}")
        started = time.monotonic()
        code, _ = run.command(argv, timeout=run.limit((budget or 0.0) + 3 * overhead + 30))
        if budget is not None:
            overhead = max(overhead, 1.1 * (time.monotonic() - started - budget))
        queue.pop(0)
        results_file = runs / "results.json"
        new = json.loads(results_file.read_text()) if code == 0 and results_file.is_file() else []
        new = [r for r in new if r["model"] == arch]
        if not new:
            run.log(f"{arch}.{REAL_TAG}: no result")
            continue
        scores = {_score_key(r): r for r in new}
        small = compare_with_small(scores, arch, REAL_TAG, args.package_dir, args.data_dir, scale,
                                   device=args.device or args.kind)
        for r in new:
            if small.shipped is not None and _score_key(r) in small.shipped:
                r["small_psnr"] = small.shipped[_score_key(r)]["psnr"]
            r["beats_small"] = small.replace
        rows += new
        for r in new:
            run.log(f"{arch}.{REAL_TAG} {_score_key(r)}: {r['psnr']:.3f} dB / {r['ssim']:.4f}, {r['steps']} steps")
        run.save("real", rows)
        # train_291.py judged them against the shipped .real file; the small one is the other bar.
        if not all(r.get("replace", True) for r in new):
            run.log(f"{arch}.{REAL_TAG}: the shipped {arch}.{REAL_TAG} scores higher somewhere; kept")
        elif not small.replace:
            run.log(f"{arch}.{REAL_TAG}: msr_small_x{scale}.{REAL_TAG} scores higher on a degraded condition; not shipped")
        else:
            _ship_to_out(run, runs / f"x{scale}" / "best.safetensors", arch, REAL_TAG)


def bf16_speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """fp32 latency over bf16 latency, per model and compile setting (``msr/eager``,
    ``edsr_baseline/compiled``, ...), where both were timed."""
    latency = {(r["model"], r["compiled"], r["dtype"]): r["latency_ms"] for r in rows}
    return {
        f"{model}/{'compiled' if compiled else 'eager'}": round(ms / latency[model, compiled, "bfloat16"], 3)
        for (model, compiled, dtype), ms in latency.items()
        if dtype == "float32" and (model, compiled, "bfloat16") in latency
    }


def inference(run: Run, args: argparse.Namespace) -> None:
    """e. msr_x4 against its peers on one 1280x720 output frame, fp32 and bf16 (weights cast
    once, as `msrnet.upscale` runs it); msr and EDSR-baseline also compiled with CUDA graphs."""
    models = ["msr", "msr_small", "edsr_baseline"]
    if importlib.util.find_spec("spandrel") is not None:
        models += ["rcan", "swinir", "span"]
    else:
        run.log("spandrel is not installed: RCAN, SwinIR and SPAN are skipped")
    argv = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--scales", "4",
            "--dtypes", "fp32", "bf16", "--models", *models]
    # Compiled with CUDA graphs (reduce-overhead: max-autotune's tuning of every convolution
    # takes minutes), the two whose bf16 speed-up per multiply-add is compared. A rehearsal
    # compiles none: inductor on a CPU takes minutes and says nothing of a GPU.
    argv += (["--quick", "--size", "64x64", "--device", "cpu", "--compile", "none"] if args.rehearse
             else ["--size", "1280x720", "--warmup", "3", "--iters", "10",
                   "--compile", "msr", "edsr_baseline", "--compile-mode", "reduce-overhead"])
    code, stdout = run.command(argv, timeout=run.limit(max(5.0, run.left() - 5)))
    if code != 0:  # a failed step, so that it is listed as one
        raise RuntimeError("benchmarks/speed.py " + ("ran out of time" if code is None else f"exit code {code}"))
    report = json.loads(stdout)
    rows = [
        {k: r[k] for k in ("model", "dtype", "compiled", "latency_ms", "latency_vs_msr", "gflop_per_frame",
                           "achieved_tflops", "first_call_s")}
        for r in report["results"]
    ]
    for row in rows:
        run.log(json.dumps(row))
    speedups = bf16_speedups(rows)
    run.log(f"bf16 speed-up over fp32: {speedups}")
    run.save("inference", {"env": report["env"], "rows": rows, "bf16_speedup": speedups})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="holds train291/, Set5/, Set14/")
    p.add_argument("--out", type=Path, required=True, help="where results, log and weights go")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds for everything (default 530; a rehearsal has none unless given)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"train each model this many steps, with no deadline (rehearsal default {REHEARSAL_STEPS})")
    p.add_argument("--compile-timeout", type=float, default=None,
                   help="seconds for each compile mode's measurement in step b (default 90; rehearsal 40)")
    p.add_argument("--scales", type=int, nargs="+", default=list(SCALES), choices=SCALES)
    p.add_argument("--rehearse", action="store_true", help="the same steps on the CPU, narrow nets")
    p.add_argument("--small", action=argparse.BooleanOptionalAction, default=True,
                   help="also train msr_small_x* after the full-size models (default: on)")
    p.add_argument("--skip", nargs="+", default=[], choices=("check", "throughput", "train", "real", "inference"),
                   help="steps to leave out (a second call finishing what a first one did)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="train at this batch size, eager (with --skip throughput)")
    p.add_argument("--patch-size", type=int, default=None,
                   help="train on LR patches of this size (with --skip throughput; default 48)")
    p.add_argument("--real-degradation", default="web",
                   help="step f's LR degradation: a preset of msrnet.data.degradations or a JSON file "
                   "(default web: JPEG and noise after bicubic, the benchmark's degraded conditions)")
    p.add_argument("--work-dir", type=Path, default=None, help="training runs (default: OUT/../gpu_runs)")
    p.add_argument("--package-dir", type=Path, default=None,
                   help="weights to fine-tune and beat (default: the package's; rehearsal: none)")
    args = p.parse_args(argv)
    for name in ("train291", "Set5", "Set14"):
        if not (args.data_dir / name).is_dir():
            p.error(f"{args.data_dir / name} is not a folder")
    if not args.rehearse and not torch.cuda.is_available():
        p.error("no CUDA device: use --rehearse to run the same steps on the CPU")
    args.kind = "cpu" if args.rehearse else "cuda"
    args.device = "cpu" if args.rehearse else None
    if args.steps is not None and args.deadline is not None:
        p.error("--steps and --deadline exclude each other: a run of step counts has no deadline")
    if args.steps is not None and args.steps < 2:
        p.error("--steps must be at least 2 (the first step is not timed)")
    if args.rehearse and args.deadline is None:
        args.steps = args.steps or REHEARSAL_STEPS
    if args.steps is None:
        args.deadline = args.deadline or 530.0
    args.model_kwargs = REHEARSAL_KWARGS if args.rehearse else {}
    args.patch_size = args.patch_size or (16 if args.rehearse else 48)
    # LR patch 64 (256 HR pixels at x4) only memory allowing: each size's sweep stops at its
    # first out-of-memory.
    args.patch_sizes = [12, 16] if args.rehearse else [48, 64]
    # The step is bound by launches and host overhead at small batches (docs/benchmarks.md:
    # steps/s barely fall from batch 16 to 64), so the sweep starts at 64.
    args.batch_sizes = [2, 4] if args.rehearse else [64, 128, 256]
    args.speed_steps = 2 if args.rehearse else 15
    # None: the regional compile of the blocks; reduce-overhead: the whole forward with CUDA
    # graphs, which removes the launches that bound the step.
    args.compile_modes = [None, "reduce-overhead"]
    # Per compile mode: the first run's regional compile did not finish in 60 s.
    args.compile_timeout = args.compile_timeout or (40.0 if args.rehearse else 90.0)
    args.min_budget = 2.0 if args.rehearse else 20.0
    args.scales = sorted(args.scales)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work_dir = args.work_dir or args.out.parent / f"{args.out.name}_runs"
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    if args.package_dir is None and args.rehearse:
        # Narrow networks never ship: a rehearsal starts from scratch unless given weights.
        args.package_dir = args.work_dir / "package"
        args.package_dir.mkdir(parents=True)
    args.package_dir = args.package_dir or PACKAGE_WEIGHTS
    args.fresh_t291 = {}  # step c's weights that beat the shipped .t291 file (or none ships), per arch

    run = Run(args.out, args.deadline)
    run.results["mode"] = "rehearsal" if args.rehearse else "gpu"
    run.results["deadline_s"], run.results["train_steps"] = args.deadline, args.steps
    steps = [("check", lambda: check(run, args.kind)),
             ("throughput", lambda: run.results.__setitem__("choice", throughput(run, args))),
             ("train", lambda: train_scales(run, args, run.results["choice"])),
             ("real", lambda: train_real(run, args, run.results["choice"])),
             ("inference", lambda: inference(run, args))]
    if "throughput" in args.skip:
        run.results["choice"] = {"batch_size": args.batch_size or args.batch_sizes[-1],
                                 "patch_size": args.patch_size, "compile": False}
    failed = []
    for name, step in steps:
        if name in args.skip:
            continue
        try:
            step()
        except Exception as e:  # noqa: BLE001 -- a failed step must not cost the later ones
            run.log(f"{name} failed: {type(e).__name__}: {e}")
            failed.append(name)
            if name == "throughput":
                run.results["choice"] = {"batch_size": args.batch_sizes[0], "patch_size": args.patch_size,
                                         "compile": False}
    run.results["failed"] = failed
    run.save("done", {"elapsed_s": round(run.elapsed(), 1)})
    run.log(f"done in {run.elapsed():.0f} s; failed steps: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
