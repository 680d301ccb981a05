"""The GPU session's script, rehearsed on the CPU, and the payload a GPU run sends."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def _images(folder: Path, count: int, size: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(
            folder / f"im{i}.png"
        )


def _main(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", [script, *args])
    module = runpy.run_path(str(SCRIPTS / script))
    return module["main"](args)


@pytest.mark.slow
def test_rehearsal_runs_every_step_and_writes_what_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    _images(data / "train291", 6, 136, rng)  # x8 patches of 16 need 128 HR pixels
    _images(data / "Set5", 2, 48, rng)
    _images(data / "Set14", 2, 48, rng)
    out = tmp_path / "out"
    # Step counts, no deadline: every step runs and every model trains, however busy the machine.
    # The compile measurement is cut off at 5 s to keep the test short; if it finished, its
    # verdict would be the same (compiling never pays for 3 steps a model).
    args = ["--rehearse", "--data-dir", str(data), "--out", str(out), "--compile-timeout", "5"]
    assert _main("gpu_run.py", args, monkeypatch) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "rehearsal" and results["failed"] == []
    assert results["deadline_s"] is None and results["train_steps"] == 3
    steps = results["steps"]
    assert steps["tests"]["exit_code"] == 0
    assert {r["batch_size"] for r in steps["throughput"]["rows"]} == {2, 4}
    assert steps["throughput"]["choice"]["compile"] is False
    rows = steps["quality"]
    assert [(r["model"], r["dataset"]) for r in rows] == [
        (f"{arch}_x{s}", d) for arch in ("msr", "msr_small") for s in (2, 4, 8) for d in ("Set5", "Set14")
    ]
    assert all(np.isfinite(r["psnr"]) and r["steps"] == 3 and r["seconds"]["train"] > 0 for r in rows)
    # Each larger scale warm-started from the one before.
    assert rows[2]["init"].endswith("runs/x2/best.safetensors")
    assert rows[4]["init"].endswith("runs/x4/best.safetensors")
    assert rows[6]["init"] is None and rows[8]["init"].endswith("runs_small/x2/best.safetensors")
    assert {r["model"] for r in steps["inference"]["rows"]} >= {"msr", "edsr_baseline"}
    # What a device call returns: at most 8 files of at most 16 MiB, one folder deep.
    files = sorted(p.name for p in out.iterdir())
    weights = [f"{a}_x{s}.t291.safetensors" for a in ("msr", "msr_small") for s in (2, 4, 8)]
    assert files == sorted(["log.txt", "results.json", *weights])
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files)


def test_gpu_run_refuses_without_cuda_or_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exit_:
        _main("gpu_run.py", ["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")], monkeypatch)
    assert exit_.value.code == 2


def test_staged_data_fits_the_device_payload(shared_data: Path, tmp_path: Path) -> None:
    stage = runpy.run_path(str(SCRIPTS / "stage_gpu_data.py"))
    manifest = stage["stage"](shared_data, tmp_path / "staged")
    # The payload counts the tree (the shipped weights among it) and what was staged.
    assert manifest["payload_bytes"] <= stage["PAYLOAD_LIMIT"]
    assert manifest["payload_bytes"] >= stage["tree_bytes"](exclude=tmp_path / "staged")
    assert manifest["train_images"] >= 1
    assert (tmp_path / "staged" / "Set5").is_dir() and (tmp_path / "staged" / "Set14").is_dir()


def test_rotation_takes_contiguous_runs_that_cover_every_image(tmp_path: Path) -> None:
    stage = runpy.run_path(str(SCRIPTS / "stage_gpu_data.py"))
    files = []
    for i in range(10):
        f = tmp_path / f"{i:02d}.webp"
        f.write_bytes(b"x" * 100)
        files.append(f)
    assert stage["choose_training_images"](files, 10_000, 0) == files
    seen = set()
    for rotation in range(5):
        chosen = stage["choose_training_images"](files, 450, rotation)
        assert len(chosen) == 4
        seen |= set(chosen)
    assert seen == set(files)


def test_throughput_sweep_stops_at_the_first_out_of_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    import torch

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    measured: list[int] = []

    class FakeSpeed:
        @staticmethod
        def measure(batch_size: int, **_: object) -> dict[str, object]:
            measured.append(batch_size)
            if batch_size > 128:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            return {"batch_size": batch_size, "samples_per_s": float(batch_size)}

    monkeypatch.setitem(module["throughput"].__globals__, "_load", lambda path: FakeSpeed)
    run = module["Run"](tmp_path, deadline=100.0)
    monkeypatch.setattr(run, "command", lambda argv, timeout, poll=None: (1, ""))  # compile fails
    args = argparse.Namespace(patch_size=48, device=None, model_kwargs={}, batch_sizes=[64, 128, 256, 512],
                              speed_steps=1, compile_timeout=5.0, steps=None)
    choice = module["throughput"](run, args)
    assert measured == [64, 128, 256]  # 512 is not tried after 256 ran out of memory
    assert choice == {"batch_size": 128, "compile": False}
    assert "batch 256: out of memory" in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize(("small", "compiles"), [(False, True), (True, False)])
def test_compile_is_chosen_only_if_it_saves_more_than_every_training_process_spends_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: bool, compiles: bool
) -> None:
    import argparse

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))

    class FakeSpeed:
        @staticmethod
        def measure(batch_size: int, **_: object) -> dict[str, object]:
            return {"batch_size": batch_size, "samples_per_s": 100.0}

    monkeypatch.setitem(module["throughput"].__globals__, "_load", lambda path: FakeSpeed)
    run = module["Run"](tmp_path, deadline=110.0)
    compiled = {"batch_size": 64, "samples_per_s": 200.0, "first_step_s": 5.0}
    monkeypatch.setattr(run, "command", lambda argv, timeout, poll=None: (0, json.dumps(compiled)))
    args = argparse.Namespace(patch_size=48, device=None, model_kwargs={}, batch_sizes=[64], speed_steps=1,
                              compile_timeout=5.0, kind="cuda", scales=[2, 4, 8], small=small, steps=None)
    choice = module["throughput"](run, args)
    # About 60 s of training left at twice the speed saves about 30 s; compiling costs 5 s in
    # each of 3 training processes, or 6 with the small variants.
    assert choice["compile"] is compiles
    assert choice["compile_costs_s"] == (30.0 if small else 15.0)
    assert 25.0 < choice["compile_saves_s"] <= 30.0


class _SlowClock:
    """``time`` for gpu_run.py on a machine as slow as a test wants: each command advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _fake_training(module: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, deadline: float | None,
                   seconds_per_command: float) -> tuple[list[list[str]], list[float], object]:
    """train_scales with each training process replaced by one that takes ``seconds_per_command``
    (plus its time budget) and writes the results train_291.py would."""
    import argparse

    clock = _SlowClock()
    monkeypatch.setitem(module["train_scales"].__globals__, "time", clock)
    run = module["Run"](tmp_path / "out", deadline=deadline)
    calls: list[list[str]] = []
    timeouts: list[float] = []

    def command(argv: list[str], timeout: float, poll: object = None) -> tuple[int, str]:
        calls.append(argv)
        timeouts.append(timeout)
        budget = float(argv[argv.index("--time-budget") + 1]) if "--time-budget" in argv else 0.0
        clock.now += seconds_per_command + budget
        runs, scale = Path(argv[argv.index("--output-dir") + 1]), argv[argv.index("--scales") + 1]
        arch = ("msr_small_x" if "--small" in argv else "msr_x") + scale
        (runs / f"x{scale}").mkdir(parents=True, exist_ok=True)
        (runs / f"x{scale}" / "best.safetensors").write_bytes(b"weights")
        rows = [{"model": arch, "dataset": d, "psnr": 30.0, "ssim": 0.9, "steps": 3, "init": None}
                for d in ("Set5", "Set14")]  # fmt: skip
        (runs / "results.json").write_text(json.dumps(rows))
        return 0, ""

    monkeypatch.setattr(run, "command", command)
    args = argparse.Namespace(scales=[2, 4, 8], small=True, kind="cpu", data_dir=tmp_path, patch_size=16,
                              package_dir=tmp_path / "package", model_kwargs={}, device="cpu", min_budget=2.0,
                              work_dir=tmp_path / "runs", steps=3 if deadline is None else None)  # fmt: skip
    module["train_scales"](run, args, {"batch_size": 4, "compile": False})
    return calls, timeouts, run


def test_step_counts_train_every_model_however_slow_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25, item 14: on a busy machine the rehearsal skipped msr_x4 and msr_x8 ("only -16 s
    left for training"); with step counts no model is skipped for time."""
    (tmp_path / "out").mkdir()
    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    calls, timeouts, run = _fake_training(module, monkeypatch, tmp_path, None, seconds_per_command=10_000.0)
    assert len(calls) == 6 and all("--time-budget" not in argv for argv in calls)
    assert all(argv[argv.index("--max-steps") + 1] == "3" for argv in calls)
    assert timeouts == [module["HANG_GUARD_S"]] * 6  # a guard against a hang, not a deadline
    assert len(run.results["steps"]["quality"]) == 12


def test_a_deadline_shares_out_what_is_left_and_skips_what_no_longer_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").mkdir()
    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    calls, _, _ = _fake_training(module, monkeypatch, tmp_path, 400.0, seconds_per_command=20.0)
    budgets = [float(argv[argv.index("--time-budget") + 1]) for argv in calls]
    assert len(calls) == 6 and all("--max-steps" not in argv for argv in calls)
    # 400 s less the inference reserve (25) and 15 s around each of 6 models, shared 30/35/35 at
    # full size and a quarter of that for the small ones: x2 gets 285 * 0.30 / 1.25.
    assert budgets[0] == pytest.approx(285 * 0.30 / 1.25, abs=0.1)
    assert sum(budgets) <= 400 - 25
    # Ten times as long around a model as guessed: after the first, nothing fits any more.
    slow = tmp_path / "slow"
    (slow / "out").mkdir(parents=True)
    calls, _, _ = _fake_training(module, monkeypatch, slow, 400.0, seconds_per_command=150.0)
    assert len(calls) == 1
    assert (slow / "out" / "log.txt").read_text().count("left for training; skipped") == 5
