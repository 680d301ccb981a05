"""scripts/make_figures.py: the cost figure places every measured msrnet model (docs extra)."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from _extras import needs_extra  # tests/_extras.py

needs_extra("matplotlib")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_figures.py"


def _rows(model: str, set5: float, set14: float) -> list[dict[str, object]]:
    return [{"model": model, "scale": 4, "dataset": "Set5", "psnr": set5},
            {"model": model, "scale": 4, "dataset": "Set14", "psnr": set14},
            {"model": model, "scale": 2, "dataset": "Set5", "psnr": 99.0}]


def test_cost_figure_takes_several_results_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    full, small = tmp_path / "full.json", tmp_path / "small.json"
    full.write_text(json.dumps(_rows("msr_x4.t291", 31.8, 28.3)))
    # Far below the default axes: the axes grow to show it.
    small.write_text(json.dumps(_rows("msr_small_x4", 30.5, 27.5)))
    argv = ["make_figures.py", "--only", "cost", "--out-dir", str(tmp_path), "--results", str(full), str(small)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_.value.code == 0
    assert (tmp_path / "cost.png").stat().st_size > 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["psnr"] == {"msr_x4": {"Set5": 31.8, "Set14": 28.3}, "msr_small_x4": {"Set5": 30.5, "Set14": 27.5}}
    # Cost is counted, not assumed: the small model costs far less than msr_x4.
    assert report["gmacs_1280x720"]["msr_small_x4"] < report["gmacs_1280x720"]["msr_x4"] / 10
