"""`msrnet weights`: the shipped files, where they are, and copies of them (e.g. into ComfyUI)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import msrnet
from msrnet._catalogue import PRETRAINED_SHA256
from msrnet._utils import sha256sum
from msrnet.cli import main
from msrnet.models._pretrained import pretrained_file

SRC = Path(msrnet.__file__).resolve().parents[1]


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


def test_a_different_file_of_the_same_name_is_replaced_only_with_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = tmp_path / "msr_small_x2.t291.safetensors"
    theirs.write_bytes(b"someone's own weights")
    assert main(["weights", "msr_small_x2", "--copy-to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{theirs} exists and is not the shipped msr_small_x2.t291; pass --force" in err
    # Refused before anything is written: not even the other tag's file.
    assert theirs.read_bytes() == b"someone's own weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == [theirs.name]
    assert main(["weights", "msr_small_x2", "--copy-to", str(tmp_path), "--force"]) == 0
    assert sha256sum(theirs) == PRETRAINED_SHA256["msr_small_x2.t291"]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_file_names_are_names(capsys: pytest.CaptureFixture[str]) -> None:
    # What the help promises: models or files.
    assert main(["weights", "msr_small_x4.real.safetensors", "msr_x2"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["msr_small_x4.real", "msr_x2.t291"]


def test_an_empty_folder_name_and_a_dangling_link_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["weights", "msr_small_x2", "--copy-to", ""])
    assert stop.value.code == 2 and "--copy-to: an empty folder name" in capsys.readouterr().err
    link = tmp_path / "models"
    link.symlink_to(tmp_path / "gone")
    assert main(["weights", "msr_small_x2", "--copy-to", str(link)]) == 2
    assert f"--copy-to {link} is a symbolic link to {tmp_path / 'gone'}, which does not exist" in capsys.readouterr().err
    assert not (tmp_path / "gone").exists()


def test_a_stale_temporary_file_of_ours_is_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What a copy killed by SIGKILL leaves: atomic_write's naming, beside the target.
    stale = tmp_path / ".msr_small_x2.t291.safetensors.0a1b2c3d.tmp.safetensors"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".hidden.safetensors"
    other.write_bytes(b"not ours")
    assert main(["weights", "msr_small_x2.t291", "--copy-to", str(tmp_path)]) == 0
    assert f"removed {stale.name}" in capsys.readouterr().out
    assert not stale.exists() and other.exists()
    # Also beside a file that is already there (the copy killed was a --force replacement).
    stale.write_bytes(b"half a file")
    assert main(["weights", "msr_small_x2.t291", "--copy-to", str(tmp_path)]) == 0
    assert "already in" in capsys.readouterr().out and not stale.exists()


# Runs `msrnet weights --copy-to` with its copy held after the first MiB (the test's stand-in for
# a slow disk), tells the parent "copying", and waits for the parent's signal.
SLOW_COPY = """
import sys, time
sys.path.insert(0, sys.argv[1])
from msrnet.cli import _main, weights
def held(src, out):
    out.write(src.read(1 << 20))
    out.flush()
    print("copying", flush=True)
    time.sleep(600)
weights._copy_chunks = held
sys.exit(_main.main(["weights", "msr_x4.t291", "--copy-to", sys.argv[2]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_copy_leaves_no_partial_file(tmp_path: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_COPY, str(SRC), str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "copying\n", proc.stderr
        assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]  # the copy is under way
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == [], err  # neither the temporary file nor a target
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
        assert "msrnet weights: terminated (SIGTERM); the file being copied was discarded" in err


def test_weights_imports_no_torch(tmp_path: Path) -> None:
    # Listing and copying read the torch-free catalogue: they answer at once, not after torch's
    # seconds of imports.
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]); from msrnet.cli import main; "
        "codes = [main(['weights']), main(['weights', 'msr_small_x2', '--copy-to', sys.argv[2]]), "
        "main(['weights', 'msr_small_x2', '--copy-to', sys.argv[2]])]; "
        "assert codes == [0, 0, 0], codes; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check, str(SRC), str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "already in" in proc.stdout


def test_unknown_name_and_file_destination_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "msr_x5"]) == 2
    assert "no shipped weights named 'msr_x5'" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["weights", "msr_small_x2", "--copy-to", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_corrupted_shipped_file_is_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from msrnet import _catalogue

    monkeypatch.setitem(_catalogue.PRETRAINED_SHA256, "msr_small_x8.t291", "0" * 64)
    assert main(["weights", "msr_small_x8.t291", "--copy-to", str(tmp_path / "out")]) == 1
    assert "does not match its recorded sha256" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # checked before the folder is made
