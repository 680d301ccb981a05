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
c. (c, d and f: ``scripts/gpu_train.py``) the ``.t291`` models of each msr variant, on the 291
   images (``examples/train_291.py``, one model per process): msr_x8, msr_x4, msr_x2, then
   msr_medium_x8/x4/x2, then msr_small_x8/x4/x2 (``--no-medium`` and ``--no-small`` leave a
   variant out). Each is fine-tuned from its shipped file where one exists (a medium file may
   ship from CPU training), a medium one else from the small file of its scale grown into it,
   else warm-started from the previous (larger) scale's trunk of its variant
   (`shipping.warm_start`). Each model's training budget is its share of the time then left
   (``scripts/gpu_plan.py``: msr_x8's the largest; a medium model half its full-size one's, a
   small one a quarter, step f's models half their ``.t291`` share); when the time left cannot
   give every model still queued its minimum, the least valuable go without (the order of worth,
   below), wherever they stand in the queue;
d. Set5 and Set14 scores of each, on the GPU (done by ``train_291.py``). A medium file comes
   back only if it also beats the shipped small one of its scale on both;
f. (run before e, which comes last) the ``.real`` files of msr, then of msr_medium, each x4,
   x2, x8 (``--skip real`` leaves them out): each fine-tuned from its variant's best weights at
   hand (a shipped ``.real`` file; else step c's ``.t291`` weights where they beat the shipped
   ones or none ships, at the fine-tune rate; else the shipped ``.t291`` file; a model with
   none of these, a medium one before any ships, is skipped) with ``train_291.py --degradation web --tag real``, and scored
   on Set5 and Set14, clean and under every degraded benchmark condition (JPEG and noise after
   bicubic). The default degradation is ``web`` rather than the ``real`` preset: those
   conditions are what ``web`` trains for, and the shipped msr_small_x*.real files, the bar
   here, were trained on it; ``--real-degradation`` picks another. A file comes back only if it
   beats both the shipped file of its own tag and the small variant's (msr_small_x4.real for
   msr_x4.real and msr_medium_x4.real) on every (set, degraded condition) score;
e. (``scripts/gpu_inference.py``) inference time of a 1280x720 output at x4
   (``benchmarks/speed.py``), fp32 and bf16 (the weights cast once, as `msrnet.upscale` runs
   a reduced dtype): msr_x4, msr_medium_x4 and msr_small_x4 against EDSR-baseline, RCAN, SwinIR and SPAN (spandrel's peers skipped without
   spandrel), eager; then the msr variants, EDSR-baseline and SPAN compiled, with CUDA graphs
   (``reduce-overhead``) and without (``default``), one process each while the deadline allows.
   Each row has its ``compile_mode`` (None: eager), ``latency_vs_msr`` (over msr_x4's in the
   same dtype and mode), ``vs_fp32_eager`` and ``achieved_tflops`` (its rate per
   multiply-add); ``bf16_speedup`` is each one's fp32 latency over its bf16 latency.

Into ``--out``: ``results.json`` (rewritten after every step), ``log.txt`` and, for each model
whose weights may ship (``scripts/shipping.py``'s rules), ``<arch>.t291.safetensors`` or
``<arch>.real.safetensors``, while the 8 files a device call brings back allow
(`MAX_OUT_FILES`: the two others leave 6 places for weights). When more files qualify, the most
valuable come back (``scripts/gpu_plan.py``'s order of worth, which also decides what the
deadline leaves out): the full-size files first, since a full-size model has 17 times a small
one's multiply-adds and the GPU's time is worth what a file would cost without it; then the
medium ones; the small ones, which a CPU trains well, last. Within a variant ``.t291`` before
``.real`` (the next ``.real`` runs start from it), within a tag the order they train in. A
file that a more valuable one displaces leaves ``--out``; the log names every file that did not
fit and where its weights stay, and ``results.json``'s ``weights`` step lists what came back and
what did not. Copy the weights into ``src/msrnet/weights/`` and their sha256, which ``log.txt``
names, into ``PRETRAINED_SHA256`` (``src/msrnet/_catalogue.py``).

    # on the GPU machine, from the repository root (data staged by scripts/stage_gpu_data.py,
    # whose shares, carried by earlier calls, this gathers first)
    PYTHONPATH=src python3 scripts/gpu_run.py --data-dir .gpu_data --out "$OUT"
    # the same path on the CPU, narrow networks, each model trained 3 steps
    PYTHONPATH=src python3 scripts/gpu_run.py --rehearse --data-dir ../shared/data --out /tmp/r

A rehearsal is a test of paths, not of speed: it has no deadline (``--steps``: each model trains
a number of steps, and every command runs to its end, however busy the machine), so it runs
every step and trains every model on any machine. Only a hung command is stopped, after
`HANG_GUARD_S`, and step b's compile measurements, which ``--compile-timeout`` always bounds
(they decide only whether training compiles; a few steps never pay for it). Step e times
eager only there: inductor on a CPU takes minutes and says nothing of a GPU. ``--rehearse
--deadline S`` rehearses the deadline's arithmetic instead.
"""
from __future__ import annotations

import argparse
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

from gpu_inference import INFERENCE_RESERVE_S, inference
from gpu_plan import Target
from gpu_train import load_script, real_targets, training_targets, train_real, train_scales
from stage_gpu_data import gather

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_WEIGHTS = ROOT / "src" / "msrnet" / "weights"
SCALES = (2, 4, 8)
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
        # Every weights file that may ship, and where its weights are (`gpu_train._ship_to_out`).
        self.qualified: dict[Target, Path] = {}
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


def check(run: Run, device: str, data: dict[str, Any]) -> None:
    """a. Versions, the device, the training data at hand, and the CUDA-only tests."""
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
    run.log(f"training images: {json.dumps(data)}")
    run.results["data"] = data
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
            "--continue-on-collection-errors", "tests"]
    code, stdout = run.command(argv, timeout=run.limit(30))
    summary = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    run.log(f"cuda tests: {summary}")
    run.save("tests", {"exit_code": code, "summary": summary})


def training_data(data_dir: Path) -> dict[str, Any]:
    """The training images at hand; a staged folder's shares are gathered into it first.

    ``scripts/stage_gpu_data.py --calls N`` sends train291 in shares over N device calls; those
    that arrived whole join ``data_dir/train291`` here, and the count of any lost (a machine
    that went cold between calls starts bare) goes into ``results.json``.
    """
    data: dict[str, Any] = {}
    if (data_dir / "manifest.json").is_file():
        staged = gather(data_dir)
        data = {key: staged.get(key) for key in ("of", "rotation", "gathered")}
    return {"train_images": sum(1 for f in (data_dir / "train291").iterdir() if f.is_file())} | data


def throughput(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """b. HR pixels/s of msr_x4 for each LR patch size and batch size, eager; then each compile
    mode (`TrainConfig.compile_mode`) at the fastest of them, in a subprocess each."""
    train_speed = load_script(ROOT / "benchmarks" / "train_speed.py")
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
    queue = training_targets(args)
    processes = len(queue) + len(real_targets(args))
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
    p.add_argument("--medium", action=argparse.BooleanOptionalAction, default=True,
                   help="also train msr_medium_x* after the full-size models, and their .real files (default: on)")
    p.add_argument("--small", action=argparse.BooleanOptionalAction, default=True,
                   help="also train msr_small_x* after the medium models (default: on)")
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
    data = training_data(args.data_dir)
    run.results["mode"] = "rehearsal" if args.rehearse else "gpu"
    run.results["deadline_s"], run.results["train_steps"] = args.deadline, args.steps
    steps = [("check", lambda: check(run, args.kind, data)),
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
