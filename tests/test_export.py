"""msrnet.export: torch.export programs and ONNX with dynamic batch/H/W, checked against eager."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest
import torch

from _extras import needs_extra  # tests/_extras.py

import msrnet.models
from msrnet import MultiScaleSRNet
from msrnet.cli import main
from msrnet.export import export_model, format_from_path, verify_export


@pytest.fixture(scope="module")
def model() -> MultiScaleSRNet:
    # Narrow but complete: two pyramid levels and SE channel attention (a global mean that must
    # stay dynamic in H and W).
    torch.manual_seed(0)
    return MultiScaleSRNet(scale=4, stem_widths=(8, 8), num_blocks=2, level_chans=(8, 8)).eval()


@pytest.fixture(scope="module")
def program_path(model: MultiScaleSRNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(model, tmp_path_factory.mktemp("export") / "msr.pt2")


@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (3, 3, 40, 31)])
def test_exported_program_runs_at_new_sizes(
    model: MultiScaleSRNet, program_path: Path, shape: tuple[int, int, int, int]
) -> None:
    exported = torch.export.load(program_path).module()
    x = torch.rand(shape)
    with torch.no_grad():
        expected = model(x)
        actual = exported(x)
    assert actual.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_verify_export_and_format_from_path(model: MultiScaleSRNet, program_path: Path) -> None:
    assert format_from_path(program_path) == "exported-program"
    assert format_from_path("m.ONNX") == "onnx"
    assert verify_export(program_path, model) < 1e-5
    with pytest.raises(ValueError, match="cannot tell the export format"):
        format_from_path("m.bin")
    with pytest.raises(ValueError, match="format must be"):
        export_model(model, "m.pt2", "tflite")  # type: ignore[arg-type]


def test_export_leaves_the_callers_model_alone(tmp_path: Path) -> None:
    net = MultiScaleSRNet(scale=2, stem_widths=(8,), num_blocks=1, level_chans=(8,)).double().train()
    export_model(net, tmp_path / "m.pt2")
    assert net.training and next(net.parameters()).dtype == torch.float64


@pytest.mark.slow
def test_onnx_agrees_with_pytorch(model: MultiScaleSRNet, tmp_path: Path) -> None:
    ort = needs_extra("onnxruntime")
    needs_extra("onnxscript")
    path = export_model(model, tmp_path / "msr.onnx", verify=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "lr" and isinstance(inp.shape[2], str) and isinstance(inp.shape[3], str)
    x = torch.rand(2, 3, 29, 18)
    (actual,) = session.run(None, {"lr": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert actual.shape == (2, 3, 116, 72)
    assert abs(actual - expected).max() < 1e-4
    assert verify_export(path, model) < 1e-4


# --- the command line --------------------------------------------------------------------------
@pytest.fixture
def tiny_models(use_tiny_models: Callable[..., None]) -> None:
    """Registered names build narrow networks in the CLI, so exports stay fast."""

    use_tiny_models(stem_widths=(8, 8), num_blocks=2)


def test_export_cli(tiny_models: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.pt2"
    assert main(["export", "--model", "msr_x2", "--no-pretrained", "-o", str(path), "--verify"]) == 0
    out = capsys.readouterr().out
    assert path.is_file() and "exported msr_x2 (random weights) as exported-program" in out
    assert "max abs difference to PyTorch" in out


def test_export_names_the_tag_of_the_shipped_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # As `upscale` does: which of a model's shipped weights went into the file.
    path = tmp_path / "m.pt2"
    assert main(["export", "--model", "msr_small_x2.real", "-o", str(path)]) == 0
    assert f"exported msr_small_x2.real (packaged weights) as exported-program -> {path}" in capsys.readouterr().out


def test_export_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Weights ship for msr_x2: an emptied registry stands for a model without them.
    monkeypatch.setattr(msrnet.models._pretrained, "PRETRAINED_SHA256", {})
    assert main(["export", "--model", "msr_x2", "--no-pretrained", "-o", str(tmp_path / "m.bin")]) == 2
    assert "cannot tell the export format" in capsys.readouterr().err
    assert main(["export", "--model", "msr_x2", "-o", str(tmp_path / "m.pt2")]) == 2
    assert "--no-pretrained" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", "--model", "msr_x2", "--format", "tflite", "-o", str(tmp_path / "m.pt2")])
    assert e.value.code == 2


def test_export_replaces_a_planted_symlink_and_a_failed_export_keeps_the_old_file(
    model: MultiScaleSRNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours to overwrite")
    link = tmp_path / "m.pt2"
    link.symlink_to(victim)
    export_model(model, link)
    assert victim.read_text() == "not yours to overwrite" and not link.is_symlink()
    good = link.read_bytes()

    def fail(program: Any, f: Any) -> None:
        Path(f).write_bytes(b"half a program")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.export, "save", fail)
    with pytest.raises(OSError, match="No space left"):
        export_model(model, link)
    assert link.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2", "victim.txt"]


def test_export_cli_refuses_a_folder_and_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25, item 10: ``-o some_folder`` and ``-o /nonexistent/dir/x.pt2``, one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    for name in ("some_folder", "folder.pt2"):
        (tmp_path / name).mkdir()
        assert main(["export", "--model", "msr_x2", "--no-pretrained", "-o", name]) == 2
        assert capsys.readouterr().err == f"msrnet export: error: -o {name} is a folder: give a file name (.onnx or .pt2)\n"
        assert list((tmp_path / name).iterdir()) == []
    missing = tmp_path / "nonexistent" / "dir" / "x.pt2"
    for target in (missing, Path("/nonexistent-msrnet-test/dir/x.pt2")):
        assert main(["export", "--model", "msr_x2", "--no-pretrained", "-o", str(target)]) == 2
        assert capsys.readouterr().err == (
            f"msrnet export: error: -o {target}: the folder {target.parent} does not exist\n"
        )
        assert not target.parent.parent.exists()  # no folder was created


def test_export_model_refuses_a_folder_and_a_missing_folder_before_tracing(
    model: MultiScaleSRNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_trace(*args: object, **kwargs: object) -> None:
        raise AssertionError("traced before the path was checked")

    monkeypatch.setattr(torch.export, "export", no_trace)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_model(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_model(model, tmp_path / "a" / "b.pt2")
    assert list(tmp_path.iterdir()) == []
