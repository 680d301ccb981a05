"""What the command line tells a user who is missing something: an extra, a model name."""
from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import msrnet
from msrnet._utils import OPTIONAL_MODULES, missing_extra
from msrnet.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
# Import names whose distribution is called something else.
DISTRIBUTIONS = {"material": "mkdocs-material", "mkdocs": "mkdocs-material", "mkdocstrings_handlers": "mkdocstrings"}


def extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]


@pytest.mark.parametrize("module", sorted(OPTIONAL_MODULES))
def test_every_optional_module_names_an_extra_that_installs_it(module: str) -> None:
    extra = OPTIONAL_MODULES[module]
    assert extra in extras(), f"{module} points at a missing extra {extra!r}"
    dist = DISTRIBUTIONS.get(module, module)
    assert any(req.startswith(dist) for req in extras()[extra]), f"the {extra} extra does not install {dist}"


def test_missing_extra_is_one_line_and_follows_causes() -> None:
    try:
        try:
            raise ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript")
        except ModuleNotFoundError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as e:
        hint = missing_extra(e)
    assert hint is not None and "\n" not in hint and 'pip install "msrnet[onnx]"' in hint
    # Not an optional module, or installed but too old: no advice to install an extra.
    assert missing_extra(ModuleNotFoundError("x", name="numpy")) is None
    assert missing_extra(ImportError("cannot import name 'X' from 'spandrel'", name="spandrel")) is None


def test_export_without_the_onnx_extra_says_which_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    use_tiny_models: Callable[..., None],
) -> None:
    use_tiny_models(stem_widths=(8, 8), num_blocks=2, se_ratio=0)

    def no_onnxscript(*args: object, **kwargs: object) -> None:
        # What torch.onnx.export(dynamo=True) raises without onnxscript.
        raise ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript")

    monkeypatch.setattr(torch.onnx, "export", no_onnxscript)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", "msr_small_x4", "--no-pretrained", "--format", "onnx", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "msrnet export: error: the optional module 'onnxscript' is not installed; it comes with the onnx "
        'extra: pip install "msrnet[onnx]"'
    )
    assert not out.exists()


def test_spandrel_integration_without_spandrel_says_which_extra() -> None:
    # A fresh interpreter in which spandrel cannot be imported.
    code = "import sys; sys.modules['spandrel'] = None; import msrnet.integrations.spandrel"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        'ModuleNotFoundError: msrnet.integrations.spandrel needs spandrel: pip install "msrnet[spandrel]"'
    )


@pytest.mark.parametrize("command", ["upscale", "export"])
def test_help_lists_the_models_and_their_tags(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in msrnet.list_models(pretrained=True):
        arch, tag = name.split(".")
        listed = re.search(rf"\b{arch} \(weights: ([^)]*)\)", text)
        assert listed and tag in listed[1].split(", "), name


def test_unknown_model_lists_names_without_the_weights_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["upscale", "--demo", "--model", "msr_x5", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown msrnet model 'msr_x5'" in err and "msr_small_x4" in err
    assert "--weights FILE" not in err and "--no-pretrained" not in err


@pytest.mark.parametrize("slow", [False, True])
def test_a_slow_image_is_announced_before_the_wait(
    slow: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    use_tiny_models: Callable[..., None],
) -> None:
    import msrnet.cli.upscale

    use_tiny_models(stem_widths=(8, 8), num_blocks=2, se_ratio=0)
    # The threshold is in parameters x pixels, not seconds: no wall clock is involved.
    monkeypatch.setitem(msrnet.cli.upscale.SLOW_WORK, "cpu", 0.0 if slow else 1e30)
    argv = ["upscale", "--demo", "--model", "msr_x2", "--no-pretrained", "--device", "cpu", "-o", str(tmp_path)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    announced = "msrnet upscale: astronaut.png: 128x128 -> 256x256 on cpu, this takes a while ..." in err
    assert announced == slow
