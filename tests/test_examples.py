"""The example recipes run end to end (CPU smoke runs on generated images)."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _images(folder: Path, count: int, size: tuple[int, int], rng: np.random.Generator, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names[:count]:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{name}.png")


def _data_291(root: Path, train_size: tuple[int, int], val_size: tuple[int, int], seed: int) -> Path:
    """A stand-in for ../shared/data: train291/ (4 images), Set5/ and Set14/ (2 each)."""
    rng = np.random.default_rng(seed)
    names = [f"im{i}" for i in range(4)]
    _images(root / "train291", 4, train_size, rng, names)
    _images(root / "Set5", 2, val_size, rng, names)
    _images(root / "Set14", 2, val_size, rng, names)
    return root


def _run(script: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert exit_.value.code == 0


def test_train_291_refuses_to_package_other_architectures(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--data-dir", ".", "--package", "--model-kwargs", '{"num_blocks": 6}']
    monkeypatch.setattr(sys, "argv", ["train_291.py", *args])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(EXAMPLES / "train_291.py"), run_name="__main__")
    assert exit_.value.code == 2


@pytest.mark.slow
def test_train_291_chains_scales_and_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data_291(tmp_path / "data", (80, 72), (48, 40), seed=0)
    package = tmp_path / "weights"
    package.mkdir()
    args = ["--data-dir", str(data), "--scales", "2", "4", "--max-steps", "2", "--batch-size", "2",
            "--patch-size", "8", "--device", "cpu",
            "--output-dir", str(tmp_path / "runs"), "--package", "--package-dir", str(package)]
    _run("train_291.py", args, monkeypatch)

    rows = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert [(r["model"], r["dataset"], r["scale"]) for r in rows] == [
        ("msr_x2", "Set5", 2), ("msr_x2", "Set14", 2), ("msr_x4", "Set5", 4), ("msr_x4", "Set14", 4)
    ]
    assert all(np.isfinite(r["psnr"]) for r in rows)
    # x4 started from x2's trunk: its config names the x2 weights.
    config = json.loads((tmp_path / "runs" / "x4" / "config.json").read_text())
    assert config["init_weights"] == str(tmp_path / "runs" / "x2" / "best.safetensors")
    assert sorted(p.name for p in package.iterdir()) == ["msr_x2.t291.safetensors", "msr_x4.t291.safetensors"]
    assert all(t.dtype.itemsize == 2 for t in load_file(package / "msr_x4.t291.safetensors").values())


def test_train_div2k_smoke_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "DIV2K"
    _images(root / "DIV2K_train_HR", 3, (64, 64), rng, ["0001", "0002", "0003"])
    _images(root / "DIV2K_train_LR_bicubic" / "X4", 3, (16, 16), rng, ["0001x4", "0002x4", "0003x4"])
    _images(root / "DIV2K_valid_HR", 1, (48, 48), rng, ["0801"])
    _images(root / "DIV2K_valid_LR_bicubic" / "X4", 1, (12, 12), rng, ["0801x4"])
    args = ["--data-dir", str(root), "--scale", "4", "--device", "cpu", "--max-steps", "2",
            "--batch-size", "2", "--patch-size", "8", "--val-images", "1",
            "--output-dir", str(tmp_path / "run")]
    _run("train_div2k.py", args, monkeypatch)
    assert (tmp_path / "run" / "best.safetensors").is_file()


def _ship_small_x2(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    """A first small x2 run packaged into tmp_path/weights: (the run's arguments, the shipped file)."""
    data = _data_291(tmp_path / "data", (64, 64), (32, 32), seed=seed)
    package = tmp_path / "weights"
    package.mkdir()
    common = ["--data-dir", str(data), "--small", "--scales", "2", "--max-steps", "2",
              "--batch-size", "2", "--patch-size", "8", "--device", "cpu", "--package",
              "--package-dir", str(package)]
    _run("train_291.py", [*common, "--output-dir", str(tmp_path / "first")], monkeypatch)
    return common, package / "msr_small_x2.t291.safetensors"


def test_train_291_fine_tunes_shipped_weights_and_keeps_the_better(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common, shipped = _ship_small_x2(tmp_path, 2, monkeypatch)
    before = shipped.read_bytes()

    _run("train_291.py", [*common, "--output-dir", str(tmp_path / "second")], monkeypatch)
    rows = json.loads((tmp_path / "second" / "results.json").read_text())
    assert all(r["init"] == str(shipped) for r in rows)  # fine-tuned, not from scratch
    assert all("shipped_psnr" in r for r in rows)
    better = all(r["psnr"] > r["shipped_psnr"] for r in rows)
    assert all(r["replace"] == better for r in rows)
    assert (shipped.read_bytes() != before) == better


def test_train_291_ships_a_medium_file_only_if_it_beats_the_small_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common, small = _ship_small_x2(tmp_path, 4, monkeypatch)
    medium = small.with_name("msr_medium_x2.t291.safetensors")

    args = [a for a in common if a != "--small"] + ["--medium", "--output-dir", str(tmp_path / "medium")]
    _run("train_291.py", args, monkeypatch)
    rows = json.loads((tmp_path / "medium" / "results.json").read_text())
    assert [r["model"] for r in rows] == ["msr_medium_x2"] * 2
    assert all(r["init"] == str(small) for r in rows)  # no medium file: the small one, grown
    assert all("small_psnr" in r for r in rows)  # held to msr_small_x2.t291, scored here
    beats = all(r["psnr"] > r["small_psnr"] for r in rows)
    assert all(r["beats_small"] == beats for r in rows)
    assert medium.is_file() == beats


@pytest.mark.slow
def test_train_291_compares_with_shipped_weights_after_an_explicit_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common, shipped = _ship_small_x2(tmp_path, 3, monkeypatch)
    before = shipped.read_bytes()

    # A restart at the full lr from any weights is still held to the shipped file's scores.
    init = str(tmp_path / "first" / "x2" / "best.safetensors")
    _run("train_291.py", [*common, "--init", init, "--output-dir", str(tmp_path / "second")], monkeypatch)
    rows = json.loads((tmp_path / "second" / "results.json").read_text())
    assert all(r["init"] == init for r in rows)
    config = json.loads((tmp_path / "second" / "x2" / "config.json").read_text())
    assert config["lr"] == 1e-3
    better = all(r["psnr"] > r["shipped_psnr"] for r in rows)
    assert all(r["replace"] == better for r in rows)
    assert (shipped.read_bytes() != before) == better


@pytest.mark.slow
def test_train_291_fine_tune_lr_is_its_own_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    common, _ = _ship_small_x2(tmp_path, 4, monkeypatch)
    _run("train_291.py", [*common, "--finetune-lr", "5e-4", "--output-dir", str(tmp_path / "second")],
         monkeypatch)
    config = json.loads((tmp_path / "second" / "x2" / "config.json").read_text())
    assert config["lr"] == 5e-4
    first = json.loads((tmp_path / "first" / "x2" / "config.json").read_text())
    assert first["lr"] == 1e-3


@pytest.mark.slow
def test_train_291_gives_each_scale_the_weights_of_its_own_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data_291(tmp_path / "data", (80, 72), (48, 40), seed=5)
    args = ["--data-dir", str(data), "--small", "--scales", "2", "4", "--max-steps", "1", "--batch-size", "2",
            "--patch-size", "8", "--device", "cpu", "--level-weights", "0.25,1",
            "--output-dir", str(tmp_path / "runs")]
    _run("train_291.py", args, monkeypatch)
    configs = {s: json.loads((tmp_path / "runs" / f"x{s}" / "config.json").read_text()) for s in (2, 4)}
    assert configs[2]["level_weights"] == [1.0]
    assert configs[4]["level_weights"] == [0.25, 1.0]


def test_train_291_refuses_too_few_level_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train_291.py", "--data-dir", ".", "--scales", "8", "--level-weights", "1,2"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(EXAMPLES / "train_291.py"), run_name="__main__")
    assert exit_.value.code == 2


@pytest.mark.slow
def test_train_291_real_tag_starts_from_the_clean_weights_and_is_scored_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common, clean = _ship_small_x2(tmp_path, 6, monkeypatch)
    real_args = [*common, "--degradation", "web", "--tag", "real"]
    _run("train_291.py", [*real_args, "--output-dir", str(tmp_path / "real")], monkeypatch)
    rows = json.loads((tmp_path / "real" / "results.json").read_text())
    assert all(r["init"] == str(clean) and r["train_degradation"] == "web" for r in rows)
    assert [r.get("condition", "clean") for r in rows if r["dataset"] == "Set5"] == [
        "clean", "jpeg75", "jpeg50", "noise10", "noise5-jpeg75"
    ]
    config = json.loads((tmp_path / "real" / "x2" / "config.json").read_text())
    assert config["degradation"] == "web"
    shipped = clean.with_name("msr_small_x2.real.safetensors")
    assert shipped.is_file()  # the first .real file: nothing to beat
    # A second run fine-tunes the shipped .real file and must beat it everywhere to replace it.
    before = shipped.read_bytes()
    _run("train_291.py", [*real_args, "--output-dir", str(tmp_path / "real2")], monkeypatch)
    rows = json.loads((tmp_path / "real2" / "results.json").read_text())
    assert all(r["init"] == str(shipped) for r in rows)
    better = all(r["psnr"] > r["shipped_psnr"] for r in rows)
    assert all(r["replace"] == better for r in rows) and (shipped.read_bytes() != before) == better


@pytest.mark.slow
def test_train_291_timed_runs_checkpoint_as_they_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with a time budget checkpoints every TIMED_CKPT_EVERY steps, not only at its end:
    the CPU recipes train for hours, and a run killed with its shell resumes from there."""
    recipe = runpy.run_path(str(EXAMPLES / "train_291.py"), run_name="train_291")  # its constants only
    data = _data_291(tmp_path / "data", (80, 72), (48, 40), seed=7)
    args = ["--data-dir", str(data), "--small", "--scales", "2", "--time-budget", "0.5", "--batch-size", "2",
            "--patch-size", "8", "--device", "cpu", "--no-compile", "--output-dir", str(tmp_path / "runs")]
    _run("train_291.py", args, monkeypatch)
    config = json.loads((tmp_path / "runs" / "x2" / "config.json").read_text())
    assert config["time_budget"] == 0.5
    assert config["ckpt_every"] == recipe["TIMED_CKPT_EVERY"] < 10**4
    assert (tmp_path / "runs" / "x2" / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_train_291_resume_continues_each_scale_and_scores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data_291(tmp_path / "data", (80, 72), (48, 40), seed=8)
    common = ["--data-dir", str(data), "--small", "--scales", "2", "4", "--batch-size", "2", "--patch-size", "8",
              "--device", "cpu", "--no-compile", "--output-dir", str(tmp_path / "runs")]
    # The first run stops after x2's second step, as if killed there; x4 never started.
    _run("train_291.py", [*common, "--scales", "2", "--max-steps", "2"], monkeypatch)
    _run("train_291.py", [*common, "--max-steps", "4", "--resume"], monkeypatch)

    def resumes(scale: int) -> list[tuple[int, dict[str, Any]]]:
        log = (tmp_path / "runs" / f"x{scale}" / "log.jsonl").read_text().splitlines()
        return [(r["step"], r["changed"]) for r in map(json.loads, log) if r["event"] == "resume"]

    assert resumes(2) == [(2, {"max_steps": {"from": 2, "to": 4}})]
    assert resumes(4) == []  # x4 had no checkpoint: it started
    rows = json.loads((tmp_path / "runs" / "results.json").read_text())
    assert [(r["model"], r["dataset"], r["steps"]) for r in rows] == [
        ("msr_small_x2", "Set5", 4), ("msr_small_x2", "Set14", 4),
        ("msr_small_x4", "Set5", 4), ("msr_small_x4", "Set14", 4),
    ]
