"""The CPU as a first-class device: native bf16 detection, the dtype and amp it decides, the
compiled inference path. Both answers of the hardware check are exercised on any CPU."""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import msrnet
import msrnet.device
from msrnet import cli
from msrnet.cli import upscale as upscale_cli
from msrnet.inference import resolve_dtype
from msrnet.train import TrainConfig, load_checkpoint, train
from msrnet.train.modes import amp_enabled

TINY = {"stem_widths": [16, 16], "level_chans": [8, 8], "num_blocks": 2}
CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's CPU answers that it computes bf16 natively, whatever it is."""
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: True)
    yield


@pytest.fixture
def emulated_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: False)
    yield


@pytest.mark.parametrize(
    ("onednn", "flags", "expected"),
    [
        (True, set(), True),  # oneDNN's answer wins where torch exposes it
        (False, {"amx_bf16", "avx512_bf16"}, False),
        (None, {"fpu", "avx2", "amx_bf16", "amx_tile"}, True),  # /proc/cpuinfo otherwise
        (None, {"fpu", "avx512f", "avx512_bf16"}, True),
        (None, {"fpu", "avx2", "avx512f"}, False),
        (None, set(), False),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_native_bf16_takes_onednn_then_cpuinfo(
    monkeypatch: pytest.MonkeyPatch, onednn: bool | None, flags: set[str], expected: bool
) -> None:
    monkeypatch.setattr(msrnet.device, "_onednn_bf16", lambda: onednn)
    monkeypatch.setattr(msrnet.device, "_cpuinfo_flags", lambda: flags)
    msrnet.device.cpu_has_native_bf16.cache_clear()
    try:
        assert msrnet.device.cpu_has_native_bf16() is expected
    finally:
        msrnet.device.cpu_has_native_bf16.cache_clear()


def test_cpuinfo_flags_are_read_from_the_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n")
    assert msrnet.device._cpuinfo_flags(info) == {"fpu", "avx2", "amx_bf16"}
    assert msrnet.device._cpuinfo_flags(tmp_path / "missing") == set()


def test_auto_dtype_is_bf16_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype(None, CPU) == resolve_dtype("auto", CPU) == torch.bfloat16
    assert "native bf16" in msrnet.device.bf16_reason(CPU)
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype(None, CPU) == resolve_dtype("auto", CPU) == torch.float32
    assert "without native bf16" in msrnet.device.bf16_reason(CPU)
    # An explicit dtype is taken as given, emulated or not.
    assert resolve_dtype("bf16", CPU) == torch.bfloat16 and resolve_dtype("fp32", CPU) == torch.float32
    with pytest.raises(ValueError, match="use auto or one of"):
        resolve_dtype("int8", CPU)


def test_significant_bits_of_samples_and_compute_dtypes() -> None:
    bits = msrnet.device.significant_bits
    assert [bits(d) for d in (torch.bfloat16, torch.float16, torch.float32, torch.float64)] == [8, 11, 24, 53]
    assert bits(torch.uint8) == 8 and bits(torch.uint16) == 16


def test_a_model_runs_where_asked_else_where_its_weights_are() -> None:
    conv = torch.nn.Conv2d(3, 3, 3)
    assert msrnet.device.run_device(conv) == torch.device("cpu")
    assert msrnet.device.run_device(conv.to("meta")) == torch.device("meta")
    assert msrnet.device.run_device(conv, "cpu") == torch.device("cpu")
    assert msrnet.device.run_device(torch.nn.Identity()) == torch.device("cpu")  # no weights


def test_auto_never_computes_below_the_inputs_precision(native_bf16: None) -> None:
    # bf16 keeps 8 significant bits: enough for 8-bit samples, not for 16-bit ones or fp32/fp16.
    assert resolve_dtype("auto", CPU, 8) == resolve_dtype(None, CPU) == torch.bfloat16
    for bits in (10, 11, 16, 24):
        assert resolve_dtype("auto", CPU, bits) == torch.float32, bits
    assert resolve_dtype("bf16", CPU, 16) == torch.bfloat16  # asked for: taken as given


def test_auto_upscales_16_bit_and_float_inputs_in_fp32(native_bf16: None) -> None:
    model = msrnet.create_model("msr_x4", **TINY).eval()
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    eight = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)

    def run(image: object, dtype: str) -> object:
        return msrnet.upscale(model, image, tile=None, dtype=dtype)

    assert np.array_equal(run(deep, "auto"), run(deep, "fp32"))
    assert not np.array_equal(run(deep, "bf16"), run(deep, "fp32"))  # what auto would have lost
    assert np.array_equal(run(eight, "auto"), run(eight, "bf16"))  # 8 bits: the fast path stays
    x = torch.rand(1, 3, 12, 10)
    assert torch.equal(run(x, "auto"), run(x, "fp32"))
    assert torch.equal(run(x.bfloat16(), "auto"), run(x.bfloat16(), "bf16"))


def test_the_cli_upscales_16_bit_images_in_fp32_under_auto(
    native_bf16: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 65536, (12, 10), dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "eight.png")
    outs = {}
    for dtype in ("auto", "fp32", "bf16"):
        out = tmp_path / dtype
        args = ["upscale", str(tmp_path / "deep.png"), str(tmp_path / "eight.png"), "-o", str(out)]
        assert cli.main([*args, "--model", "msr_small_x4", "--dtype", dtype, "--compile", "off"]) == 0
        outs[dtype] = {name: np.asarray(Image.open(out / name)) for name in ("deep.png", "eight.png")}
    assert outs["auto"]["deep.png"].dtype == np.uint16
    assert np.array_equal(outs["auto"]["deep.png"], outs["fp32"]["deep.png"])
    assert not np.array_equal(outs["bf16"]["deep.png"], outs["fp32"]["deep.png"])
    assert np.array_equal(outs["auto"]["eight.png"], outs["bf16"]["eight.png"])
    captured = capsys.readouterr()
    assert "(bfloat16, auto: CPU with native bf16 (AMX / AVX-512 BF16); 16-bit images in float32)" in (
        captured.out + captured.err
    )


def test_amp_is_granted_where_bf16_is_native(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = TrainConfig(train_dir=str(tmp_path), output_dir=str(tmp_path / "o"), device="cpu")
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: True)
    assert amp_enabled(config, CPU)[0] is True
    assert amp_enabled(replace(config, amp=False), CPU) == (False, "amp off")
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: False)
    granted, reason = amp_enabled(config, CPU)
    assert granted is False and "without native bf16" in reason


def _smooth_images(root: Path, count: int, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    for i in range(count):
        planes = [np.sin(x / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 9)) for _ in range(3)]
        Image.fromarray(((np.stack(planes, -1) * 0.5 + 0.5) * 255).round().astype(np.uint8)).save(root / f"{i}.png")
    return root


def _config(images: Path, out: Path, **overrides: object) -> TrainConfig:
    base = TrainConfig(
        train_dir=str(images), output_dir=str(out), model="msr_x4", model_kwargs=TINY, max_steps=8,
        batch_size=2, patch_size=8, lr=2e-3, warmup_steps=1, log_every=2, ckpt_every=100,
        device="cpu", progress=False,
    )
    return replace(base, **overrides)


def test_bf16_training_on_the_cpu_resumes_bitwise(
    native_bf16: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _smooth_images(tmp_path / "images", 3, (48, 56))
    whole = _config(images, tmp_path / "whole")
    summary = train(whole)
    assert summary["amp_bf16"] is True
    half = replace(whole, output_dir=str(tmp_path / "split"), max_steps=4, schedule_steps=8)
    train(half)
    train(replace(half, max_steps=8, resume=half.output_dir))
    a, b = (load_checkpoint(tmp_path / run / "checkpoint.pt") for run in ("whole", "split"))
    # Under autocast the weights, the optimizer state and the EMA stay float32.
    for key in ("model", "ema"):
        assert all(t.dtype == torch.float32 for t in a[key].values() if t.is_floating_point())
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert "training in float32" not in capsys.readouterr().err


def test_amp_on_a_cpu_without_native_bf16_trains_fp32_and_says_why(
    emulated_bf16: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _smooth_images(tmp_path / "images", 2, (40, 40))
    summary = train(_config(images, tmp_path / "run", max_steps=2))
    assert summary["amp_bf16"] is False
    err = capsys.readouterr().err
    assert err.count("msrnet train: training in float32, not bf16: CPU without native bf16") == 1


def test_the_default_compiles_on_a_cpu_and_not_on_cuda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from msrnet.train.modes import compile_enabled

    config = TrainConfig(train_dir=str(tmp_path), output_dir=str(tmp_path / "o"))
    monkeypatch.delenv("TORCH_COMPILE_DISABLE")
    monkeypatch.setattr(msrnet.device, "cpu_can_compile", lambda: True)
    assert compile_enabled(config, CPU) and not compile_enabled(config, torch.device("cuda"))
    assert not compile_enabled(replace(config, compile=False), CPU)
    assert compile_enabled(replace(config, compile=True), torch.device("cuda"))
    monkeypatch.setattr(msrnet.device, "cpu_can_compile", lambda: False)  # no C++ compiler
    assert not compile_enabled(config, CPU)
    monkeypatch.setattr(msrnet.device, "cpu_can_compile", lambda: True)
    monkeypatch.setenv("TORCH_COMPILE_DISABLE", "1")  # torch's own switch
    assert not compile_enabled(config, CPU)


def test_the_first_step_counts_against_the_time_budget(tmp_path: Path) -> None:
    images = _smooth_images(tmp_path / "images", 2, (40, 40))
    summary = train(_config(images, tmp_path / "run", max_steps=3))
    seconds = summary["seconds"]
    assert 0 < seconds["first_step"] <= seconds["train"]


def test_compiled_upscale_matches_eager_and_compiles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    model = msrnet.create_model("msr_x4", **TINY).eval()
    compiles = []
    real_compile = torch.compile

    def counting_compile(module: torch.nn.Module, **kwargs: object) -> object:
        compiles.append(module)
        # The eager backend: the caching and dtype paths are what is tested, not inductor.
        return real_compile(module, backend="eager", **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(torch, "compile", counting_compile)
    x = torch.rand(1, 3, 20, 24)
    eager = msrnet.upscale(model, x, tile=None)
    for _ in range(3):
        compiled = msrnet.upscale(model, x, tile=None, compile=True)
        assert torch.allclose(compiled, eager, atol=1e-5)
    assert len(compiles) == 1, "a second call with the same model reuses the compiled copy"
    # A reduced dtype gets its own copy, in that dtype; the model itself stays float32.
    bf16 = msrnet.upscale(model, x, tile=None, compile=True, dtype="bf16")
    assert len(compiles) == 2 and next(compiles[1].parameters()).dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32
    assert (bf16 - eager).abs().max() < 0.05
    # Tiles run the compiled copy too (one tile shape), blended as the eager tiles are.
    tiled = msrnet.upscale(model, x, tile=16, tile_overlap=8)
    assert torch.allclose(msrnet.upscale(model, x, tile=16, tile_overlap=8, compile=True), tiled, atol=1e-5)
    # Weights changed in place (training, load_state_dict) are seen: a fresh copy.
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    msrnet.upscale(model, x, tile=None, compile=True)
    assert len(compiles) == 4  # after the bf16 copy and the tiled calls' fp32 one


def _args(**overrides: object) -> argparse.Namespace:
    return argparse.Namespace(**{"compile": "auto", "self_ensemble": False, **overrides})


def test_compile_auto_pays_only_on_a_cpu_that_compiles_and_long_jobs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = msrnet.create_model("msr_small_x4")
    n_params = sum(p.numel() for p in model.parameters())
    side = int((upscale_cli.COMPILE_WORK / n_params / 4) ** 0.5) + 1  # four images of side^2 pay
    Image.new("RGB", (side, side)).save(tmp_path / "a.png")
    big = [tmp_path / "a.png"] * 4
    monkeypatch.setattr(msrnet.device, "cpu_can_compile", lambda: True)
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: True)
    for dtype in (torch.bfloat16, torch.float32):
        assert upscale_cli._compile_pays(_args(), model, CPU, dtype, big)
        assert not upscale_cli._compile_pays(_args(), model, CPU, dtype, big[:3])
    assert upscale_cli._compile_pays(_args(self_ensemble=True), model, CPU, torch.float32, big[:1])
    assert not upscale_cli._compile_pays(_args(compile="off"), model, CPU, torch.float32, big)
    assert not upscale_cli._compile_pays(_args(), model, torch.device("cuda"), torch.bfloat16, big)
    # Without native bf16 compiling gains less: only a job the size of a video pays it back.
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: False)
    assert not upscale_cli._compile_pays(_args(), model, CPU, torch.float32, big)
    many = int(4 * upscale_cli.COMPILE_WORK_WITHOUT_BF16 / upscale_cli.COMPILE_WORK) + 1
    assert upscale_cli._compile_pays(_args(), model, CPU, torch.float32, big[:1] * many)
    monkeypatch.setattr(msrnet.device, "cpu_can_compile", lambda: False)  # no C++ compiler
    assert not upscale_cli._compile_pays(_args(), model, CPU, torch.float32, big[:1] * many)
    assert upscale_cli._compile_pays(_args(compile="on"), model, CPU, torch.float32, big[:1])
    # An unreadable file counts for nothing here; it fails when it is upscaled.
    monkeypatch.setattr(msrnet.device, "cpu_can_compile", lambda: True)
    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: True)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert not upscale_cli._compile_pays(_args(), model, CPU, torch.float32, [tmp_path / "bad.png"] * 8)


def test_demo_names_the_dtype_and_why(
    emulated_bf16: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    use_tiny_models: object,
) -> None:
    use_tiny_models(**TINY)  # type: ignore[operator]
    monkeypatch.chdir(tmp_path)
    assert cli.main(["upscale", "--demo", "--model", "msr_x4", "--no-pretrained"]) == 0
    out = capsys.readouterr()
    assert "(float32, auto: CPU without native bf16)" in out.out + out.err


# Scores one file on Set5 and Set14 in bf16 and fp32, in a process of its own: this one sees no
# native bf16 (the conftest caps oneDNN at AVX2), where bf16 is emulated and many times slower.
_SCORE_BOTH_DTYPES = """
import json, sys
import msrnet
from msrnet.evaluate import evaluate
name, data = sys.argv[1], sys.argv[2]
model = msrnet.create_model(name, pretrained=True)
print(json.dumps({
    dtype: {s: evaluate(lambda x: msrnet.upscale(model, x, tile=None, dtype=dtype), f"{data}/{s}",
                        model.scale, progress=False)["psnr"] for s in ("Set5", "Set14")}
    for dtype in ("bf16", "fp32")
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["msr_small_x4.real", "msr_medium_x4.t291"])
def test_bf16_scores_as_fp32_where_the_cpu_computes_it(name: str, shared_data: Path) -> None:
    """bf16, what ``dtype="auto"`` picks for 8-bit images on a CPU with native bf16, changes no
    Set5 / Set14 score by 0.01 dB: the default file of `msrnet upscale` and the medium one."""
    import json
    import os
    import subprocess
    import sys

    if not set(msrnet.device._BF16_FLAGS) & msrnet.device._cpuinfo_flags():
        pytest.skip("this CPU emulates bf16: slow, and not what auto picks here")
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    proc = subprocess.run([sys.executable, "-c", _SCORE_BOTH_DTYPES, name, str(shared_data)],
                          env=env, capture_output=True, text=True, check=True, timeout=1800)
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    for dataset in ("Set5", "Set14"):
        assert abs(scores["bf16"][dataset] - scores["fp32"][dataset]) <= 0.01, (dataset, scores)
