"""`msrnet weights`: the shipped files, where they are, and copies of them (e.g. into ComfyUI)."""
from __future__ import annotations

from pathlib import Path

import pytest

import msrnet
from msrnet._utils import sha256sum
from msrnet.cli import main
from msrnet.models._pretrained import PRETRAINED_SHA256, pretrained_file


def test_lists_every_shipped_file_with_its_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PRETRAINED_SHA256) == len(msrnet.list_models(pretrained=True))
    for name in PRETRAINED_SHA256:
        path = pretrained_file(name)
        assert path is not None
        line = next(line for line in lines if line.startswith(name + " "))
        assert line.endswith(str(path)) and f" x{name.split('_x')[1].split('.')[0]} " in line


def test_copy_to_copies_checked_files_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "ComfyUI" / "models" / "upscale_models"
    assert main(["weights", "msr_small_x4", "--copy-to", str(dest)]) == 0  # every tag of it
    copied = dest / "msr_small_x4.t291.safetensors"
    assert sorted(p.name for p in dest.iterdir()) == ["msr_small_x4.real.safetensors", copied.name]
    assert sha256sum(copied) == PRETRAINED_SHA256["msr_small_x4.t291"]
    assert "copied" in capsys.readouterr().out
    # A second run leaves the identical file alone.
    mtime = copied.stat().st_mtime_ns
    assert main(["weights", "msr_small_x4.t291", "--copy-to", str(dest)]) == 0
    assert "already in" in capsys.readouterr().out and copied.stat().st_mtime_ns == mtime


def test_copy_replaces_a_different_file(tmp_path: Path) -> None:
    (tmp_path / "msr_small_x2.t291.safetensors").write_bytes(b"not weights")
    assert main(["weights", "msr_small_x2", "--copy-to", str(tmp_path)]) == 0
    assert sha256sum(tmp_path / "msr_small_x2.t291.safetensors") == PRETRAINED_SHA256["msr_small_x2.t291"]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_unknown_name_and_file_destination_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "msr_x5"]) == 2
    assert "no shipped weights named 'msr_x5'" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["weights", "msr_small_x2", "--copy-to", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_corrupted_shipped_file_is_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from msrnet.models import _pretrained

    monkeypatch.setitem(_pretrained.PRETRAINED_SHA256, "msr_small_x8.t291", "0" * 64)
    assert main(["weights", "msr_small_x8.t291", "--copy-to", str(tmp_path / "out")]) == 1
    assert "does not match its recorded sha256" in capsys.readouterr().err
    assert not list((tmp_path / "out").iterdir())
