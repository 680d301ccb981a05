"""The degradation pipeline: each operation's statistics, any parameter draw's shapes, the
presets, config files, the trainer's use of it and the seeded benchmark conditions."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from msrnet.data import BenchmarkDataset, InMemoryPatchSampler
from msrnet.data.degradations import (
    BENCHMARK_CONDITIONS,
    Condition,
    JPEG,
    PRESETS,
    Blur,
    DegradationConfig,
    Final,
    Noise,
    Resize,
    Stage,
    add_gaussian_noise,
    add_poisson_noise,
    bicubic_downscale,
    blur,
    degrade,
    gaussian_kernel,
    generalized_gaussian_kernel,
    jpeg_compress,
    load_degradation,
    plateau_kernel,
    resize,
    sinc_kernel,
)
from msrnet.evaluate import evaluate

ONE = torch.ones(1)


def _moments(kernel: torch.Tensor) -> tuple[float, float, float]:
    """Variances along x and y and the covariance of a ``(k, k)`` kernel."""
    k = kernel.shape[-1]
    r = torch.arange(k, dtype=torch.float64) - k // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    w = kernel.to(torch.float64)
    return float((w * x * x).sum()), float((w * y * y).sum()), float((w * x * y).sum())


def test_every_kernel_sums_to_one() -> None:
    sigma = torch.tensor([0.3, 1.0, 2.5])
    theta = torch.tensor([0.0, 0.7, 2.0])
    beta = torch.tensor([0.5, 1.0, 3.0])
    for kernels in (
        gaussian_kernel(21, sigma),
        gaussian_kernel(21, sigma, sigma * 2, theta),
        generalized_gaussian_kernel(21, sigma, sigma * 1.5, theta, beta),
        plateau_kernel(21, sigma, sigma, theta, beta + 1),
        sinc_kernel(21, torch.tensor([math.pi / 5, math.pi / 2, math.pi])),
    ):
        assert kernels.shape == (3, 21, 21)
        torch.testing.assert_close(kernels.sum(dim=(-2, -1)), torch.ones(3))


def test_gaussian_kernel_has_the_asked_variances_and_rotation() -> None:
    var_x, var_y, cov = _moments(gaussian_kernel(41, torch.tensor([2.0]), torch.tensor([1.0]))[0])
    assert var_x == pytest.approx(4.0, rel=1e-3) and var_y == pytest.approx(1.0, rel=1e-3)
    assert cov == pytest.approx(0.0, abs=1e-9)
    # Rotated by 90 degrees, the long axis is vertical.
    var_x, var_y, _ = _moments(gaussian_kernel(41, torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([math.pi / 2]))[0])
    assert var_x == pytest.approx(1.0, rel=1e-3) and var_y == pytest.approx(4.0, rel=1e-3)
    # At 45 degrees the axes are correlated: cov = (4 - 1) / 2.
    _, _, cov = _moments(gaussian_kernel(41, torch.tensor([2.0]), torch.tensor([1.0]), torch.tensor([math.pi / 4]))[0])
    assert cov == pytest.approx(1.5, rel=1e-3)


def test_generalized_and_plateau_shapes() -> None:
    sigma = torch.tensor([2.0])
    gaussian = gaussian_kernel(21, sigma)[0]
    heavy = generalized_gaussian_kernel(21, sigma, sigma, 0.0, torch.tensor([0.5]))[0]
    flat = generalized_gaussian_kernel(21, sigma, sigma, 0.0, torch.tensor([4.0]))[0]
    # beta < 1: more weight in the tails than a Gaussian; beta > 1: less.
    assert heavy[10, 20] > gaussian[10, 20] > flat[10, 20]
    plateau = plateau_kernel(21, sigma, sigma, 0.0, torch.tensor([2.0]))[0]
    assert plateau[10, 20] > gaussian[10, 20]  # long tails
    assert torch.equal(gaussian, gaussian.flip(0)) and torch.equal(gaussian, gaussian.T)


def test_sinc_kernel_rings() -> None:
    kernel = sinc_kernel(21, torch.tensor([math.pi / 3]))[0]
    assert kernel.min() < 0  # negative lobes: the overshoot a sinc filter leaves at edges
    step = torch.zeros(1, 1, 32, 32)
    step[..., 16:] = 0.8
    out = blur(step, kernel[None])
    assert out[0, 0, 16, :16].min() < 0.0 or out[0, 0, 16, 16:].max() > 0.8


def test_blur_keeps_size_and_mean_and_blurs_per_sample() -> None:
    x = torch.rand(2, 3, 20, 24)
    kernels = torch.stack([gaussian_kernel(7, ONE * 3.0)[0], torch.zeros(7, 7)])
    kernels[1, 3, 3] = 1.0  # identity
    out = blur(x, kernels)
    assert out.shape == x.shape
    torch.testing.assert_close(out[1], x[1])
    assert out[0].std() < x[0].std() * 0.6
    assert abs(float(out[0].mean() - x[0].mean())) < 0.01
    # A kernel wider than a tiny image still works (replicated borders).
    assert blur(torch.rand(1, 3, 2, 2), gaussian_kernel(21, ONE)).shape == (1, 3, 2, 2)


def test_gaussian_noise_has_the_asked_sigma_and_gray_noise_is_shared() -> None:
    x = torch.full((2, 3, 128, 128), 0.5)
    g = torch.Generator().manual_seed(0)
    out = add_gaussian_noise(x, torch.tensor([10 / 255, 2 / 255]), torch.tensor([False, True]), g)
    assert float((out[0] - 0.5).std() * 255) == pytest.approx(10.0, rel=0.03)
    assert float((out[1] - 0.5).std() * 255) == pytest.approx(2.0, rel=0.03)
    assert torch.equal(out[1, 0], out[1, 1]) and not torch.equal(out[0, 0], out[0, 1])


def test_poisson_noise_grows_with_intensity() -> None:
    x = torch.cat([torch.full((1, 3, 128, 128), 0.1), torch.full((1, 3, 128, 128), 0.8)])
    g = torch.Generator().manual_seed(0)
    out = add_poisson_noise(x, torch.ones(2), generator=g)
    # Shot noise: the variance of Poisson(255 x) / 255 is x / 255.
    for i, level in enumerate((0.1, 0.8)):
        assert float((out[i] - level).std()) == pytest.approx(math.sqrt(level / 255), rel=0.05)


def _blockiness(x: torch.Tensor) -> float:
    """Mean jump across 8-pixel block borders over the mean jump elsewhere."""
    d = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    border = d[7::8].mean()
    inside = torch.cat([d[i::8] for i in range(7)]).mean()
    return float(border / inside)


def test_jpeg_quality_shows_in_error_and_blockiness() -> None:
    # Smooth content whose own structure is not on the 8-pixel grid.
    g = torch.Generator().manual_seed(1)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 13, 13, generator=g), size=(64, 64), mode="bicubic")
    smooth = smooth.clamp(0, 1).repeat(5, 1, 1, 1)
    qualities = [10, 30, 50, 75, 95]
    out = jpeg_compress(smooth, torch.tensor(qualities))
    assert out.shape == smooth.shape and out.dtype == smooth.dtype
    assert torch.equal(out, torch.round(out * 255) / 255)  # uint8 levels
    errors = [float((out[i] - smooth[i]).abs().mean()) for i in range(5)]
    blockiness = [_blockiness(out[i : i + 1]) for i in range(5)]
    assert errors == sorted(errors, reverse=True) and blockiness == sorted(blockiness, reverse=True)
    assert blockiness[0] > 1.5 > 1.1 > blockiness[-1] and _blockiness(smooth[:1]) < 1.05
    with pytest.raises(ValueError, match="one quality per sample"):
        jpeg_compress(smooth, [50])
    with pytest.raises(ValueError, match=r"\[1, 100\]"):
        jpeg_compress(smooth[:2], [0, 50])
    gray = jpeg_compress(smooth[:1, :1], [50])
    assert gray.shape == (1, 1, 64, 64)


def test_resize_modes() -> None:
    x = torch.rand(2, 3, 30, 40)
    for mode in ("area", "bilinear", "bicubic"):
        out = resize(x, (15, 50), mode)
        assert out.shape == (2, 3, 15, 50) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="resize mode"):
        resize(x, (10, 10), "nearest")


def test_bicubic_preset_is_the_protocols_downscaling() -> None:
    hr = torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8)
    expected = bicubic_downscale(hr, 12).float() / 255
    assert torch.equal(degrade(hr.float() / 255, 4, "bicubic"), expected)
    # Every sample clean: the web preset gives the same.
    clean = DegradationConfig(stages=PRESETS["web"].stages, clean_prob=1.0)
    assert torch.equal(degrade(hr.float() / 255, 4, clean, torch.Generator().manual_seed(0)), expected)


def test_degrade_is_seeded() -> None:
    hr = torch.rand(4, 3, 64, 64)
    runs = [degrade(hr, 4, name, torch.Generator().manual_seed(s)) for name in ("web", "real") for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert torch.equal(runs[3], runs[4]) and not torch.equal(runs[3], runs[5])


_probability = st.floats(0.0, 1.0)


@st.composite
def _configs(draw: st.DrawFn) -> DegradationConfig:
    hr_first = draw(st.booleans())
    stages = []
    for _ in range(draw(st.integers(0, 2))):
        lo = draw(st.integers(0, 5)) * 2 + 1
        stages.append(
            Stage(
                blur=draw(st.none() | st.just(Blur(prob=draw(_probability), size=(lo, lo + 2 * draw(st.integers(0, 5))),
                                                   sinc_prob=draw(_probability)))),
                resize=Resize(prob=draw(_probability), scale=(0.3, 1.5)) if hr_first and draw(st.booleans()) else None,
                noise=draw(st.none() | st.just(Noise(prob=draw(_probability), gaussian_prob=draw(_probability),
                                                     gray_prob=draw(_probability)))),
                jpeg=draw(st.none() | st.just(JPEG(prob=draw(_probability), quality=(1, 100)))),
                prob=draw(_probability),
            )
        )
    final = Final(sinc_prob=draw(_probability)) if hr_first and draw(st.booleans()) else None
    return DegradationConfig(stages=tuple(stages), bicubic_first=not hr_first, final=final,
                             clean_prob=draw(_probability))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=_configs(),
    batch=st.integers(1, 4),
    channels=st.sampled_from([1, 3]),
    scale=st.sampled_from([1, 2, 4, 8]),
    lr_size=st.tuples(st.integers(2, 12), st.integers(2, 12)),
    seed=st.integers(0, 2**31),
)
def test_any_draw_keeps_shape_dtype_and_range(
    config: DegradationConfig, batch: int, channels: int, scale: int, lr_size: tuple[int, int], seed: int
) -> None:
    hr = torch.rand(batch, channels, lr_size[0] * scale, lr_size[1] * scale)
    lr = degrade(hr, scale, config, torch.Generator().manual_seed(seed))
    assert lr.shape == (batch, channels, *lr_size) and lr.dtype == torch.float32
    assert bool(torch.isfinite(lr).all()) and 0 <= float(lr.min()) and float(lr.max()) <= 1
    assert torch.equal(lr, torch.floor(lr * 255 + 0.5) / 255)  # an 8-bit image, as files are


def test_configs_check_their_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clean_prob"):
        DegradationConfig(clean_prob=1.5)
    with pytest.raises(ValueError, match="must keep the LR size"):
        DegradationConfig(stages=(Stage(resize=Resize()),))
    with pytest.raises(ValueError, match=r"stages\[0\].jpeg.quality"):
        DegradationConfig(stages=(Stage(jpeg=JPEG(quality=(0, 50))),))
    with pytest.raises(ValueError, match="odd"):
        DegradationConfig(stages=(Stage(blur=Blur(size=(6, 8))),), bicubic_first=False)
    with pytest.raises(ValueError, match="unknown degradation 'sharp'.*bicubic, web, real"):
        load_degradation("sharp")


def test_configs_load_from_json_files(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"stages": [{"noise": {"sigma": [2, 4]}, "jpeg": {"quality": [60, 90]}}], "clean_prob": 0.5}))
    config = load_degradation(path)
    assert config == DegradationConfig(stages=(Stage(noise=Noise(sigma=(2.0, 4.0)), jpeg=JPEG(quality=(60, 90))),), clean_prob=0.5)
    for bad, field in (
        ({"stages": [{"noise": {"sigma": "x"}}]}, r"stages\[0\].noise.sigma"),
        ({"stages": [{"jpeg": {"quality": [50.5, 90]}}]}, r"quality\[0\]: expected an integer"),
        ({"bicubic_first": "no"}, "bicubic_first: expected true or false"),
        ({"stages": [{"sharpen": {}}]}, "unknown fields sharpen"),
        ([1, 2], "expected an object"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=field):
            load_degradation(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON file"):
        load_degradation(path)


def test_sampler_degrades_on_its_own_stream_and_resumes_it() -> None:
    images = [torch.randint(0, 256, (3, 60, 70), dtype=torch.uint8) for _ in range(3)]
    a = InMemoryPatchSampler(images, 4, 8, 6, device="cpu", seed=1, degradation="web")
    b = InMemoryPatchSampler(images, 4, 8, 6, device="cpu", seed=1, degradation="web")
    clean = InMemoryPatchSampler(images, 4, 8, 6, device="cpu", seed=1)
    lr_a, hr_a = a.sample()
    lr_b, hr_b = b.sample()
    lr_c, hr_c = clean.sample()
    assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_c) and not torch.equal(lr_a, lr_c)
    state = a.state_dict()
    first = a.sample()
    a.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(first, a.sample()))


def _hr_folder(folder: Path, count: int = 2) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        base = np.kron(rng.integers(0, 256, (6, 7, 3)), np.ones((8, 8, 1)))
        Image.fromarray((base * 0.8 + rng.integers(0, 50, base.shape)).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_benchmark_conditions_give_the_same_bytes_whatever_the_order_and_threads(tmp_path: Path) -> None:
    folder = _hr_folder(tmp_path / "set")
    threads = torch.get_num_threads()
    assert torch.equal(BenchmarkDataset(folder, 4, condition="clean")[0]["lr"], BenchmarkDataset(folder, 4)[0]["lr"])
    for name in [name for name in BENCHMARK_CONDITIONS if name != "clean"]:
        data = BenchmarkDataset(folder, 4, condition=name)
        first = [data[i]["lr"] for i in range(len(data))]
        torch.set_num_threads(1)
        try:
            again = [data[i]["lr"] for i in reversed(range(len(data)))][::-1]
        finally:
            torch.set_num_threads(threads)
        assert all(torch.equal(x, y) for x, y in zip(first, again)), name
        clean = BenchmarkDataset(folder, 4)[0]["lr"]
        assert not torch.equal(first[0], clean), name
        assert torch.equal(first[0], torch.round(first[0] * 255) / 255)
    other_seed = BenchmarkDataset(folder, 4, condition="noise10", seed=1)[0]["lr"]
    assert not torch.equal(other_seed, BenchmarkDataset(folder, 4, condition="noise10")[0]["lr"])
    with pytest.raises(ValueError, match="unknown condition 'jpeg10'"):
        BenchmarkDataset(folder, 4, condition="jpeg10")


def test_a_condition_is_the_recipe_its_name_spells() -> None:
    assert Condition.from_name("clean") == Condition()
    assert Condition.from_name("noise5-jpeg75") == Condition(noise_sigma=5.0, jpeg_quality=75)
    assert BENCHMARK_CONDITIONS["jpeg50"] == Condition(jpeg_quality=50)
    for name in ("blur", "jpeg", "jpeg101", "jpeg0", "noise-1", "noise5-", "-jpeg75", "jpeg75-noise5", "noise²", "Clean"):
        with pytest.raises(ValueError, match=f"unknown condition '{name}'"):
            Condition.from_name(name)


def test_noise_condition_adds_its_sigma(tmp_path: Path) -> None:
    folder = _hr_folder(tmp_path / "set", 1)
    clean = BenchmarkDataset(folder, 2)[0]["lr"]
    noisy = BenchmarkDataset(folder, 2, condition="noise10")[0]["lr"]
    assert float((noisy - clean).std() * 255) == pytest.approx(10.0, rel=0.1)


def test_the_bicubic_row_is_scored_on_the_degraded_lr(tmp_path: Path) -> None:
    folder = _hr_folder(tmp_path / "set")
    clean = evaluate("bicubic", folder, 4, progress=False)
    rows = [evaluate("bicubic", folder, 4, progress=False, condition="jpeg50") for _ in range(2)]
    assert rows[0] == rows[1] and rows[0]["condition"] == "jpeg50"
    assert rows[0]["psnr"] < clean["psnr"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msrnet", *args], capture_output=True, text=True)


def test_cli_benchmark_condition_is_repeatable(tmp_path: Path) -> None:
    folder = _hr_folder(tmp_path / "set")
    args = ["benchmark", "--model", "bicubic", "--scale", "4", "--dataset", str(folder), "--json",
            "--condition", "clean", "--condition", "noise5-jpeg75"]
    first, second = _cli(*args), _cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    rows = json.loads(first.stdout)
    assert [r.get("condition", "clean") for r in rows] == ["clean", "noise5-jpeg75"]
    bad = _cli("benchmark", "--model", "bicubic", "--scale", "4", "--dataset", str(folder), "--condition", "blur")
    assert bad.returncode == 2 and "invalid choice: 'blur'" in bad.stderr


@pytest.mark.parametrize("degradation", ["real", "web"])
def test_cli_train_runs_two_steps_with_a_degradation(tmp_path: Path, degradation: str) -> None:
    folder = _hr_folder(tmp_path / "train", 3)
    out = tmp_path / "run"
    result = _cli("train", "--train-dir", str(folder), "--model", "msr_small_x4", "--degradation", degradation,
                  "--max-steps", "2", "--batch-size", "2", "--patch-size", "8", "--device", "cpu",
                  "--output-dir", str(out), "--no-progress", "--no-amp")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 2
    assert json.loads((out / "config.json").read_text())["degradation"] == degradation


def test_cli_train_refuses_an_unknown_degradation(tmp_path: Path) -> None:
    folder = _hr_folder(tmp_path / "train", 1)
    result = _cli("train", "--train-dir", str(folder), "--degradation", "jpeg", "--output-dir", str(tmp_path / "o"))
    assert result.returncode != 0 and "unknown degradation 'jpeg'" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: JPEG(quality=(50.5, 90)), r"JPEG.quality\[0\]: expected an integer, got 50.5"),
        (lambda: Blur(size=(7.0, 21)), r"Blur.size\[0\]: expected an integer"),
        (lambda: Noise(sigma="5"), "Noise.sigma: expected a list"),
        (lambda: Resize(modes="bicubic"), "Resize.modes: expected a list"),
        (lambda: Stage(prob=True), "Stage.prob: expected a number"),
        (lambda: Stage(jpeg={"quality": [1.5, 2]}), r"Stage.jpeg.quality\[0\]"),
        (lambda: DegradationConfig(bicubic_first=1), "DegradationConfig.bicubic_first: expected true or false"),
        (lambda: DegradationConfig(stages=[Stage(), "jpeg"]), r"stages\[1\]: expected an object"),
        (lambda: DegradationConfig(clean_prob=float("nan")), "clean_prob: expected a number"),
    ],
)
def test_the_python_api_checks_types_as_the_json_path_does(build, field: str) -> None:
    # Before: accepted, then `degrade` failed inside torch with a TypeError.
    with pytest.raises(ValueError, match=field):
        build()


def test_python_values_are_normalized_as_json_values_are(tmp_path: Path) -> None:
    config = DegradationConfig(stages=[Stage(jpeg=JPEG(quality=[40, np.int64(60)]), prob=1)], clean_prob=0)
    assert config == DegradationConfig(stages=(Stage(jpeg=JPEG(quality=(40, 60))),))
    assert type(config.stages[0].jpeg.quality[1]) is int and type(config.clean_prob) is float
    # to_dict is what a file of the config holds: it reads back as an equal config.
    for preset in (config, *PRESETS.values()):
        (tmp_path / "c.json").write_text(json.dumps(preset.to_dict()))
        assert load_degradation(tmp_path / "c.json") == preset


def test_is_bicubic_is_the_one_rule_for_nothing_to_degrade(tmp_path: Path) -> None:
    from msrnet.data.degradations import load_degradation

    assert load_degradation("bicubic").is_bicubic
    assert not load_degradation("web").is_bicubic and not load_degradation("real").is_bicubic
    # A file that spells the bicubic pipeline is the bicubic pipeline, whatever its name.
    spelled = tmp_path / "plain.json"
    spelled.write_text('{"stages": [], "bicubic_first": true}')
    assert load_degradation(str(spelled)).is_bicubic
    hr = torch.rand(2, 3, 16, 16)
    clean = torch.rand(2, 3, 4, 4)
    assert degrade(hr, 4, load_degradation(str(spelled)), clean_lr=clean) is clean
