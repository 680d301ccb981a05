"""Steps c, d and f of ``scripts/gpu_run.py``: train each model in its own process, score it,
and copy into --out the weights that may ship.

Each model is one ``examples/train_291.py`` process whose budget is its share of the time then
left (`gpu_plan.training_budget`); the run's docstring says what each step trains and from
which weights, ``scripts/gpu_plan.py`` in which order and which files come back, and
``scripts/shipping.py`` when new weights replace the shipped ones.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_inference import INFERENCE_RESERVE_S
from gpu_plan import (
    MAX_OUT_FILES,
    WEIGHT_PLACES,
    Target,
    real_queue,
    returned,
    training_budget,
    training_queue,
)
from shipping import CLEAN_TAG, compare_with_small, needs_small_bar, ship, shipped_file, warm_start

if TYPE_CHECKING:
    from gpu_run import Run

ROOT = Path(__file__).resolve().parents[1]
# Per model, beyond its training budget: process start, data, first step, validation,
# checkpoint and the Set5/Set14 scoring (twice when fine-tuning). A first guess; after each
# model the measured overhead replaces it.
SCALE_OVERHEAD_S = {"cuda": 30.0, "cpu": 15.0}


def load_script(path: Path) -> Any:
    """A script of the repository (benchmarks/, examples/) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _variants(args: argparse.Namespace) -> list[str]:
    """The variants this run trains (`gpu_plan.VARIANTS`): msr always, the others unless
    ``--no-medium`` / ``--no-small`` leave them out."""
    return ["msr"] + ["msr_medium"] * args.medium + ["msr_small"] * args.small


def training_targets(args: argparse.Namespace) -> list[Target]:
    """Step c's models, in order (none when it is skipped)."""
    return [] if "train" in args.skip else training_queue(args.scales, _variants(args))


def real_targets(args: argparse.Namespace) -> list[Target]:
    """Step f's models, in order (none when it is skipped)."""
    return [] if "real" in args.skip else real_queue(args.scales, _variants(args))


def _compile_argv(choice: dict[str, Any]) -> list[str]:
    """train_291.py's options for the compile ``choice`` of step b."""
    if not choice["compile"]:
        return ["--no-compile"]  # step b measured eager faster (train_291's default compiles on a CPU)
    mode = choice.get("compile_mode")
    return ["--compile"] + ([] if mode is None else ["--compile-mode", mode])


def _budget(run: Run, args: argparse.Namespace, overhead: float, queued: list[Target]) -> tuple[bool, float | None]:
    """Whether ``queued[0]`` trains, and its seconds of training: None with step counts (it
    always trains); else its share of what the deadline leaves (`gpu_plan.training_budget`)."""
    if args.steps is not None:
        return True, None
    budget = training_budget(run.left() - INFERENCE_RESERVE_S[args.kind], overhead, queued, args.min_budget)
    return budget is not None, budget


def _runs(args: argparse.Namespace, target: Target) -> Path:
    """The folder of ``target``'s train_291.py run (``x<scale>/`` inside)."""
    return args.work_dir / (target.variant if target.tag == CLEAN_TAG else f"{target.variant}.{target.tag}")


def _score_key(row: dict[str, Any]) -> str:
    """A train_291.py result row's key in `shipping.Verdict.scores`."""
    return row["dataset"] + (f"/{row['condition']}" if row.get("condition") else "")


def _ship_to_out(run: Run, weights: Path, target: Target) -> None:
    """Copy ``weights`` into --out as ``target``'s file if it ranks among the files a device call
    brings back (`gpu_plan.returned`), displacing the least valuable one there when they are
    all taken. The log names each copy's sha256 and each file that did not fit (its weights stay
    in the work folder), and ``results.json``'s ``weights`` step lists both."""
    run.qualified[target] = weights
    ours = {t.file for t in run.qualified} | {"results.json", "log.txt", "results.json.tmp", "subprocess.stderr"}
    # Files in --out that this run did not write (a reused folder) take places too.
    foreign = [p for p in run.out.iterdir() if p.name not in ours]
    kept = returned(list(run.qualified), WEIGHT_PLACES - len(foreign))
    if target in kept:
        run.log(f"{target.name}: new weights, sha256 {ship(weights, target.arch, target.tag, run.out)}")
    else:
        (run.out / target.file).unlink(missing_ok=True)  # an earlier run's
        run.log(f"{target.name}: no room in --out ({MAX_OUT_FILES} files); the weights stay at {weights}")
    for t, path in run.qualified.items():
        if t not in kept and t != target and (run.out / t.file).is_file():
            (run.out / t.file).unlink()
            run.log(f"{t.name}: displaced from --out by {target.name}, worth more; the weights stay at {path}")
    run.save("weights", {"returned": [t.name for t in kept],
                         "left_out": {t.name: str(p) for t, p in run.qualified.items() if t not in kept}})


def _train_291(run: Run, args: argparse.Namespace, choice: dict[str, Any], target: Target,
               budget: float | None, start: list[str], overhead: float) -> tuple[int | None, list[dict[str, Any]]]:
    """One ``examples/train_291.py`` process for ``target``: ``budget`` seconds of training (None:
    ``--steps``), from ``start`` (its ``--init`` / ``--lr`` options); its exit code and result rows."""
    runs = _runs(args, target)
    # BSD200's images are 321 pixels high, T91's smaller: x8 takes 32-pixel LR patches.
    patch_size = min(choice.get("patch_size", args.patch_size), 256 // target.scale)
    argv = [sys.executable, str(ROOT / "examples" / "train_291.py"),
            "--data-dir", str(args.data_dir), "--scales", str(target.scale),
            *(["--max-steps", str(args.steps)] if budget is None else ["--time-budget", f"{budget:.1f}"]),
            "--batch-size", str(choice["batch_size"]), "--patch-size", str(patch_size),
            "--output-dir", str(runs), "--overwrite", "--package-dir", str(args.package_dir)]
    if target.tag != CLEAN_TAG:
        argv += ["--degradation", args.real_degradation, "--tag", target.tag]
    if target.variant != "msr":
        argv.append("--" + target.variant.removeprefix("msr_"))  # --medium, --small
    if args.model_kwargs:
        argv += ["--model-kwargs", json.dumps(args.model_kwargs)]
    if args.device:
        argv += ["--device", args.device]
    argv += _compile_argv(choice) + start
    # Around the training: scoring, twice when fine-tuning, on every degraded condition for .real.
    around = (2 if target.tag == CLEAN_TAG else 3) * overhead
    code, _ = run.command(argv, timeout=run.limit((budget or 0.0) + around + 30))
    results_file = runs / "results.json"
    rows = json.loads(results_file.read_text()) if code == 0 and results_file.is_file() else []
    return code, [r for r in rows if r["model"] == target.arch]


def _beats_small(args: argparse.Namespace, target: Target, rows: list[dict[str, Any]]) -> bool:
    """Whether ``target``'s new ``rows`` clear the small variant's shipped file, where the
    shipping rules hold it to one (`shipping.needs_small_bar`); the rows get ``beats_small``
    and, where it ships, ``small_psnr``."""
    if not needs_small_bar(target.arch, target.tag):
        return True
    scores = {_score_key(r): r for r in rows}
    small = compare_with_small(scores, target.arch, target.tag, args.package_dir, args.data_dir,
                               target.scale, device=args.device or args.kind)
    for r in rows:
        if small.shipped is not None and _score_key(r) in small.shipped:
            r["small_psnr"] = small.shipped[_score_key(r)]["psnr"]
        r["beats_small"] = small.replace
    return small.replace


def _after_training(run: Run, args: argparse.Namespace, target: Target, rows: list[dict[str, Any]],
                    weights: Path) -> None:
    """Log ``target``'s scores and copy its weights into --out where the shipping rules let them
    ship: they beat its shipped file (train_291.py judged that: `shipping.compare_with_shipped`)
    and, where one is the bar, the small variant's (`_beats_small`)."""
    beats_small = _beats_small(args, target, rows)
    for r in rows:
        run.log(f"{target.name} {_score_key(r)}: {r['psnr']:.3f} dB / {r['ssim']:.4f}, {r['steps']} steps")
    if not all(r.get("replace", True) for r in rows):
        run.log(f"{target.name}: the shipped file scores higher somewhere; kept")
    elif not beats_small:
        run.log(f"{target.name}: msr_small_x{target.scale}.{target.tag} scores higher somewhere; not shipped")
    else:
        _ship_to_out(run, weights, target)


def train_scales(run: Run, args: argparse.Namespace, choice: dict[str, Any]) -> None:
    """c, d. Each model in its own process; its budget is its share of the time then left."""
    queue = training_targets(args)
    later = real_targets(args)  # step f's, which share the time left
    overhead = SCALE_OVERHEAD_S[args.kind]
    if choice["compile"]:
        overhead += choice["compile_costs_s"] / (len(queue) + len(later))
    args.overhead = overhead
    rows: list[dict[str, Any]] = []
    chained: dict[str, str | None] = {}  # per variant: the last scale's weights

    while queue:
        target = queue[0]
        fits, budget = _budget(run, args, overhead, queue + later)
        if not fits:
            run.log(f"{target.name}: too little time left for training; skipped")
            queue.pop(0)
            continue
        # train_291.py fine-tunes shipped weights by itself; --init would override them.
        start = warm_start(target.arch, CLEAN_TAG, args.package_dir, chained=chained.get(target.variant))
        init = ["--init", start.weights] if start.weights is not None and not start.finetune else []
        if budget is None:
            run.log(f"{target.name}: {args.steps} steps of training")
        else:
            run.log(f"{target.name}: {budget:.0f} s of training, {overhead:.0f} s expected around it")
        started = time.monotonic()
        _, new = _train_291(run, args, choice, target, budget, init, overhead)
        if budget is not None:
            overhead = args.overhead = max(overhead, 1.1 * (time.monotonic() - started - budget))
        if not new and choice["compile"]:
            run.log(f"{target.name}: failed with torch.compile; again without it")
            choice["compile"] = False
            continue
        queue.pop(0)
        if not new:
            run.log(f"{target.name}: no result")
            continue
        weights = _runs(args, target) / f"x{target.scale}" / "best.safetensors"
        if all(r.get("replace", True) for r in new):
            # The best .t291 weights of the variant at hand: step f starts from them.
            args.fresh_t291[target.arch] = str(weights)
        _after_training(run, args, target, new, weights)
        chained[target.variant] = str(weights)
        rows += new
        run.save("quality", rows)


def train_real(run: Run, args: argparse.Namespace, choice: dict[str, Any]) -> None:
    """f. The .real files of msr, then msr_medium, x4 first: each fine-tuned from its variant's
    best .t291 weights at hand on ``--real-degradation`` LR patches, scored on the degraded
    conditions, and copied into --out only if it beats both the shipped file of its own and the
    small variant's (`shipping.compare_with_small`)."""
    train_291 = load_script(ROOT / "examples" / "train_291.py")
    queue = real_targets(args)
    overhead = getattr(args, "overhead", SCALE_OVERHEAD_S[args.kind])
    rows: list[dict[str, Any]] = []
    while queue:
        target = queue.pop(0)
        fits, budget = _budget(run, args, overhead, [target, *queue])
        if not fits:
            run.log(f"{target.name}: too little time left for training; skipped")
            continue
        # A shipped .real file is fine-tuned further; else step c's t291 weights where they beat
        # the shipped .t291 file (or none ships), at the fine-tune rate; else the shipped .t291.
        shipped = shipped_file(target.arch, target.tag, args.package_dir).is_file()
        start = warm_start(target.arch, target.tag, args.package_dir,
                           init=None if shipped else args.fresh_t291.get(target.arch))
        if start.weights is None:
            # No .t291 weights of the variant at all (a medium one before any shipped, without a
            # small file to grow): a .real file from scratch, in the minutes a session has, would
            # not come near the small one's.
            run.log(f"{target.name}: no {target.arch}.{CLEAN_TAG} weights to start from; skipped")
            continue
        finetune_lr = train_291.LR * train_291.FINETUNE_LR_FRACTION
        init = [] if start.finetune else ["--init", start.weights, "--lr", str(finetune_lr)]
        run.log(f"{target.name}: " + (f"{args.steps} steps" if budget is None else f"{budget:.0f} s")
                + f" of training on {args.real_degradation} LR, from {start.weights}")
        started = time.monotonic()
        _, new = _train_291(run, args, choice, target, budget, init, overhead)
        if budget is not None:
            overhead = max(overhead, 1.1 * (time.monotonic() - started - budget))
        if not new:
            run.log(f"{target.name}: no result")
            continue
        _after_training(run, args, target, new, _runs(args, target) / f"x{target.scale}" / "best.safetensors")
        rows += new
        run.save("real", rows)
