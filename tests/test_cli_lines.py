"""Every command ends and warns in one line, from one place (`msrnet.cli.main`), by one exit-code rule.

Arguments a command refuses exit 2 (as argparse's own errors), work that failed exits 1, Ctrl-C
130, in every command.

Ctrl-C is ``msrnet COMMAND: interrupted (Ctrl-C); <what was saved>`` and exit 130 (before: a
traceback in train, benchmark and weights); a warning from anywhere, a worker thread included,
is ``msrnet COMMAND: warning: ...`` on one line instead of Python's file name and source line.
"""
from __future__ import annotations

import argparse
import importlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from msrnet import cli

ARGS = {
    "upscale": ["upscale", "x.png", "-o", "out"],
    "benchmark": ["benchmark", "--model", "bicubic", "--scale", "2", "--dataset", "d", "--save-images", "saved"],
    "train": ["train", "--train-dir", "t"],
    "export": ["export", "-o", "m.onnx"],
    "weights": ["weights", "--copy-to", "models"],
}
SAVED = {
    "upscale": "the output being written was discarded",
    "benchmark": "no scores were printed; the images saved so far are in saved",
    "train": "nothing was written",
    "export": "the output being written was discarded",
    "weights": "the file being copied was discarded",
}


def _main(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except KeyboardInterrupt:  # would end the test session, not fail one test
        pytest.fail("KeyboardInterrupt escaped msrnet.cli.main")


@pytest.mark.parametrize("command", list(ARGS))
def test_ctrl_c_is_one_line_and_exit_130_in_every_command(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(f"msrnet.cli.{command}"), "run", interrupted)
    assert _main(ARGS[command]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"msrnet {command}: interrupted (Ctrl-C); {SAVED[command]}")


def test_a_train_interrupted_after_a_checkpoint_says_how_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        args.run_dir = str(tmp_path)
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("msrnet.cli.train"), "run", interrupted)
    (tmp_path / "config.json").write_text("{}")
    assert _main(ARGS["train"]) == 130
    assert capsys.readouterr().err == (
        f"msrnet train: interrupted (Ctrl-C); {tmp_path} holds no checkpoint yet: start again with --overwrite\n"
    )
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    assert _main(ARGS["train"]) == 130
    assert capsys.readouterr().err == (
        f"msrnet train: interrupted (Ctrl-C); {tmp_path} keeps its last checkpoint: continue with --resume\n"
    )


@pytest.mark.parametrize("command", ["benchmark", "train", "weights"])
def test_warnings_from_any_thread_are_one_line_naming_the_command(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def warns(args: argparse.Namespace) -> int:
        # As load_images warns: from a worker thread, a message that spans lines.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(warnings.warn, "skipped unreadable image td/bad.png:\n  could not create decoder object").result()
        return 0

    monkeypatch.setattr(importlib.import_module(f"msrnet.cli.{command}"), "run", warns)
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(ARGS[command]) == 0
    assert warnings.showwarning is before  # main hands the hook back
    assert capsys.readouterr().err == (
        f"msrnet {command}: warning: skipped unreadable image td/bad.png: could not create decoder object\n"
    )


# Per command: arguments it refuses (exit 2), and work that fails (exit 1) -- each argv made
# from the test's tmp_path; the second may plant what makes the work fail.
def _refused(command: str, tmp_path: Path) -> list[str]:
    return {
        "upscale": ["upscale", str(tmp_path / "x.png")],  # no -o
        "benchmark": ["benchmark", "--model", "bicubic", "--dataset", str(tmp_path)],  # bicubic needs --scale
        "train": ["train", "--lr", "0.1"],  # no --train-dir
        "export": ["export", "--no-pretrained", "-o", str(tmp_path / "m.bin")],  # neither .onnx nor .pt2
        "weights": ["weights", "msr_x5"],  # ships no such file
    }[command]


def _failing(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.png").write_bytes(b"not an image")
    if command == "export":
        import msrnet.export

        def full_disk(*args: object, **kwargs: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(msrnet.export, "export_model", full_disk)
    if command == "weights":
        from msrnet import _catalogue

        monkeypatch.setitem(_catalogue.PRETRAINED_SHA256, "msr_small_x2.t291", "0" * 64)
    small = ["--model", "msr_small_x2", "--no-pretrained"]
    return {
        "upscale": ["upscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "out"), *small],
        "benchmark": ["benchmark", "--model", "bicubic", "--scale", "2", "--dataset", str(tmp_path / "empty")],
        "train": ["train", "--train-dir", str(tmp_path / "empty"), "--model", "msr_small_x2",
                  "--output-dir", str(tmp_path / "run"), "--max-steps", "1", "--device", "cpu"],
        "export": ["export", *small, "-o", str(tmp_path / "m.pt2")],
        "weights": ["weights", "msr_small_x2.t291", "--copy-to", str(tmp_path / "models")],
    }[command]


@pytest.mark.parametrize("command", list(ARGS))
def test_every_command_exits_2_on_refused_arguments_and_1_on_failed_work(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(_refused(command, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"msrnet {command}: error: ") and err.count("\n") == 1, err
    assert _main(_failing(command, tmp_path, monkeypatch)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"msrnet {command}: " in err, err
    # argparse's own refusals exit 2 too
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--no-such-option"])
    assert stop.value.code == 2
