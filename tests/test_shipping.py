"""The shipping rules shared by examples/train_291.py and scripts/gpu_run.py."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from msrnet.models import create_model, save_weights
from shipping import (
    CLEAN_TAG,
    DEGRADED_CONDITIONS,
    SHIPPING_SETS,
    WarmStart,
    compare_with_shipped,
    ship,
    shipped_file,
    warm_start,
)

TINY: dict[str, Any] = {"stem_widths": [8, 8], "level_chans": [8], "num_blocks": 1}


def test_a_run_fine_tunes_its_tags_file_then_the_clean_one(tmp_path: Path) -> None:
    assert warm_start("msr_x4", "real", tmp_path) == WarmStart(None, finetune=False)
    assert warm_start("msr_x4", "real", tmp_path, chained="x2.safetensors") == WarmStart("x2.safetensors", False)
    clean = shipped_file("msr_x4", CLEAN_TAG, tmp_path)
    clean.write_bytes(b"clean")
    # A new tag starts from the clean weights of the same architecture, not the chain.
    assert warm_start("msr_x4", "real", tmp_path, chained="x2.safetensors") == WarmStart(str(clean), True)
    real = shipped_file("msr_x4", "real", tmp_path)
    real.write_bytes(b"real")
    assert warm_start("msr_x4", "real", tmp_path) == WarmStart(str(real), True)
    assert warm_start("msr_x4", CLEAN_TAG, tmp_path) == WarmStart(str(clean), True)
    # Weights the caller names come first, whatever ships.
    assert warm_start("msr_x4", "real", tmp_path, init="mine.safetensors") == WarmStart("mine.safetensors", False)
    assert warm_start("msr_x2", CLEAN_TAG, tmp_path) == WarmStart(None, False)


def test_a_medium_run_without_a_file_of_its_own_grows_the_small_one(tmp_path: Path) -> None:
    assert warm_start("msr_medium_x4", "real", tmp_path, chained="x8.safetensors") == WarmStart("x8.safetensors", False)
    small_clean = shipped_file("msr_small_x4", CLEAN_TAG, tmp_path)
    small_clean.write_bytes(b"small clean")
    # Trained weights of the same scale, which `--init` grows whole, beat another scale's trunk.
    assert warm_start("msr_medium_x4", "real", tmp_path, chained="x8.safetensors") == WarmStart(str(small_clean), True)
    small_real = shipped_file("msr_small_x4", "real", tmp_path)
    small_real.write_bytes(b"small real")
    assert warm_start("msr_medium_x4", "real", tmp_path) == WarmStart(str(small_real), True)
    assert warm_start("msr_medium_x4", CLEAN_TAG, tmp_path) == WarmStart(str(small_clean), True)
    # The medium variant's own files come first; the full-size variant never grows from small.
    medium_clean = shipped_file("msr_medium_x4", CLEAN_TAG, tmp_path)
    medium_clean.write_bytes(b"medium clean")
    assert warm_start("msr_medium_x4", "real", tmp_path) == WarmStart(str(medium_clean), True)
    shipped_file("msr_small_x2", CLEAN_TAG, tmp_path).write_bytes(b"small x2")
    assert warm_start("msr_x2", CLEAN_TAG, tmp_path) == WarmStart(None, False)


def test_ship_copies_and_returns_the_sha256(tmp_path: Path) -> None:
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(b"new weights")
    package = tmp_path / "weights"
    package.mkdir()
    shipped_file("msr_x2", CLEAN_TAG, package).write_bytes(b"old")
    digest = ship(weights, "msr_x2", CLEAN_TAG, package)
    assert digest == hashlib.sha256(b"new weights").hexdigest()
    assert [p.name for p in package.iterdir()] == ["msr_x2.t291.safetensors"]  # no temporary left
    assert shipped_file("msr_x2", CLEAN_TAG, package).read_bytes() == b"new weights"


def _sets(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in SHIPPING_SETS:
        (root / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)).save(root / name / "a.png")
    return root


def _weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_weights(create_model("msr_x2", **TINY), path, arch="msr_x2", model_kwargs=TINY)
    return path


def test_new_weights_are_scored_as_the_field_scores_them(tmp_path: Path) -> None:
    data = _sets(tmp_path / "data")
    package = tmp_path / "weights"
    package.mkdir()
    new = _weights(tmp_path / "new.safetensors", 0)
    first = compare_with_shipped(new, "msr_x2", CLEAN_TAG, package, data, 2)
    assert first.shipped is None and first.replace  # nothing ships: nothing to beat
    assert sorted(first.scores) == sorted(SHIPPING_SETS)
    assert all(row["scale"] == 2 and np.isfinite(row["psnr"]) for row in first.scores.values())

    ship(new, "msr_x2", CLEAN_TAG, package)
    again = compare_with_shipped(new, "msr_x2", CLEAN_TAG, package, data, 2)
    assert again.shipped is not None and not again.replace  # equal scores are no improvement
    assert {k: r["psnr"] for k, r in again.shipped.items()} == {k: r["psnr"] for k, r in again.scores.items()}


def test_every_set_and_condition_must_improve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shipping

    shipped_file("msr_x4", "real", tmp_path).write_bytes(b"shipped")
    psnr: dict[tuple[str, str, str], float] = {}

    def fake_evaluate(
        weights: Path, folder: Path, scale: int, condition: str = "clean", **kwargs: object
    ) -> dict[str, object]:
        return {"psnr": psnr.get((Path(weights).name, folder.name, condition), 30.0)}

    monkeypatch.setattr(shipping, "evaluate", fake_evaluate)
    new = tmp_path / "new.safetensors"

    def verdict(degradation: str) -> shipping.Verdict:
        return compare_with_shipped(new, "msr_x4", "real", tmp_path, tmp_path, 4, degradation=degradation)

    for name in SHIPPING_SETS:
        for condition in ("clean", *DEGRADED_CONDITIONS):
            psnr[("new.safetensors", name, condition)] = 31.0
    assert verdict("web").replace and verdict("bicubic").replace
    psnr[("new.safetensors", "Set14", "noise10")] = 29.0  # worse on one degraded condition
    assert not verdict("web").replace
    assert verdict("bicubic").replace  # clean weights are not scored on it
    psnr[("new.safetensors", "Set5", "clean")] = 30.0  # only as good on one clean set
    assert not verdict("bicubic").replace
