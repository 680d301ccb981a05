"""The trainer on tiny models and generated images: learning, exact resume, DDP, integrity."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from msrnet import cli, create_model
from msrnet.train import CheckpointError, TrainConfig, load_checkpoint, pyramid_loss, train

TINY = {"stem_widths": [16, 16], "level_chans": [8, 8], "num_blocks": 2}


def _smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    planes = [
        np.sin(x / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 9))
        for _ in range(3)
    ]
    return ((np.stack(planes, -1) * 0.5 + 0.5) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count, size in (("train", 4, (64, 72)), ("val", 2, (32, 36))):
        (root / split).mkdir()
        for i in range(count):
            Image.fromarray(_smooth_image(rng, *size)).save(root / split / f"{i}.png")
    return root


def _config(data: Path, out: Path, **overrides: object) -> TrainConfig:
    base = TrainConfig(
        train_dir=str(data / "train"),
        output_dir=str(out),
        model="msr_x4",
        model_kwargs=TINY,
        max_steps=12,
        batch_size=3,
        patch_size=8,
        lr=2e-3,
        warmup_steps=2,
        log_every=2,
        ckpt_every=100,
        device="cpu",
        progress=False,
    )
    return replace(base, **overrides)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_pyramid_loss_targets_every_level() -> None:
    hr = torch.rand(2, 3, 32, 32)
    from msrnet.ops import imresize

    perfect = [imresize(hr, size=16), hr]
    for spec in ("l1", "charbonnier", "dssim", "0.5*l1+0.5*dssim"):
        assert pyramid_loss(perfect, hr, spec).item() == pytest.approx(0.0, abs=2e-3)
    wrong_coarse = [torch.zeros(2, 3, 16, 16), hr]
    full = pyramid_loss(wrong_coarse, hr, "l1").item()
    assert full == pytest.approx(imresize(hr, size=16).mean().item() / 2, rel=1e-5)
    assert pyramid_loss(wrong_coarse, hr, "l1", level_weights=(0, 1)).item() == 0
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        pyramid_loss(perfect, hr, "l1+l3")
    with pytest.raises(ValueError, match="at least 11x11"):
        pyramid_loss([torch.rand(1, 3, 8, 8)], torch.rand(1, 3, 8, 8), "dssim")


def test_few_steps_lower_the_loss_and_export_weights(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(
        _config(data, out, max_steps=30, val_dir=str(data / "val"), val_every=15, log_every=5)
    )
    log = _log(out)
    losses = [r["loss"] for r in log if r["event"] == "train"]
    assert losses[-1] < 0.6 * losses[0]
    assert [r["step"] for r in log if r["event"] == "val"] == [15, 30]
    assert set(log[0]) == {"event", "step", "loss", "lr", "samples_per_s", "train_seconds"}
    assert summary["step"] == 30 and summary["best_psnr"] == max(
        r["psnr"] for r in log if r["event"] == "val"
    )

    weights = out / "best.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    assert (
        meta["arch"] == "msr_x4"
        and meta["scale"] == "4"
        and json.loads(meta["model_kwargs"]) == TINY
    )
    assert float(meta["psnr"]) == pytest.approx(summary["best_psnr"], abs=1e-4)
    state = load_file(str(weights))
    assert all(t.dtype == torch.float16 for t in state.values())
    model = create_model(meta["arch"], **json.loads(meta["model_kwargs"]))
    model.load_state_dict(state)  # the export loads into the architecture it names


def test_stop_and_resume_repeats_the_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    whole = _config(data, tmp_path / "whole", max_steps=12, min_scale=0.5)
    train(whole)
    half = replace(whole, output_dir=str(tmp_path / "split"), max_steps=6, schedule_steps=12)
    train(half)
    resumed = replace(half, max_steps=12, resume=half.output_dir)
    train(resumed)

    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert a["step"] == b["step"] == 12
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(a["rng"][0]["sampler"]["generator"], b["rng"][0]["sampler"]["generator"])
    # The log of the resumed run continues the first half's and matches the whole run's.
    assert _log(tmp_path / "whole") == [
        {**r, "samples_per_s": w["samples_per_s"], "train_seconds": w["train_seconds"]}
        for r, w in zip(_log(tmp_path / "split"), _log(tmp_path / "whole"))
    ]


def test_truncated_or_tampered_checkpoint_is_refused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(data, out, max_steps=2))
    ckpt = out / "checkpoint.pt"
    blob = ckpt.read_bytes()

    ckpt.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        train(_config(data, out, max_steps=4, resume=str(out)))

    tampered = bytearray(blob)
    tampered[len(blob) // 2] ^= 0x01
    ckpt.write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_checkpoint(ckpt)

    ckpt.write_bytes(b"PK\x03\x04" + blob[4:])
    with pytest.raises(CheckpointError, match="not an msrnet training checkpoint"):
        load_checkpoint(ckpt)

    ckpt.write_bytes(blob)
    assert load_checkpoint(ckpt)["step"] == 2


def test_cli_train_smoke(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    common = [
        "train", "--train-dir", str(data / "train"), "--val-dir", str(data / "val"),
        "--scale", "4", "--model-kwargs", json.dumps(TINY), "--batch-size", "2",
        "--patch-size", "8", "--loss", "0.8*charbonnier+0.2*dssim", "--log-every", "2",
        "--output-dir", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    assert cli.main([*common, "--max-steps", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 4 and summary["best_psnr"] > 20
    assert cli.main([*common, "--max-steps", "6", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 6
    assert [r["step"] for r in _log(out) if r["event"] == "train"] == [2, 4, 6]
    assert (
        cli.main(["train", "--train-dir", str(data / "train"), "--model", "msr_x4", "--scale", "2"])
        == 1
    )
    assert "is x4, but --scale 2" in capsys.readouterr().err


def test_ddp_two_processes_on_cpu(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "msrnet", "train", "--train-dir", str(data / "train"), "--model", "msr_x4",
        "--model-kwargs", json.dumps(TINY), "--max-steps", "4", "--batch-size", "2", "--patch-size", "8",
        "--log-every", "2", "--output-dir", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        json.loads(result.stdout.strip().splitlines()[-1])["step"] == 4
    )  # one summary, from rank 0
    log = _log(out)
    assert [r["step"] for r in log] == [2, 4]  # written once, by rank 0
    assert log[-1]["samples_per_s"] > 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    streams = [r["sampler"]["generator"] for r in ckpt["rng"]]
    assert len(streams) == 2 and not torch.equal(*streams)  # each rank its own data stream


def test_init_weights_warm_starts_a_larger_scale(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from msrnet.models.weights import load_matching_weights

    small = {"stem_widths": [16, 16], "num_blocks": 3}
    x2 = create_model("msr_x2", level_chans=[8], **small)  # 3 blocks at 2x
    save_file(x2.state_dict(), str(tmp_path / "x2.safetensors"))
    x4 = create_model("msr_x4", level_chans=[8, 8], **small)  # 2 blocks at 2x, 1 at 4x
    loaded, left = load_matching_weights(x4, tmp_path / "x2.safetensors")
    # The stem and the 2x level's blocks carry over; the compression of 3 vs 2 blocks' maps
    # and the whole 4x level keep their initialization.
    for name in ("stem.layers.0.weight", "levels.0.blocks.1.refine.0.weight", "levels.0.to_residual.weight"):
        torch.testing.assert_close(x4.state_dict()[name], x2.state_dict()[name])
    assert "levels.0.compress.0.weight" in left
    assert all(not n.startswith(("stem.", "levels.0.blocks.")) for n in left)
    assert any(n.startswith("levels.1.") for n in left)
    assert loaded == len(x4.state_dict()) - len(left)

    narrow = create_model("msr_x4", stem_widths=[4, 4], level_chans=[4, 4], num_blocks=2)
    with pytest.raises(ValueError, match="no weight"):
        load_matching_weights(narrow, tmp_path / "x2.safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        load_matching_weights(x4, tmp_path / "x2.pth")


def test_dssim_loss_is_the_protocols_ssim_and_differentiable() -> None:
    from msrnet.metrics import ssim
    from msrnet.train import LOSSES

    pred = torch.rand(1, 3, 24, 20, requires_grad=True)
    target = (pred.detach() + 0.1 * torch.randn(1, 3, 24, 20)).clamp(0, 1)
    loss = LOSSES["dssim"](pred, target)
    expected = (1 - ssim(pred.detach(), target, crop_border=0, y_channel=False)) / 2
    assert loss.item() == pytest.approx(float(expected), abs=1e-5)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_time_budget_ends_the_run_with_its_schedule_complete(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "timed"
    summary = train(_config(data, out, max_steps=10**6, time_budget=2.0, log_every=1))
    seconds = summary["seconds"]
    # The budget counts training time only, and the run stops at the first step past it.
    assert 2.0 <= seconds["train"] < 3.0
    assert seconds["total"] >= seconds["train"] + seconds["startup"]
    assert set(seconds) == {"train", "startup", "validation", "checkpoint", "total"}
    lrs = [r["lr"] for r in _log(out) if r["event"] == "train"]
    # Warm-up then cosine decay over time: the last lr is the schedule's floor.
    assert max(lrs) > 0.9 * 2e-3 and lrs[-1] == pytest.approx(2e-3 * 0.01, rel=0.05)
    assert (out / "best.safetensors").is_file() and (out / "checkpoint.pt").is_file()
    assert load_checkpoint(out / "checkpoint.pt")["train_seconds"] == pytest.approx(seconds["train"], abs=0.01)


def test_time_budget_must_be_positive(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="time_budget"):
        train(_config(data, tmp_path, time_budget=0.0))


def test_cli_time_budget(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    code = cli.main(
        ["train", "--train-dir", str(data / "train"), "--output-dir", str(out),
         "--model-kwargs", json.dumps(TINY), "--batch-size", "2", "--patch-size", "8",
         "--device", "cpu", "--max-steps", "1000000", "--time-budget", "1.5", "--no-progress"]
    )
    assert code == 0 and (out / "best.safetensors").is_file()
    assert _log(out)[-1]["train_seconds"] >= 1.5


@pytest.mark.cuda
def test_cuda_training_bf16_channels_last_fused(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cuda"
    summary = train(
        _config(data, out, device="cuda", max_steps=10**6, time_budget=3.0, val_dir=str(data / "val"))
    )
    assert summary["step"] > 2 and np.isfinite(summary["loss"]) and summary["best_psnr"] > 10
    state = load_checkpoint(out / "checkpoint.pt")
    assert all(not v.is_cuda for v in state["model"].values())
    resumed = train(
        _config(data, out, device="cuda", max_steps=summary["step"] + 2, resume=str(out))
    )
    assert resumed["step"] == summary["step"] + 2
