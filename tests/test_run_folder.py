"""Run folders shared between jobs: one training at a time, exact resumes, honest hints.

- a second training into a folder another one holds stops with one line, and the first run's
  files are untouched; a lock file left by a killed run is taken over with a warning;
- a resume whose degradation file changed since the run started is refused, naming the field;
- a run killed before its first checkpoint is answered with a hint that works (--overwrite);
- Ctrl-C ends `msrnet train` with one line saying what was saved, exit 130;
- warnings (an unreadable training image) are one line, ``msrnet train: warning: ...``;
- a resumed run reads its ``log.jsonl`` back as a stranger's file: bounded in size, a line at a
  time, never through a link or from a FIFO.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msrnet import cli
from msrnet.train import CheckpointError, TrainConfig, train
from msrnet.train.outputs import LOCK_NAME, MAX_LOG_BYTES, RunLog, lock_run_folder

REPO = Path(__file__).resolve().parents[1]
TINY = {"stem_widths": [8, 8], "level_chans": [8], "num_blocks": 2}
# A subprocess a test waits for is stopped only when it has hung, never for being slow.
HANG_GUARD_S = 1800


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images") / "train"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _config(data: Path, out: Path, **overrides: object) -> TrainConfig:
    base = TrainConfig(
        train_dir=str(data), output_dir=str(out), model="msr_x2", model_kwargs=TINY, max_steps=2,
        batch_size=2, patch_size=8, warmup_steps=0, log_every=1, ckpt_every=1, device="cpu", progress=False,
        ema_decay=0.0,
    )
    return replace(base, **overrides)


def _cli(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--train-dir", str(data), "--output-dir", str(out), "--model", "msr_x2",
            "--model-kwargs", json.dumps(TINY), "--batch-size", "2", "--patch-size", "8", "--device", "cpu",
            "--no-progress", "--warmup-steps", "0", "--ema-decay", "0", *extra]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- the lock --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _held(out: Path) -> Iterator[int]:
    """Another process holds ``out``'s lock, as a training in progress does; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, time\n"
         f"fd = os.open({str(out / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode())\n"
         "print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_training_into_a_held_folder_stops_and_loses_nothing(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(data, out))
    before = _files(out)
    assert LOCK_NAME not in before  # released (and removed) when the run ended
    # Another process holds the folder (a training in progress).
    with _held(out) as pid:
        for overrides in ({"overwrite": True}, {"resume": str(out), "max_steps": 4}):
            with pytest.raises(ValueError, match=rf"in use by another training \(process {pid}\)"):
                train(_config(data, out, **overrides))
            assert {k: v for k, v in _files(out).items() if k != LOCK_NAME} == before


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(dead.stdout)  # a run killed with -9 leaves its pid, but no lock
    with pytest.warns(UserWarning, match=rf"took over the lock left by process {dead.stdout.strip()}"):
        summary = train(_config(data, out))
    assert summary["step"] == 2 and not (out / LOCK_NAME).exists()


def test_the_lock_is_refused_through_a_planted_symlink_and_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="cannot lock the run folder"), lock_run_folder(out):
        pass
    assert not (tmp_path / "elsewhere").exists()
    fresh = tmp_path / "a" / "b"
    with lock_run_folder(fresh):
        assert (fresh / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (tmp_path / "a").exists()  # created for a run that wrote nothing: removed


def test_a_refused_run_leaves_no_folder_behind(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    with pytest.raises(FileNotFoundError, match="no readable training images"):
        train(_config(data, out, train_dir=str(tmp_path)))
    assert not (tmp_path / "new").exists()


# --- resume ----------------------------------------------------------------------------------------
def test_resume_refuses_an_edited_degradation_file_naming_the_field(data: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "d.json"
    pipeline.write_text(json.dumps({"stages": [{"noise": {"sigma": [1, 5]}}]}))
    out = tmp_path / "run"
    train(_config(data, out, degradation=str(pipeline)))
    checkpoint = (out / "checkpoint.pt").read_bytes()
    pipeline.write_text(json.dumps({"stages": [{"noise": {"sigma": [1, 50]}}]}))
    with pytest.raises(CheckpointError, match=r"d.json has changed since the run started: stages\[0\].noise.sigma "
                                              r"\[1.0, 5.0\] -> \[1.0, 50.0\]"):
        train(_config(data, out, degradation=str(pipeline), resume=str(out), max_steps=4))
    assert (out / "checkpoint.pt").read_bytes() == checkpoint
    # Put back as it was (written differently), the run resumes.
    pipeline.write_text(json.dumps({"stages": [{"noise": {"sigma": [1.0, 5.0], "prob": 1}}]}))
    assert train(_config(data, out, degradation=str(pipeline), resume=str(out), max_steps=4))["step"] == 4


def test_a_run_killed_before_its_first_checkpoint_gets_a_hint_that_works(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    train(_config(data, out))
    # What kill -9 during the first checkpoint write leaves: config, log, a temporary file.
    (out / "checkpoint.pt").rename(out / ".checkpoint.pt.1a2b3c4d.tmp.pt")
    (out / "best.safetensors").unlink()
    assert cli.main(_cli(data, out, "--max-steps", "2")) == 1
    err = capsys.readouterr().err
    assert "stopped before its first checkpoint" in err and "--overwrite" in err and "--resume" not in err
    assert cli.main(_cli(data, out, "--max-steps", "2", "--resume")) == 1
    err = capsys.readouterr().err
    assert "stopped before its first checkpoint; start it again with --overwrite" in err
    assert len(err.strip().splitlines()) == 1
    # The hint works.
    assert cli.main(_cli(data, out, "--max-steps", "2", "--overwrite")) == 0
    assert (out / "checkpoint.pt").is_file() and not list(out.glob(".*.tmp*"))


# --- Ctrl-C and warnings ---------------------------------------------------------------------------
def test_ctrl_c_in_train_is_one_line_with_what_was_saved(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "msrnet", *_cli(data, out, "--max-steps", "1000000", "--ckpt-every", "1")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"},
    )
    try:
        # Interrupted once the run has a checkpoint (however long that takes on a busy machine).
        while not (out / "checkpoint.pt").exists() and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"msrnet train: interrupted (Ctrl-C); {out} keeps its last checkpoint: continue with --resume"
    )


def test_warnings_are_one_line_with_the_command(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_dir = tmp_path / "td"
    train_dir.mkdir()
    for image in data.iterdir():
        (train_dir / image.name).write_bytes(image.read_bytes())
    (train_dir / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = _cli(data, tmp_path / "run", "--max-steps", "1")
    args[args.index("--train-dir") + 1] = str(train_dir)
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "bad.png" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"msrnet train: warning: skipped unreadable image {train_dir}")
    assert "thread.py" not in err and "UserWarning" not in err


def test_a_second_training_started_beside_a_running_one_is_told_it_is_in_use(data: Path, tmp_path: Path) -> None:
    # Both started into one new folder: the second once saw the first's config.json and was
    # told the run "stopped before its first checkpoint".
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with _held(out) as pid:
        with pytest.raises(ValueError, match=rf"{out} is in use by another training \(process {pid}\)"):
            train(_config(data, out))
    os.mkfifo(out / "fifo")
    (out / LOCK_NAME).unlink()
    os.mkfifo(out / LOCK_NAME)  # planted: neither blocks nor is written to
    with pytest.raises(ValueError, match="is not a regular file"):
        train(_config(data, out, overwrite=True))


def _line(step: int) -> str:
    return json.dumps({"event": "train", "step": step, "loss": 0.5})


def test_a_resumed_log_keeps_lines_up_to_the_checkpoint_and_drops_overlong_ones(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    overlong = '{"step": 1, "pad": "' + "x" * (2 << 20) + '"}'
    log.write_text("\n".join([_line(1), overlong, _line(2), _line(3)]) + "\n")
    with pytest.warns(UserWarning, match="unreadable log line"):
        run_log = RunLog(log, active=True, resume_step=2)
    run_log.close()
    assert log.read_text().splitlines() == [_line(1), _line(2)]


def test_a_log_larger_than_any_run_writes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with open(log, "wb") as f:
        f.truncate(MAX_LOG_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ValueError, match="move it aside"):
        RunLog(log, active=True, resume_step=10)
    assert log.stat().st_size == MAX_LOG_BYTES + 1  # nothing lost


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_log_that_is_a_fifo_or_a_link_is_not_read_through(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo" / "log.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    RunLog(fifo, active=True, resume_step=10).close()  # did not wait for a writer
    assert fifo.is_file() and fifo.read_text() == ""  # replaced by a fresh log
    outside = tmp_path / "outside.jsonl"
    outside.write_text(_line(1) + "\n")
    link = tmp_path / "link" / "log.jsonl"
    link.parent.mkdir()
    link.symlink_to(outside)
    RunLog(link, active=True, resume_step=10).close()
    assert outside.read_text() == _line(1) + "\n"  # the file it pointed to is untouched
    assert not link.is_symlink() and link.read_text() == ""
