"""msrnet.evaluate, msrnet.ops.self_ensemble and ``msrnet benchmark``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import msrnet
from msrnet.cli import main
from msrnet.data import (
    BenchmarkDataset,
    list_images,
    mod_crop,
    read_image,
    tensor_to_uint8,
    write_image,
)
from msrnet.evaluate import bicubic_upscale, evaluate
from msrnet.metrics import psnr, rgb_to_y
from msrnet.ops import imresize, self_ensemble

# MATLAB's bicubic rows of the published tables (SRCNN / LapSRN), Y-PSNR in dB.
PUBLISHED_SET5_BICUBIC = {2: 33.66, 4: 28.42, 8: 24.40}
# SRCNN's rows, which its Y-only pipeline reproduces to the last printed digit.
PUBLISHED_SET5_SRCNN = {2: 33.66, 3: 30.39, 4: 28.42}


class Nearest(nn.Module):
    """Pixel replication: a tiny SR model that commutes with flips and rotations."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


@pytest.fixture()
def tiny_set(tmp_path: Path) -> Path:
    root = tmp_path / "Tiny"
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(26, 31, 3), (24, 24, 3), (19, 22)]):
        write_image(root / f"im{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return root


# --- the acceptance check -------------------------------------------------------------------


@pytest.mark.parametrize("scale", sorted(PUBLISHED_SET5_BICUBIC))
def test_bicubic_reproduces_published_set5(shared_data: Path, scale: int) -> None:
    result = evaluate("bicubic", shared_data / "Set5", scale, progress=False)
    assert result["images"] == 5 and result["dataset"] == "Set5"
    assert result["psnr"] == pytest.approx(PUBLISHED_SET5_BICUBIC[scale], abs=0.03)


@pytest.mark.parametrize("scale", sorted(PUBLISHED_SET5_SRCNN))
def test_srcnn_y_pipeline_reproduces_published_set5_digits(shared_data: Path, scale: int) -> None:
    # A sharper check of imresize's float path: SRCNN's script resizes the uint8-rounded Y
    # channel in double (no rounding between) and rounds the result once. x3 has non-dyadic
    # weights, so it exercises what x2/x4 cannot.
    values = []
    for path in list_images(shared_data / "Set5"):
        y = np.floor(rgb_to_y(mod_crop(read_image(path, 3), scale)) + 0.5)
        sr = imresize(imresize(torch.from_numpy(y / 255), 1 / scale), scale)
        diff = (torch.floor(sr.clamp(0, 1) * 255 + 0.5).numpy() - y)[scale:-scale, scale:-scale]
        values.append(10 * np.log10(255**2 / np.mean(diff**2)))
    assert np.mean(values) == pytest.approx(PUBLISHED_SET5_SRCNN[scale], abs=0.005)


# --- the runner -----------------------------------------------------------------------------


def test_bicubic_upscale_is_uint8_imresize() -> None:
    lr_u8 = torch.randint(0, 256, (1, 3, 7, 9), dtype=torch.uint8)
    sr = bicubic_upscale(lr_u8.float() / 255, 3)
    assert sr.shape == (1, 3, 21, 27)
    assert torch.equal(torch.round(sr * 255).to(torch.uint8), imresize(lr_u8, 3))


def test_evaluate_module_and_result_keys(tiny_set: Path) -> None:
    result = evaluate(Nearest(2), tiny_set, 2, progress=False)
    assert set(result) == {"model", "dataset", "scale", "psnr", "ssim", "images", "skipped"}
    assert result["model"] == "Nearest" and result["dataset"] == "Tiny" and result["images"] == 3
    assert result["skipped"] == []
    # Recompute the mean by hand from the dataset's items.
    ds = BenchmarkDataset(tiny_set, 2)
    expected = np.mean(
        [
            psnr(tensor_to_uint8(Nearest(2)(it["lr"][None])[0]), tensor_to_uint8(it["hr"]), 2)
            for it in ds
        ]
    )
    assert result["psnr"] == pytest.approx(expected, abs=1e-12)
    assert evaluate(lambda x: Nearest(2)(x), tiny_set, 2, progress=False)["psnr"] == result["psnr"]


def test_evaluate_scale_checks(tiny_set: Path) -> None:
    assert evaluate(Nearest(3), tiny_set, progress=False)["scale"] == 3
    with pytest.raises(ValueError, match="x3"):
        evaluate(Nearest(3), tiny_set, 2, progress=False)
    with pytest.raises(ValueError):
        evaluate("bicubic", tiny_set, progress=False)


def test_evaluate_saves_rounded_outputs(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr"
    result = evaluate("bicubic", tiny_set, 2, save_dir=out, progress=False)
    saved = sorted(p.name for p in out.iterdir())
    assert saved == ["im0.png", "im1.png", "im2.png"]
    ds = BenchmarkDataset(tiny_set, 2)
    scores = [
        psnr(read_image(out / f"{it['name']}.png", 3), tensor_to_uint8(it["hr"]), 2) for it in ds
    ]
    assert result["psnr"] == pytest.approx(np.mean(scores), abs=1e-12)


def test_evaluate_weights_files(tmp_path: Path) -> None:
    # One small image: the default msr_x2 is heavy for 2 CPU cores.
    write_image(
        tmp_path / "One" / "a.png",
        np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8),
    )
    model = msrnet.create_model("msr_x2").eval()
    expected = evaluate(model, tmp_path / "One", 2, progress=False)["psnr"]
    # The safetensors metadata names the architecture, so no scale is needed.
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"), metadata={"arch": "msr_x2"})
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    for path, scale in ((tmp_path / "w.safetensors", None), (tmp_path / "w.pth", 2)):
        result = evaluate(path, tmp_path / "One", scale, progress=False)
        assert result["model"] == path.name and result["scale"] == 2
        assert result["psnr"] == pytest.approx(expected, abs=1e-9)


# --- self-ensemble --------------------------------------------------------------------------


def test_self_ensemble_of_equivariant_model_is_unchanged() -> None:
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(self_ensemble(Nearest(2), x), Nearest(2)(x))


def test_self_ensemble_averages_the_eight_transforms() -> None:
    calls = []

    def add_column_ramp(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x + torch.arange(x.shape[-1], dtype=x.dtype)

    x = torch.rand(1, 1, 6, 6)
    # The ramp comes back along both axes in both directions, twice each: its mean is 2.5.
    torch.testing.assert_close(self_ensemble(add_column_ramp, x), x + 2.5)
    assert len(calls) == 8


def test_self_ensemble_averages_each_output_of_a_list() -> None:
    # A pyramid network returns one output per level: each is averaged as if on its own.
    def ramp(x: torch.Tensor) -> torch.Tensor:
        return x + torch.arange(x.shape[-1], dtype=x.dtype)

    def levels(x: torch.Tensor) -> list[torch.Tensor]:
        return [Nearest(2)(x), ramp(x)]

    x = torch.rand(2, 3, 5, 7)
    two, ramped = self_ensemble(levels, x)
    assert torch.equal(two, self_ensemble(Nearest(2), x))
    assert torch.equal(ramped, self_ensemble(ramp, x))


def test_evaluate_self_ensemble(tiny_set: Path) -> None:
    plain = evaluate(Nearest(2), tiny_set, 2, progress=False)
    ensembled = evaluate(Nearest(2), tiny_set, 2, self_ensemble=True, progress=False)
    assert ensembled["psnr"] == pytest.approx(plain["psnr"], abs=1e-9)


# --- the command line -----------------------------------------------------------------------


def test_cli_benchmark_json(tiny_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "benchmark",
        "--model",
        "bicubic",
        "--dataset",
        str(tiny_set),
        "--scale",
        "2",
        "--scale",
        "3",
    ]
    assert main([*argv, "--json", "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["dataset"], r["scale"]) for r in rows] == [("Tiny", 2), ("Tiny", 3)]
    assert rows[0] == evaluate("bicubic", tiny_set, 2, progress=False)

    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "bicubic" in table and "Tiny" in table and f"{rows[1]['psnr']:.2f}" in table


def test_cli_benchmark_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            ["benchmark", "--model", "bicubic", "--dataset", str(tmp_path / "none"), "--scale", "2"]
        )
        == 1
    )
    assert "error" in capsys.readouterr().err
    assert main(["benchmark", "--model", "bicubic", "--dataset", str(tmp_path)]) == 2


def test_evaluate_weights_file_with_model_kwargs(tmp_path: Path) -> None:
    # The trainer records non-default constructor arguments in the metadata.
    write_image(
        tmp_path / "One" / "a.png",
        np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8),
    )
    kwargs = {"stem_widths": [8, 8], "num_blocks": 2, "level_chans": [8]}
    model = msrnet.create_model("msr_x2", **kwargs).eval()
    expected = evaluate(model, tmp_path / "One", 2, progress=False)["psnr"]
    metadata = {"arch": "msr_x2", "model_kwargs": json.dumps(kwargs)}
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"), metadata=metadata)
    result = evaluate(tmp_path / "w.safetensors", tmp_path / "One", progress=False)
    assert result["psnr"] == pytest.approx(expected, abs=1e-9)


def test_cli_benchmark_pretrained_means_what_it_means_in_upscale(
    tiny_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["benchmark", "--model", "msr_x2", "--dataset", str(tiny_set), "--json", "--device", "cpu"]
    assert main(argv) == 0  # the packaged weights by default, as in upscale and export
    row = json.loads(capsys.readouterr().out)[0]
    expected = evaluate(msrnet.create_model("msr_x2", pretrained=True), tiny_set, progress=False)
    assert row == {**expected, "model": "msr_x2"}
    assert main([*argv, "--no-pretrained"]) == 0
    assert "random weights (--no-pretrained)" in capsys.readouterr().err


# --- hostile and unlucky inputs -----------------------------------------------------------


@pytest.mark.parametrize("tiny_name", ["a0.png", "im2b.png"])
def test_every_image_is_scored_or_named_as_skipped(
    tiny_set: Path, tiny_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A 3x3 image sorted first, or among the others, once ended the loop (StopIteration from
    # __getitem__) or made the whole set "empty".
    write_image(tiny_set / "im2.png", np.zeros((32, 28), np.uint8))  # big enough for x4
    write_image(tiny_set / tiny_name, np.zeros((3, 3, 3), np.uint8))
    (tiny_set / "zz_broken.png").write_bytes(b"not a png")
    result = evaluate(Nearest(4), tiny_set, 4, progress=False)
    assert result["images"] == 3
    reasons = {s["name"]: s["reason"] for s in result["skipped"]}
    assert set(reasons) == {tiny_name, "zz_broken.png"}
    assert reasons[tiny_name] == "smaller than the scale x4"

    code = main(["benchmark", "--model", "bicubic", "--dataset", str(tiny_set), "--scale", "4"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"skipped Tiny/{tiny_name}: smaller than the scale x4" in captured.err
    assert "skipped Tiny/zz_broken.png" in captured.err
    assert "2 images skipped" in captured.err
    row = [line for line in captured.out.splitlines() if line.startswith("bicubic")][0]
    assert row.split()[-2:] == ["3", "2"]  # images scored, skipped


def test_image_too_small_to_score_is_skipped_with_the_reason(tiny_set: Path) -> None:
    # 12x12 at x2: an LR image exists, but 2 shaved pixels a side leave less than SSIM's window.
    write_image(tiny_set / "small.png", np.zeros((12, 12, 3), np.uint8))
    result = evaluate(Nearest(2), tiny_set, 2, progress=False)
    assert result["images"] == 3
    assert result["skipped"] == [
        {"name": "small", "reason": "12x12 after mod-crop: scoring at x2 needs 15 pixels a side "
         "(2 shaved from each border, then an 11x11 SSIM window)"}
    ]
    only_small = tiny_set.parent / "Small"
    write_image(only_small / "small.png", np.zeros((12, 12, 3), np.uint8))
    with pytest.raises(ValueError, match="no image of 'Small' could be scored"):
        evaluate(Nearest(2), only_small, 2, progress=False)


def test_non_finite_model_output_is_an_error(tiny_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = Nearest(2)
    with pytest.raises(FloatingPointError, match="NaN/inf"):
        evaluate(lambda x: model(x) * float("nan"), tiny_set, 2, progress=False)


def test_cli_benchmark_random_weights_are_said(
    tiny_set: Path, use_tiny_models: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    use_tiny_models(stem_widths=(8, 8), num_blocks=2, se_ratio=0)
    assert main(["benchmark", "--model", "msr_x2", "--no-pretrained", "--dataset", str(tiny_set)]) == 0
    captured = capsys.readouterr()
    assert "msr_x2 has random weights" in captured.err
    assert "msr_x2 (random)" in captured.out


def test_cli_benchmark_takes_the_model_flags_of_upscale(
    tiny_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = {"stem_widths": [8, 8], "num_blocks": 2, "level_chans": [8]}
    model = msrnet.create_model("msr_x2", **tiny).eval()
    expected = evaluate(model, tiny_set, progress=False)["psnr"]
    # No arch metadata: --model names the architecture, else the config buffer's scale does.
    weights = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(weights), metadata={"model_kwargs": json.dumps(tiny)})
    argv = ["benchmark", "--dataset", str(tiny_set), "--json", "--weights", str(weights)]
    for extra in ([], ["--model", "msr_x2"]):
        assert main([*argv, *extra]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        assert row["model"] == "w.safetensors" and row["scale"] == 2
        assert row["psnr"] == pytest.approx(expected, abs=1e-9)

    assert main(["benchmark", "--dataset", str(tiny_set), "--model", str(weights)]) == 2
    assert "pass it as weights (--weights FILE)" in capsys.readouterr().err
    assert main(["benchmark", "--dataset", str(tiny_set)]) == 2
    assert "name a model: --model NAME, --model bicubic or --weights FILE" in capsys.readouterr().err
    assert main(["benchmark", "--dataset", str(tiny_set), "--model", "bicubic", "--weights", str(weights)]) == 2
    assert "takes no --weights" in capsys.readouterr().err


def test_cli_benchmark_bad_weights_file_is_one_line(tiny_set: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "w.pth"
    weights.write_text("not weights")
    assert main(["benchmark", "--weights", str(weights), "--dataset", str(tiny_set), "--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"msrnet benchmark: error: {weights}: ") and err.count("\n") == 1


def test_save_images_replace_a_planted_symlink(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "sr"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "im0.png").symlink_to(victim)
    evaluate("bicubic", tiny_set, 2, save_dir=out, progress=False)
    assert victim.read_text() == "keep me"
    assert not (out / "im0.png").is_symlink() and read_image(out / "im0.png").shape == (26, 30, 3)
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]  # no temporaries


def test_save_images_refuse_two_images_of_one_name(tiny_set: Path, tmp_path: Path) -> None:
    write_image(tiny_set / "im0.bmp", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="two images are named 'im0'"):
        evaluate("bicubic", tiny_set, 2, save_dir=tmp_path / "sr", progress=False)


def test_a_huge_seed_is_an_argument_error(tiny_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: accepted, then every image failed on its own ("5 images skipped").
    with pytest.raises(SystemExit) as info:
        main(["benchmark", "--model", "bicubic", "--scale", "2", "--dataset", str(tiny_set),
              "--condition", "noise5", "--seed", "99999999999999999999"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--seed: expected an integer from 0 to 4294967295" in err and "skipped" not in err
    with pytest.raises(ValueError, match="seed must be an integer from 0 to 4294967295"):
        BenchmarkDataset(tiny_set, 2, condition="noise5", seed=2**64)




def test_an_image_too_large_for_one_pass_is_skipped_by_name(
    tiny_set: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A legal 9000x9000 image once stopped the whole benchmark with an allocator error naming
    # no image; here the memory available is set below what a 200x200 image needs.
    from msrnet.inference import whole_image_memory

    model = Nearest(2)
    write_image(tiny_set / "big.png", np.zeros((200, 200, 3), np.uint8))
    monkeypatch.setattr("msrnet.evaluate.available_memory", lambda device: whole_image_memory(model, 40, 40))
    result = evaluate(model, tiny_set, 2, progress=False)
    assert result["images"] == 3
    [skip] = result["skipped"]
    assert skip["name"] == "big" and skip["reason"].startswith("100x100 LR pixels take")
    assert "memory is available" in skip["reason"]


def test_an_allocator_refusal_skips_the_image_by_name(tiny_set: Path) -> None:
    model = Nearest(2)

    def greedy(x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and tuple(x.shape[-2:]) == (13, 15):  # im0, not the memory probes
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: ...")
        return model(x)

    module = nn.Module()
    module.forward = greedy  # type: ignore[method-assign]
    result = evaluate(module, tiny_set, 2, progress=False)
    assert [s["name"] for s in result["skipped"]] == ["im0"]
    assert result["skipped"][0]["reason"].startswith("out of memory in one pass: [enforce fail")
    with pytest.raises(RuntimeError, match="size mismatch"):  # not the image's fault: raised
        evaluate(lambda x: (_ for _ in ()).throw(RuntimeError("size mismatch")), tiny_set, 2, progress=False)
