"""Every command ends and warns in one line, from one place (`msrnet.cli.main`).

Ctrl-C is ``msrnet COMMAND: interrupted (Ctrl-C); <what was saved>`` and exit 130 (before: a
traceback in train, benchmark and weights); a warning from anywhere, a worker thread included,
is ``msrnet COMMAND: warning: ...`` on one line instead of Python's file name and source line.
"""
from __future__ import annotations

import argparse
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

    monkeypatch.setattr(cli, f"_run_{command}", interrupted)
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

    monkeypatch.setattr(cli, "_run_train", interrupted)
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

    monkeypatch.setattr(cli, f"_run_{command}", warns)
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(ARGS[command]) == 0
    assert warnings.showwarning is before  # main hands the hook back
    assert capsys.readouterr().err == (
        f"msrnet {command}: warning: skipped unreadable image td/bad.png: could not create decoder object\n"
    )
