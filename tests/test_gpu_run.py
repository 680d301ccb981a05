"""The GPU session's script, rehearsed on the CPU, and the payload a GPU run sends."""
from __future__ import annotations

import importlib.util
import argparse
import json
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

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
    # x4 and x8 only: 6 .t291 files and 4 .real ones qualify (nothing ships in a rehearsal), for
    # the 6 places beside the log and the results.
    args = ["--rehearse", "--data-dir", str(data), "--out", str(out), "--compile-timeout", "5", "--scales", "4", "8"]
    assert _main("gpu_run.py", args, monkeypatch) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "rehearsal" and results["failed"] == []
    assert results["deadline_s"] is None and results["train_steps"] == 3
    steps = results["steps"]
    assert steps["tests"]["exit_code"] == 0
    eager = [r for r in steps["throughput"]["rows"] if not r["compile"]]
    assert {(r["patch_size"], r["batch_size"]) for r in eager} == {(12, 2), (12, 4), (16, 2), (16, 4)}
    assert all(r["hr_pixels_per_s"] > 0 and 0 < r["patch_share_of_step"] for r in eager)
    choice = steps["throughput"]["choice"]
    best = max(eager, key=lambda r: r["hr_pixels_per_s"])
    assert (choice["patch_size"], choice["batch_size"]) == (best["patch_size"], best["batch_size"])
    assert choice["compile"] is False
    assert [o["compile_mode"] for o in steps["throughput"]["compile_options"]] == [None, "reduce-overhead"]
    rows = steps["quality"]
    variants = ("msr", "msr_medium", "msr_small")
    assert [(r["model"], r["dataset"]) for r in rows] == [
        (f"{v}_x{s}", d) for v in variants for s in (8, 4) for d in ("Set5", "Set14")
    ]
    assert all(np.isfinite(r["psnr"]) and r["steps"] == 3 and r["seconds"]["train"] > 0 for r in rows)
    # x8 first; with nothing shipped, x4 warm-starts from its own variant's trunk.
    for i, variant in enumerate(variants):
        assert rows[4 * i]["init"] is None and rows[4 * i + 2]["init"].endswith(f"/{variant}/x8/best.safetensors")
    # No small file ships in a rehearsal: it sets no bar for the medium ones.
    assert all(r["beats_small"] for r in rows if r["model"].startswith("msr_medium"))
    # Step f: msr's x4 then x8, then msr_medium's, each from its t291 run, scored on every
    # degraded condition too.
    real = steps["real"]
    models = ["msr_x4", "msr_x8", "msr_medium_x4", "msr_medium_x8"]
    assert [r["model"] for r in real] == [m for m in models for _ in range(10)]
    assert {r.get("condition") for r in real} == {None, "jpeg75", "jpeg50", "noise10", "noise5-jpeg75"}
    assert all(r["train_degradation"] == "web" and r["steps"] == 3 and r["beats_small"] for r in real)
    for i, model in enumerate(models):
        variant, scale = model.rsplit("_", 1)
        assert real[10 * i]["init"].endswith(f"/{variant}/{scale}/best.safetensors")
    inference = steps["inference"]
    assert {r["model"] for r in inference["rows"]} >= {"msr", "msr_medium", "msr_small", "edsr_baseline"}
    assert all(r["compile_mode"] is None and r["vs_fp32_eager"] > 0 for r in inference["rows"])
    assert set(inference["bf16_speedup"]) >= {"msr/eager", "msr_medium/eager", "msr_small/eager", "edsr_baseline/eager"}
    # What a device call returns: at most 8 files of at most 16 MiB, one folder deep, the most
    # valuable weights first: msr's .t291 and .real, then msr_medium's .t291; step f's .real
    # files displaced the small ones, and msr_medium's .real ones found no room.
    returned = [f"msr_x{s}.t291" for s in (8, 4)] + [f"msr_x{s}.real" for s in (4, 8)]
    returned += [f"msr_medium_x{s}.t291" for s in (8, 4)]
    left_out = [f"msr_small_x{s}.t291" for s in (8, 4)] + [f"msr_medium_x{s}.real" for s in (4, 8)]
    assert steps["weights"]["returned"] == returned and sorted(steps["weights"]["left_out"]) == sorted(left_out)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["log.txt", "results.json", *(f"{name}.safetensors" for name in returned)])
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files)
    log = (out / "log.txt").read_text()
    assert all(f"{name}: displaced from --out" in log for name in left_out[:2])
    assert all(f"{name}: no room in --out" in log for name in left_out[2:])


def test_gpu_run_refuses_without_cuda_or_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exit_:
        _main("gpu_run.py", ["--data-dir", str(tmp_path), "--out", str(tmp_path / "o")], monkeypatch)
    assert exit_.value.code == 2


def _stage_module() -> Any:
    spec = importlib.util.spec_from_file_location("stage_gpu_data", SCRIPTS / "stage_gpu_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_staged_data_fits_the_device_payload(shared_data: Path, tmp_path: Path) -> None:
    stage = _stage_module()
    manifest = stage.stage(shared_data, tmp_path / "staged")
    (call,) = manifest["calls"]
    # The payload counts the tree (the shipped weights among it) and what was staged.
    assert call["payload_bytes"] <= stage.PAYLOAD_LIMIT
    assert call["payload_bytes"] >= stage.tree_bytes(exclude=tmp_path / "staged")
    assert manifest["train_images"] == len(call["files"]) >= 1
    # The package may not grow into the GPU run's training data (`MIN_TRAINING_BYTES`).
    room = stage.PAYLOAD_LIMIT - stage.MARGIN - call["payload_bytes"] + call["train_bytes"]
    assert room >= stage.MIN_TRAINING_BYTES
    assert (tmp_path / "staged" / "Set5").is_dir() and (tmp_path / "staged" / "Set14").is_dir()


def test_staging_over_several_calls_carries_every_image(shared_data: Path, tmp_path: Path) -> None:
    stage = _stage_module()
    dest = tmp_path / "staged"
    manifest = stage.stage(shared_data, dest, calls=None)
    names = sorted(p.name for p in (shared_data / "train291").iterdir() if p.is_file())
    assert manifest["train_images"] == len(names)
    staged = [name for call in manifest["calls"] for name in call["files"]]
    assert sorted(staged) == names  # each image once
    assert all(call["payload_bytes"] <= stage.PAYLOAD_LIMIT - stage.MARGIN for call in manifest["calls"])
    assert manifest["calls"][-1]["folder"] == "staged"  # the running call carries DEST


def _fake_data(root: Path, sizes: list[int]) -> Path:
    for name in ("Set5", "Set14"):
        (root / name).mkdir(parents=True)
        (root / name / "a.png").write_bytes(b"v" * 100)
    (root / "train291").mkdir()
    for i, size in enumerate(sizes):
        (root / "train291" / f"{i:02d}.webp").write_bytes(bytes([i]) * size)
    return root


def _small_payload(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The staging script with a 2,450-byte payload and an empty tree: room for 2 of
    `_fake_data`'s 1,000-byte images beside the validation sets (200 bytes), 2 in each share."""
    stage = _stage_module()
    monkeypatch.setattr(stage, "tree_bytes", lambda exclude=None: 0)
    monkeypatch.setattr(stage, "PAYLOAD_LIMIT", 2450)
    monkeypatch.setattr(stage, "MARGIN", 0)
    monkeypatch.setattr(stage, "MIN_TRAINING_BYTES", 1000)
    return stage


def test_shares_gather_into_one_folder_and_a_lost_share_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = _small_payload(monkeypatch)
    source = _fake_data(tmp_path / "data", [1000] * 10)
    dest = tmp_path / "repo" / ".gpu_data"
    manifest = stage.stage(source, dest, calls=None)
    assert [len(c["files"]) for c in manifest["calls"]] == [2, 2, 2, 2, 2]
    assert [c["folder"] for c in manifest["calls"]] == [
        ".gpu_data.1", ".gpu_data.2", ".gpu_data.3", ".gpu_data.4", ".gpu_data"]
    assert all(c["payload_bytes"] <= 2450 for c in manifest["calls"])
    # On the device: share 2 never arrived (the machine went cold), share 3 arrived torn.
    shutil.rmtree(tmp_path / "repo" / ".gpu_data.2")
    torn = next((tmp_path / "repo" / ".gpu_data.3" / "train291").iterdir())
    torn.write_bytes(b"x")
    gathered = stage.gather(dest)["gathered"]
    assert gathered == {"train_images": 6, "missing": 4}
    assert len(list((dest / "train291").iterdir())) == 6
    assert json.loads((dest / "manifest.json").read_text())["gathered"] == gathered
    assert torn.is_file()  # left where it was
    assert stage.gather(dest)["gathered"] == gathered  # a second --gather counts the same

    # A name that leaves the share folder is never followed.
    manifest = stage.stage(source, dest, calls=2)
    assert not (tmp_path / "repo" / ".gpu_data.3").exists()  # restaging removed the old shares
    manifest["calls"][0]["files"] = {"../../outside.webp": 1000}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "outside.webp").write_bytes(b"o" * 1000)
    assert stage.gather(dest)["gathered"] == {"train_images": 2, "missing": 1}
    assert (tmp_path / "outside.webp").is_file()


def test_the_gpu_run_gathers_the_staged_shares_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = _small_payload(monkeypatch)
    source = _fake_data(tmp_path / "data", [1000] * 5)
    dest = tmp_path / ".gpu_data"
    stage.stage(source, dest, calls=None)
    gpu_run = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    data = gpu_run["training_data"](dest)
    assert data == {"train_images": 5, "of": 5, "rotation": 0, "gathered": {"train_images": 5, "missing": 0}}
    assert len(list((dest / "train291").iterdir())) == 5
    # Unstaged data (a folder of one's own) is counted and left as it is.
    assert gpu_run["training_data"](source) == {"train_images": 5}


def test_staging_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    stage = _stage_module()
    source = _fake_data(tmp_path / "data", [1000] * 3)
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not a staging"):
        stage.stage(source, dest)
    assert (dest / "notes.txt").read_text() == "keep"
    assert stage._calls("all") is None and stage._calls("3") == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            stage._calls(bad)


def test_staging_inside_the_tree_needs_folders_git_ignores(tmp_path: Path) -> None:
    stage = _stage_module()
    source = _fake_data(tmp_path / "data", [1000] * 3)
    # .gitignore holds /.gpu_data*: the default folder and its shares are ignored, so they
    # travel only when a call carries them.
    stage._check_ignored([ROOT / ".gpu_data", ROOT / ".gpu_data.1"])
    unignored = ROOT / "tests" / "staged-here"
    with pytest.raises(SystemExit, match="not ignored by git"):
        stage.stage(source, unignored)
    assert not unignored.exists()


def test_rotation_takes_contiguous_runs_that_cover_every_image(tmp_path: Path) -> None:
    stage = _stage_module()
    files = []
    for i in range(10):
        f = tmp_path / f"{i:02d}.webp"
        f.write_bytes(b"x" * 100)
        files.append(f)
    assert stage.choose_training_images(files, [10_000], 0) == [files]
    # Rooms that together hold everything take every image in order, whatever the rotation.
    assert stage.choose_training_images(files, [450, 600], 3) == [files[:4], files[4:]]
    seen = set()
    for rotation in range(5):
        (chosen,) = stage.choose_training_images(files, [450], rotation)
        assert len(chosen) == 4
        seen |= set(chosen)
    assert seen == set(files)
    # Over two rooms, a rotation's run continues from one share into the next.
    first, second = stage.choose_training_images(files, [250, 250], 4)
    assert first + second == files[8:] + files[:2]


def test_throughput_sweep_stops_at_the_first_out_of_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    import torch

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    measured: list[int] = []

    class FakeSpeed:
        @staticmethod
        def measure(batch_size: int, patch_size: int, **_: object) -> dict[str, object]:
            measured.append((patch_size, batch_size))
            if batch_size * patch_size**2 > 256 * 48**2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory")
            samples = batch_size * (1.0 if patch_size == 48 else 1.25)
            return {"batch_size": batch_size, "patch_size": patch_size, "samples_per_s": samples,
                    "hr_pixels_per_s": samples * (4 * patch_size) ** 2}

    monkeypatch.setitem(module["throughput"].__globals__, "load_script", lambda path: FakeSpeed)
    run = module["Run"](tmp_path, deadline=100.0)
    monkeypatch.setattr(run, "command", lambda argv, timeout, poll=None: (1, ""))  # compile fails
    args = argparse.Namespace(patch_sizes=[48, 64], device=None, model_kwargs={}, batch_sizes=[64, 128, 256, 512],
                              speed_steps=1, compile_timeout=5.0, steps=None, compile_modes=[None, "reduce-overhead"],
                              kind="cuda", scales=[2, 4, 8], medium=True, small=True, skip=[])  # fmt: skip
    choice = module["throughput"](run, args)
    # Each patch size's sweep stops at its first out-of-memory: 512 is not tried after 256.
    assert measured == [(48, 64), (48, 128), (48, 256), (48, 512), (64, 64), (64, 128), (64, 256)]
    # Patch 64 at batch 128 (160 samples/s) trains on more HR pixels than 48 at 256 (256/s).
    assert choice == {"batch_size": 128, "patch_size": 64, "compile": False, "compile_mode": None}
    log = (tmp_path / "log.txt").read_text()
    assert "patch 48, batch 512: out of memory" in log and "patch 64, batch 256: out of memory" in log


@pytest.mark.parametrize(
    ("medium", "small", "compiles"), [(False, False, True), (True, False, False), (False, True, False)]
)
def test_compile_is_chosen_only_if_it_saves_more_than_every_training_process_spends_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medium: bool, small: bool, compiles: bool
) -> None:

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))

    class FakeSpeed:
        @staticmethod
        def measure(batch_size: int, patch_size: int, **_: object) -> dict[str, object]:
            return {"batch_size": batch_size, "patch_size": patch_size, "samples_per_s": 100.0,
                    "hr_pixels_per_s": 100.0 * (4 * patch_size) ** 2}

    monkeypatch.setitem(module["throughput"].__globals__, "load_script", lambda path: FakeSpeed)
    run = module["Run"](tmp_path, deadline=170.0)
    # The regional compile doubles the speed for 5 s a process; CUDA graphs triple it for 8 s.
    speeds = {None: (200.0, 5.0), "reduce-overhead": (300.0, 8.0)}

    def command(argv: list[str], timeout: float, poll: object = None) -> tuple[int, str]:
        mode = argv[argv.index("--compile-mode") + 1] if "--compile-mode" in argv else None
        return 0, json.dumps({"batch_size": 64, "samples_per_s": speeds[mode][0], "first_step_s": speeds[mode][1]})

    monkeypatch.setattr(run, "command", command)
    args = argparse.Namespace(patch_sizes=[48], device=None, model_kwargs={}, batch_sizes=[64], speed_steps=1,
                              compile_timeout=5.0, kind="cuda", scales=[2, 4, 8], medium=medium, small=small,
                              steps=None, compile_modes=[None, "reduce-overhead"], skip=["real"])  # fmt: skip
    choice = module["throughput"](run, args)
    # About 60 s of training left (170 less the inference reserve): twice the speed saves about
    # 30 s, three times about 40 s; compiling costs 5 or 8 s in each of 3 training processes,
    # or 6 with the medium or the small variants.
    # CUDA graphs win with msr alone (40 - 24 > 30 - 15); with another variant nothing pays.
    assert choice["compile"] is compiles
    options = run.results["steps"]["throughput"]["compile_options"]
    assert [o["compile_costs_s"] for o in options] == ([30.0, 48.0] if medium or small else [15.0, 24.0])
    assert 25.0 < options[0]["compile_saves_s"] <= 30.0 and 35.0 < options[1]["compile_saves_s"] <= 40.0
    if compiles:
        assert choice["compile_mode"] == "reduce-overhead" and choice["compile_costs_s"] == 24.0


class _SlowClock:
    """``time`` for gpu_run.py on a machine as slow as a test wants: each command advances it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _fake_training(
    module: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, deadline: float | None,
    seconds_per_command: float, skip: tuple[str, ...] = ("real",), medium: bool = True, small: bool = True,
    scales: tuple[int, ...] = (2, 4, 8),
) -> tuple[list[list[str]], list[float], object]:
    """train_scales, then train_real unless ``skip`` holds it, with each training process
    replaced by one that takes ``seconds_per_command`` (plus its time budget) and writes the
    results train_291.py would (30 dB everywhere; nothing judged against shipped files)."""

    import shipping

    clock = _SlowClock()
    monkeypatch.setitem(module["train_scales"].__globals__, "time", clock)  # the measured overheads
    monkeypatch.setitem(module["Run"].elapsed.__globals__, "time", clock)  # the run's deadline
    run = module["Run"](tmp_path / "out", deadline=deadline)
    calls: list[list[str]] = []
    timeouts: list[float] = []

    def command(argv: list[str], timeout: float, poll: object = None) -> tuple[int, str]:
        calls.append(argv)
        timeouts.append(timeout)
        budget = float(argv[argv.index("--time-budget") + 1]) if "--time-budget" in argv else 0.0
        clock.now += seconds_per_command + budget
        runs, scale = Path(argv[argv.index("--output-dir") + 1]), argv[argv.index("--scales") + 1]
        variant = "msr_small" if "--small" in argv else "msr_medium" if "--medium" in argv else "msr"
        (runs / f"x{scale}").mkdir(parents=True, exist_ok=True)
        (runs / f"x{scale}" / "best.safetensors").write_bytes(b"weights")
        conditions = (None, *shipping.DEGRADED_CONDITIONS) if "--tag" in argv else (None,)
        rows = [{"model": f"{variant}_x{scale}", "dataset": d, "psnr": 30.0, "ssim": 0.9, "steps": 3, "init": None}
                | ({"condition": c} if c else {}) for d in ("Set5", "Set14") for c in conditions]  # fmt: skip
        (runs / "results.json").write_text(json.dumps(rows))
        return 0, ""

    monkeypatch.setattr(run, "command", command)
    (tmp_path / "package").mkdir(exist_ok=True)
    args = argparse.Namespace(scales=list(scales), medium=medium, small=small, kind="cpu", data_dir=tmp_path,
                              patch_size=16, package_dir=tmp_path / "package", model_kwargs={}, device="cpu",
                              min_budget=2.0, work_dir=tmp_path / "runs", steps=3 if deadline is None else None,
                              skip=list(skip), fresh_t291={}, real_degradation="web")  # fmt: skip
    choice = {"batch_size": 4, "compile": False}
    module["train_scales"](run, args, choice)
    if "real" not in skip:
        module["train_real"](run, args, choice)
    return calls, timeouts, run


def _trained(calls: list[list[str]]) -> list[str]:
    """The files ``calls`` trained, as ``<arch>.<tag>``."""
    names = []
    for argv in calls:
        variant = "msr_small" if "--small" in argv else "msr_medium" if "--medium" in argv else "msr"
        tag = argv[argv.index("--tag") + 1] if "--tag" in argv else "t291"
        names.append(f"{variant}_x{argv[argv.index('--scales') + 1]}.{tag}")
    return names


def test_step_counts_train_every_model_however_slow_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25, item 14: on a busy machine the rehearsal skipped msr_x4 and msr_x8 ("only -16 s
    left for training"); with step counts no model is skipped for time."""
    (tmp_path / "out").mkdir()
    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    calls, timeouts, run = _fake_training(module, monkeypatch, tmp_path, None, seconds_per_command=10_000.0)
    assert len(calls) == 9 and all("--time-budget" not in argv for argv in calls)
    assert all(argv[argv.index("--max-steps") + 1] == "3" for argv in calls)
    assert timeouts == [module["HANG_GUARD_S"]] * 9  # a guard against a hang, not a deadline
    assert len(run.results["steps"]["quality"]) == 18
    # Each variant in its own order, full-size first, each largest scale first.
    assert _trained(calls) == [f"{v}_x{s}.t291" for v in ("msr", "msr_medium", "msr_small") for s in (8, 4, 2)]


def test_the_files_worth_most_come_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gpu_plan

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    full = [f"msr_x{s}.t291" for s in (8, 4, 2)]
    medium = [f"msr_medium_x{s}.t291" for s in (8, 4, 2)]
    small = [f"msr_small_x{s}.t291" for s in (8, 4, 2)]
    real = [f"msr_x{s}.real" for s in (4, 2, 8)]
    medium_real = [f"msr_medium_x{s}.real" for s in (4, 2, 8)]
    # Step c alone: the small files find no room. With step f, msr's .real files displace the
    # medium .t291 ones, and the medium .real ones find none either.
    cases = ((("real",), full + medium, small), ((), full + real, small + medium + medium_real))
    for skip, returned, left_out in cases:
        folder = tmp_path / "-".join(skip or ["all"])
        (folder / "out").mkdir(parents=True)
        calls, _, run = _fake_training(module, monkeypatch, folder, None, seconds_per_command=1.0, skip=skip)
        assert len(calls) == 9 + (0 if skip else 6)
        files = sorted(p.name for p in (folder / "out").iterdir())
        assert files == sorted(["log.txt", "results.json", *(f"{name}.safetensors" for name in returned)])
        assert len(files) == gpu_plan.MAX_OUT_FILES
        weights = run.results["steps"]["weights"]
        assert weights["returned"] == returned and sorted(weights["left_out"]) == sorted(left_out)
        # Their weights stay in the work folder, which the log and the results name.
        assert all(Path(path).is_file() for path in weights["left_out"].values())
        log = (folder / "out" / "log.txt").read_text()
        assert all(f"{name}: no room in --out" in log or f"{name}: displaced from --out" in log for name in left_out)


def test_a_deadline_shares_out_what_is_left_and_skips_what_no_longer_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").mkdir()
    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    calls, _, _ = _fake_training(module, monkeypatch, tmp_path, 400.0, seconds_per_command=20.0)
    budgets = [float(argv[argv.index("--time-budget") + 1]) for argv in calls]
    assert len(calls) == 9 and all("--max-steps" not in argv for argv in calls)
    # 400 s less the inference reserve (25) and 15 s around each of 9 models, shared 45/30/25
    # (x8 first) at full size, half that for the medium ones and a quarter for the small ones:
    # x8 gets 240 * 0.45 / 1.75.
    assert budgets[0] == pytest.approx(240 * 0.45 / 1.75, abs=0.1)
    assert [argv[argv.index("--scales") + 1] for argv in calls] == ["8", "4", "2"] * 3
    assert sum(budgets) <= 400 - 25
    # Ten times as long around a model as guessed: after the first, nothing fits any more.
    slow = tmp_path / "slow"
    (slow / "out").mkdir(parents=True)
    calls, _, _ = _fake_training(module, monkeypatch, slow, 400.0, seconds_per_command=150.0)
    assert len(calls) == 1
    assert (slow / "out" / "log.txt").read_text().count("too little time left for training; skipped") == 8


def test_a_short_deadline_leaves_out_the_least_valuable_models_wherever_they_stand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too little time for every model: the small ones, which train in step c, go without
    before msr's .real files, which train in step f after them (`gpu_plan.rank`)."""
    import gpu_plan

    (tmp_path / "out").mkdir()
    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    calls, _, run = _fake_training(module, monkeypatch, tmp_path, 300.0, seconds_per_command=16.0, skip=())
    trained = _trained(calls)
    variants = list(gpu_plan.VARIANTS)
    every = gpu_plan.training_queue([2, 4, 8], variants) + gpu_plan.real_queue([2, 4, 8], variants)
    skipped = [t for t in every if t.name not in trained]
    assert trained[:3] == [f"msr_x{s}.t291" for s in (8, 4, 2)] and "msr_x4.real" in trained
    assert any(t.variant == "msr_small" for t in skipped)
    # Everything trained ranks above everything skipped.
    assert max(gpu_plan.rank(t) for t in every if t.name in trained) < min(gpu_plan.rank(t) for t in skipped)
    log = (tmp_path / "out" / "log.txt").read_text()
    assert all(f"{t.name}: too little time left for training; skipped" in log for t in skipped)


def test_a_medium_file_ships_only_if_it_beats_the_small_one_on_set5_and_set14(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shipping

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    for small_psnr in (29.0, 31.0):
        folder = tmp_path / str(small_psnr)
        (folder / "out").mkdir(parents=True)
        (folder / "package").mkdir()
        (folder / "package" / "msr_small_x4.t291.safetensors").write_bytes(b"small")
        scored: list[tuple[str, str | None]] = []

        def evaluate(
            weights: Path, data: Path, scale: int, *, small_psnr: float = small_psnr, **kwargs: object
        ) -> dict[str, float]:
            scored.append((data.name, kwargs.get("condition")))
            # The new weights score 30 dB everywhere; the small file higher only on Set14.
            return {"psnr": small_psnr if data.name == "Set14" else 29.0, "ssim": 0.9}

        monkeypatch.setattr(shipping, "evaluate", evaluate)
        _, _, run = _fake_training(module, monkeypatch, folder, None, seconds_per_command=1.0, small=False, scales=(4,))
        # The small .t291 file is scored with the protocol, on the sets only, and only for the
        # medium file: the full-size .t291 one ships whatever the small one scores.
        assert scored == [("Set5", "clean"), ("Set14", "clean")]
        rows = run.results["steps"]["quality"]
        medium = [r for r in rows if r["model"] == "msr_medium_x4"]
        assert [r["small_psnr"] for r in medium] == [29.0, small_psnr]
        assert all(r["beats_small"] is (small_psnr < 30.0) for r in medium)
        assert all("beats_small" not in r for r in rows if r["model"] == "msr_x4")
        assert (folder / "out" / "msr_x4.t291.safetensors").is_file()
        assert (folder / "out" / "msr_medium_x4.t291.safetensors").is_file() is (small_psnr < 30.0)


def _real_args(tmp_path: Path, package: Path, small: bool, fresh_t291: dict[str, str]) -> argparse.Namespace:
    """Step f's arguments for a CPU test of `train_real` at x4, the medium variant on."""
    return argparse.Namespace(scales=[4], skip=[], kind="cpu", data_dir=tmp_path, patch_size=16, steps=3,
                              package_dir=package, model_kwargs={}, device="cpu", min_budget=2.0, medium=True,
                              small=small, work_dir=tmp_path / "runs", real_degradation="web",
                              fresh_t291=fresh_t291)  # fmt: skip


@pytest.mark.parametrize("small_psnr", [29.0, 31.0])
def test_real_weights_ship_only_if_they_beat_the_small_file_on_every_degraded_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_psnr: float
) -> None:

    import shipping

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    (tmp_path / "out").mkdir()
    run = module["Run"](tmp_path / "out", deadline=None)
    package = tmp_path / "package"
    package.mkdir()
    (package / "msr_small_x4.real.safetensors").write_bytes(b"small")
    calls: list[list[str]] = []

    def command(argv: list[str], timeout: float, poll: object = None) -> tuple[int, str]:
        calls.append(argv)
        runs = Path(argv[argv.index("--output-dir") + 1])
        (runs / "x4").mkdir(parents=True, exist_ok=True)
        (runs / "x4" / "best.safetensors").write_bytes(b"weights")
        arch = "msr_medium_x4" if "--medium" in argv else "msr_x4"
        keys = [(d, c) for d in shipping.SHIPPING_SETS for c in (None, *shipping.DEGRADED_CONDITIONS)]
        rows = [{"model": arch, "dataset": d, "psnr": 30.0, "ssim": 0.9, "steps": 3, "init": None}
                | ({"condition": c} if c else {}) for d, c in keys]  # fmt: skip
        (runs / "results.json").write_text(json.dumps(rows))
        return 0, ""

    def evaluate(weights: Path, folder: Path, scale: int, **kwargs: object) -> dict[str, float]:
        # The small file is better on one condition only when small_psnr is above 30.
        worse = kwargs["condition"] == "noise10" and folder.name == "Set14"
        return {"psnr": small_psnr if worse else 29.0, "ssim": 0.9}

    monkeypatch.setattr(run, "command", command)
    monkeypatch.setattr(shipping, "evaluate", evaluate)
    # Each starts from this session's .t291 weights of its variant (none ships).
    fresh = {arch: str(tmp_path / "runs" / variant / "x4" / "best.safetensors")
             for arch, variant in (("msr_x4", "msr"), ("msr_medium_x4", "msr_medium"))}  # fmt: skip
    args = _real_args(tmp_path, package, small=True, fresh_t291=fresh)
    module["train_real"](run, args, {"batch_size": 4, "patch_size": 16, "compile": False})
    assert len(calls) == 2 and "--medium" not in calls[0] and "--medium" in calls[1]
    for argv, arch in zip(calls, fresh):
        assert argv[argv.index("--degradation") + 1] == "web" and argv[argv.index("--tag") + 1] == "real"
        assert argv[argv.index("--init") + 1] == fresh[arch]
    rows = run.results["steps"]["real"]
    assert [r["model"] for r in rows] == ["msr_x4"] * 10 + ["msr_medium_x4"] * 10
    assert all(r["beats_small"] is (small_psnr < 30.0) for r in rows)
    assert sum("small_psnr" in r for r in rows) == 16  # the degraded conditions only
    for arch in ("msr_x4", "msr_medium_x4"):
        assert (tmp_path / "out" / f"{arch}.real.safetensors").is_file() is (small_psnr < 30.0)


@pytest.mark.parametrize("shipped", [(), ("t291",), ("t291", "real")])
def test_real_training_starts_from_the_best_weights_at_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: tuple[str, ...]
) -> None:
    """Step c's t291 weights beat the shipped file (or none ships): step f starts from them at
    the fine-tune rate, unless a .real file ships, which train_291.py fine-tunes by itself.
    The medium variant follows the same rule."""

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    (tmp_path / "out").mkdir()
    run = module["Run"](tmp_path / "out", deadline=None)
    package = tmp_path / "package"
    package.mkdir()
    for arch in ("msr_x4", "msr_medium_x4"):
        for tag in shipped:
            (package / f"{arch}.{tag}.safetensors").write_bytes(b"shipped")
    calls: list[list[str]] = []
    monkeypatch.setattr(run, "command", lambda argv, timeout, poll=None: (calls.append(argv), (1, ""))[1])
    fresh = {arch: str(tmp_path / "runs" / variant / "x4" / "best.safetensors")
             for arch, variant in (("msr_x4", "msr"), ("msr_medium_x4", "msr_medium"))}  # fmt: skip
    args = _real_args(tmp_path, package, small=True, fresh_t291=fresh)
    module["train_real"](run, args, {"batch_size": 4, "patch_size": 16, "compile": False})
    assert len(calls) == 2
    for argv, arch in zip(calls, ("msr_x4", "msr_medium_x4")):
        if "real" in shipped:
            assert "--init" not in argv and "--lr" not in argv
        else:
            assert argv[argv.index("--init") + 1] == fresh[arch] and float(argv[argv.index("--lr") + 1]) == 2.5e-4


@pytest.mark.parametrize("shipped", [None, "msr_medium_x4.t291", "msr_small_x4.real"])
def test_a_medium_real_file_needs_trained_weights_to_start_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shipped: str | None
) -> None:
    """No medium .t291 weights at all (none ships, step c trained none) and no small file to
    grow: msr_medium_x4.real is skipped rather than trained from scratch. A shipped medium .t291
    file is fine-tuned, and so is the small .real file, grown into the medium network."""

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    (tmp_path / "out").mkdir()
    run = module["Run"](tmp_path / "out", deadline=None)
    package = tmp_path / "package"
    package.mkdir()
    if shipped:
        (package / f"{shipped}.safetensors").write_bytes(b"shipped")
    calls: list[list[str]] = []
    monkeypatch.setattr(run, "command", lambda argv, timeout, poll=None: (calls.append(argv), (1, ""))[1])
    args = _real_args(tmp_path, package, small=False, fresh_t291={})
    module["train_real"](run, args, {"batch_size": 4, "patch_size": 16, "compile": False})
    medium = [argv for argv in calls if "--medium" in argv]
    log = (tmp_path / "out" / "log.txt").read_text()
    assert len(medium) == int(shipped is not None)
    if shipped:  # train_291.py fine-tunes (or grows) the shipped file by itself
        assert "--init" not in medium[0] and "--scales 4" in " ".join(medium[0])
        assert f"from {package / shipped}.safetensors" in log
    else:
        assert "msr_medium_x4.real: no msr_medium_x4.t291 weights to start from; skipped" in log


def test_the_order_of_worth_ranks_variant_then_tag_then_training_order() -> None:
    import gpu_plan

    variants = list(gpu_plan.VARIANTS)
    every = gpu_plan.training_queue([2, 4, 8], variants) + gpu_plan.real_queue([2, 4, 8], variants)
    assert [t.name for t in sorted(every, key=gpu_plan.rank)] == [
        "msr_x8.t291", "msr_x4.t291", "msr_x2.t291", "msr_x4.real", "msr_x2.real", "msr_x8.real",
        "msr_medium_x8.t291", "msr_medium_x4.t291", "msr_medium_x2.t291",
        "msr_medium_x4.real", "msr_medium_x2.real", "msr_medium_x8.real",
        "msr_small_x8.t291", "msr_small_x4.t291", "msr_small_x2.t291",
    ]  # fmt: skip
    # No .real files of msr_small: they are the CPU's, and the bar.
    assert gpu_plan.real_queue([4], ["msr", "msr_small"]) == [gpu_plan.Target("msr", 4, "real")]
    assert gpu_plan.returned(every[::-1], places=2) == [gpu_plan.Target("msr", 8), gpu_plan.Target("msr", 4)]
    # A medium model gets half its full-size one's share, a small one a quarter, a .real one half.
    assert gpu_plan.share(gpu_plan.Target("msr_medium", 8)) == pytest.approx(0.225)
    assert gpu_plan.share(gpu_plan.Target("msr_small", 4)) == pytest.approx(0.075)
    assert gpu_plan.share(gpu_plan.Target("msr_medium", 4, "real")) == pytest.approx(0.075)


def test_the_budget_goes_to_the_models_worth_most() -> None:
    import gpu_plan

    msr, small = gpu_plan.Target("msr", 4), gpu_plan.Target("msr_small", 8)
    # Time for both: shared by weight (0.30 and 0.1125), after 10 s around each.
    assert gpu_plan.training_budget(100.0, 10.0, [small, msr], 2.0) == pytest.approx(80 * 0.1125 / 0.4125)
    # Time for one: the small model is next in line, but msr_x4 is worth more; it gets it all.
    assert gpu_plan.training_budget(40.0, 10.0, [small, msr], 20.0) is None
    assert gpu_plan.training_budget(40.0, 10.0, [msr], 20.0) == pytest.approx(30.0)
    assert gpu_plan.training_budget(25.0, 10.0, [msr], 20.0) is None


def _speed_report(models: list[str], compile_mode: str | None) -> dict[str, object]:
    """What benchmarks/speed.py prints: eager rows, and compiled ones where it compiled. fp32
    eager latencies of 10, 8 and 6 ms for msr, msr_medium and msr_small, 5 for the peers; bf16
    halves them, compiling halves them again."""
    eager = {"msr": 10.0, "msr_medium": 8.0, "msr_small": 6.0}
    rows = []
    for model in models:
        for dtype, factor in (("float32", 1.0), ("bfloat16", 0.5)):
            for compiled in (False, True) if compile_mode else (False,):
                latency = eager.get(model, 5.0) * factor * (0.5 if compiled else 1.0)
                rows.append({"model": model, "dtype": dtype, "compiled": compiled, "latency_ms": latency,
                             "gflop_per_frame": 1.0, "achieved_tflops": 1.0, "first_call_s": 0.1})  # fmt: skip
    return {"env": {"device": "fake"}, "results": rows}


def test_inference_times_every_model_eager_then_each_compiled_one_in_each_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    run = module["Run"](tmp_path, deadline=None)
    calls: list[list[str]] = []

    def command(argv: list[str], timeout: float, poll: object = None) -> tuple[int, str]:
        calls.append(argv)
        models = argv[argv.index("--models") + 1 : argv.index("--compile")]
        mode = argv[argv.index("--compile-mode") + 1] if "--compile-mode" in argv else None
        if mode == "default" and models == ["span"]:
            return 1, ""  # one compile failing costs only its own rows
        return 0, json.dumps(_speed_report(models, mode))

    monkeypatch.setattr(run, "command", command)
    module["inference"](run, argparse.Namespace(rehearse=False))
    peers = ["rcan", "swinir", "span"] if importlib.util.find_spec("spandrel") else []
    eager = ["msr", "msr_medium", "msr_small", "edsr_baseline", *peers]
    compiled = ["msr", "msr_medium", "msr_small", "edsr_baseline", *peers[2:]]
    assert calls[0][calls[0].index("--models") + 1 :] == [*eager, "--compile", "none"]
    assert [(argv[argv.index("--compile-mode") + 1], argv[argv.index("--models") + 1]) for argv in calls[1:]] == [
        (mode, model) for mode in ("reduce-overhead", "default") for model in compiled
    ]
    assert all(argv[argv.index("--size") + 1] == "1280x720" for argv in calls)
    result = run.results["steps"]["inference"]
    rows = {(r["model"], r["dtype"], r["compile_mode"]): r for r in result["rows"]}
    timed = {(m, None) for m in eager} | {(m, mode) for mode in ("reduce-overhead", "default") for m in compiled}
    if peers:
        timed.discard(("span", "default"))
    assert set(rows) == {(m, d, mode) for m, mode in timed for d in ("float32", "bfloat16")}
    # Compared across processes: with msr_x4 in the same dtype and mode, and with the model's
    # own fp32 eager latency.
    assert rows["msr_small", "bfloat16", "reduce-overhead"]["latency_vs_msr"] == pytest.approx(6.0 / 10.0)
    assert rows["msr_small", "bfloat16", "reduce-overhead"]["vs_fp32_eager"] == pytest.approx(4.0)
    assert result["bf16_speedup"]["msr_medium/default"] == pytest.approx(2.0)
    assert set(result["bf16_speedup"]) == {f"{m}/{mode or 'eager'}" for m, mode in timed}


def test_inference_times_what_the_deadline_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    module = runpy.run_path(str(SCRIPTS / "gpu_run.py"))
    clock = _SlowClock()
    monkeypatch.setitem(module["Run"].elapsed.__globals__, "time", clock)  # the run's clock
    run = module["Run"](tmp_path, deadline=100.0)
    calls: list[list[str]] = []

    def command(argv: list[str], timeout: float, poll: object = None) -> tuple[int, str]:
        calls.append(argv)
        clock.now += 35.0
        models = argv[argv.index("--models") + 1 : argv.index("--compile")]
        mode = argv[argv.index("--compile-mode") + 1] if "--compile-mode" in argv else None
        return 0, json.dumps(_speed_report(models, mode))

    monkeypatch.setattr(run, "command", command)
    module["inference"](run, argparse.Namespace(rehearse=False))
    # Eager, then msr and msr_medium with CUDA graphs, 35 s each: the rest are not timed.
    assert len(calls) == 3
    assert {r["compile_mode"] for r in run.results["steps"]["inference"]["rows"]} == {None, "reduce-overhead"}
    assert "msr_small compiled (reduce-overhead): no time left; not timed" in (tmp_path / "log.txt").read_text()


def test_the_small_file_sets_no_bar_where_none_ships(tmp_path: Path) -> None:
    import shipping

    assert shipping.small_variant("msr_x8") == "msr_small_x8"
    assert shipping.small_variant("msr_medium_x2") == "msr_small_x2"
    with pytest.raises(ValueError):
        shipping.small_variant("msr_small_x4")
    # Which files are held to the small one: every medium file, the full-size .real ones.
    assert shipping.needs_small_bar("msr_medium_x4", "t291") and shipping.needs_small_bar("msr_medium_x4", "real")
    assert shipping.needs_small_bar("msr_x4", "real") and not shipping.needs_small_bar("msr_x4", "t291")
    assert not shipping.needs_small_bar("msr_small_x4", "real")
    verdict = shipping.compare_with_small({}, "msr_x4", "real", tmp_path, tmp_path, 4)
    assert verdict.replace and verdict.shipped is None
    scores = {f"{d}/{c}": {"psnr": 30.0} for d in shipping.SHIPPING_SETS for c in shipping.DEGRADED_CONDITIONS}
    assert shipping.beats_on_every_degraded_condition(scores, {k: {"psnr": 29.9} for k in scores})
    assert not shipping.beats_on_every_degraded_condition(scores, {k: {"psnr": 30.0} for k in scores})
    del scores["Set14/jpeg50"]  # not scored there: not shown to improve
    assert not shipping.beats_on_every_degraded_condition(scores, {k: {"psnr": 0.0} for k in scores} | {"Set14/jpeg50": {"psnr": 0.0}})
