"""JSON files from strangers: `msrnet train --config`, degradation pipelines, and the one reader.

Every JSON file msrnet takes goes through `msrnet._utils.read_json`: a regular file (no FIFO,
device or folder, under any name or link), at most 1 MiB, nested at most 32 deep (checked
without recursion), integers of at most 100 digits; a degradation pipeline then holds at most
16 stages whose resizes multiply to at most 4, and fits the memory limit at the run's batch and
patch size before anything is allocated. Each refusal is one line naming the file (and the
field where there is one). The fuzz tests run in a child process whose address space is capped
(as `tests/test_untrusted.py` does for weights files).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msrnet import cli
from msrnet._utils import MAX_JSON_DEPTH, json_depth, parse_json, read_json
from msrnet.data.degradations import (
    MAX_STAGES,
    DegradationConfig,
    Resize,
    Stage,
    check_degradation_memory,
    degradation_growth,
    load_degradation,
)

REPO = Path(__file__).resolve().parents[1]
# Four times the largest resize each stage allows: 64x per side over three stages.
CHAINED = {"bicubic_first": False, "stages": [{"resize": {"scale": [4.0, 4.0], "modes": ["bilinear"]}}] * 3}


def _one_line_error(err: str, *names: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(name in lines[0] for name in names), (names, err)
    return lines[0]


# --- the reader ----------------------------------------------------------------------------------
def test_the_reader_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "big.json").write_text("[" + "0," * (1 << 19) + "0]")
    cases = {
        "missing.json": "no such file",
        "fifo.json": "a FIFO, not a",  # must not hang
        "zero.json": "a device or socket, not a",
        "folder.json": "a folder, not a",
        "big.json": "larger than 1048576 bytes",
    }
    for name, reason in cases.items():
        with pytest.raises(ValueError, match=reason) as info:
            read_json(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name)) and "\n" not in str(info.value)


def test_depth_and_digits_are_refused_by_name_not_by_recursion_or_int() -> None:
    with pytest.raises(ValueError, match="x.json: JSON nested more than 32 levels"):
        parse_json("[" * 100_000 + "]" * 100_000, "x.json")
    with pytest.raises(ValueError, match=r"x.json: line 2: quality: an integer of 5000 digits \(at most 100\)"):
        parse_json('{"jpeg":\n {"quality": [1, ' + "9" * 5000 + "]}}", "x.json")
    # Brackets inside strings do not nest, escaped quotes do not end a string.
    assert json_depth('{"a": "[[[[\\"[[[[", "b": [[1]]}') == 3
    deepest: list = []
    for _ in range(MAX_JSON_DEPTH - 1):
        deepest = [deepest]
    assert parse_json(json.dumps(deepest), "x") == deepest  # at the limit: parsed
    assert parse_json('{"seed": -' + "9" * 100 + "}", "x") == {"seed": -int("9" * 100)}


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ a\n', max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=4), inner, max_size=3),
    max_leaves=20,
)


@given(value=JSON_VALUES)
def test_the_nesting_scan_counts_as_the_parser_nests(value: object) -> None:
    # Brackets, quotes and backslashes inside strings and keys do not fool the scan.
    assert json_depth(json.dumps(value)) == _depth(value)


# --- degradation files -------------------------------------------------------------------------
def test_degradation_files_that_are_no_file_say_so(tmp_path: Path) -> None:
    # Before: each said "unknown degradation 'x.json'".
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    (tmp_path / "dir.json").mkdir()
    for name, reason in (("missing.json", "no such file"), ("fifo.json", "a FIFO"),
                         ("zero.json", "a device"), ("dir.json", "a folder")):
        with pytest.raises(ValueError, match=reason) as info:
            load_degradation(tmp_path / name)
        assert "unknown degradation" not in str(info.value)


def test_a_deep_or_huge_number_degradation_file_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(ValueError, match="deep.json: JSON nested more than"):
        load_degradation(deep)
    digits = tmp_path / "digits.json"
    digits.write_text('{"stages": [{"jpeg": {"quality": [30, ' + "1" * 5000 + "]}}]}")
    with pytest.raises(ValueError, match=r"digits.json: line 1: quality: an integer of 5000 digits"):
        load_degradation(digits)


def test_chained_resizes_are_bounded_by_their_product(tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(CHAINED))
    with pytest.raises(ValueError, match=r"chain.json: stages: the resizes can enlarge the image 64x per side \(4 x 4 x 4\)"):
        load_degradation(path)
    # The same from Python.
    with pytest.raises(ValueError, match="at most 4"):
        DegradationConfig(stages=(Stage(resize=Resize(scale=(2.0, 3.0))),) * 2, bicubic_first=False)
    two = DegradationConfig(stages=(Stage(resize=Resize(scale=(0.5, 2.0))),) * 2, bicubic_first=False)
    assert degradation_growth(two) == 4.0
    assert degradation_growth(load_degradation("real")) == pytest.approx(1.8)


def test_the_pipelines_memory_is_checked_from_batch_and_patch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_degradation("real")
    # The defaults (batch 32, LR patch 48, x4) are far below the limit.
    assert check_degradation_memory(real, 32, 3, (192, 192), 4) < 200 << 20
    with pytest.raises(ValueError, match="MSRNET_MAX_DEGRADATION_BYTES"):
        check_degradation_memory(real, 100_000, 3, (192, 192), 4)
    monkeypatch.setenv("MSRNET_MAX_DEGRADATION_BYTES", str(1 << 20))
    with pytest.raises(ValueError, match=r"limit is 0.0 GiB"):
        check_degradation_memory("bicubic", 32, 3, (192, 192), 4)
    monkeypatch.setenv("MSRNET_MAX_DEGRADATION_BYTES", "lots")
    with pytest.raises(ValueError, match="must be an integer"):
        check_degradation_memory("bicubic", 1, 3, (8, 8), 4)


def test_degrade_checks_the_memory_before_it_allocates(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from msrnet.data.degradations import degrade

    monkeypatch.setenv("MSRNET_MAX_DEGRADATION_BYTES", str(100_000))
    with pytest.raises(ValueError, match="would hold"):
        degrade(torch.rand(4, 3, 64, 64), 4, "real")


def test_the_number_of_stages_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "many.json"
    # 60,000 JPEG stages in 840 KB took 74 s a step before.
    path.write_text(json.dumps({"stages": [{"jpeg": {}}] * 60_000}))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=rf"many.json: stages: 60000 entries, at most {MAX_STAGES}"):
        load_degradation(path)
    with pytest.raises(ValueError, match=f"at most {MAX_STAGES}"):
        DegradationConfig(stages=(Stage(),) * (MAX_STAGES + 1))


# --- msrnet train --config -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "case, reason",
    [
        ("zero", "a device or socket"),
        ("fifo", "a FIFO"),
        ("folder", "a folder"),
        ("missing", "no such file"),
        ("big", "larger than 1048576 bytes"),
        ("deep", "nested more than 32 levels"),
        ("digits", "seed: an integer of 5000 digits"),
    ],
)
def test_train_config_files_from_strangers_are_one_line_errors(
    case: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{case}.json"
    if case == "zero":
        path.symlink_to("/dev/zero")
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "folder":
        path.mkdir()
    elif case == "big":
        path.write_text(json.dumps({"train_dir": "x", "model_kwargs": {"a": "b" * (2 << 20)}}))
    elif case == "deep":
        path.write_text("[" * 100_000)
    elif case == "digits":
        path.write_text('{"train_dir": "x", "seed": ' + "7" * 5000 + "}")
    code = cli.main(["train", "--config", str(path), "--output-dir", str(tmp_path / "run")])
    assert code == 2
    _one_line_error(capsys.readouterr().err, "msrnet train: error: --config", str(path), reason)
    assert not (tmp_path / "run").exists()


def test_model_kwargs_option_is_bounded_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--train-dir", str(tmp_path), "--model-kwargs", "[" * 50_000])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "nested more than 32 levels" in err and "Traceback" not in err


def test_train_refuses_a_chained_resize_file_before_it_loads_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(CHAINED))
    code = cli.main(["train", "--train-dir", str(tmp_path / "none"), "--degradation", str(path),
                     "--output-dir", str(tmp_path / "run"), "--batch-size", "2"])
    assert code == 1
    _one_line_error(capsys.readouterr().err, str(path), "64x per side")
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_batch_the_pipeline_cannot_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A --config asking for a million patches is refused from arithmetic, not by the allocator.
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"train_dir": str(tmp_path), "batch_size": 10**6, "degradation": "real"}))
    code = cli.main(["train", "--config", str(config), "--output-dir", str(tmp_path / "run")])
    assert code == 1
    _one_line_error(capsys.readouterr().err, "degradation real", "MSRNET_MAX_DEGRADATION_BYTES")


# --- fuzz, under a memory cap --------------------------------------------------------------------
# Address space a capped child may add to what its imports took (as tests/test_untrusted.py).
BUDGET = 1 << 30

CHILD = """
import json, os, resource, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from hypothesis import HealthCheck, given, settings, strategies as st
import msrnet
from msrnet.data.degradations import load_degradation, check_degradation_memory
from msrnet.train.config import config_from_dict
from msrnet._utils import read_json

def _vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

limit = _vm_size() + int(os.environ["MSRNET_TEST_BUDGET"])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
SETTINGS = settings(max_examples=int(os.environ["MSRNET_FUZZ_EXAMPLES"]), deadline=None,
                    derandomize=True, suppress_health_check=list(HealthCheck), database=None)
number = st.one_of(st.integers(-3, 10), st.integers(-10**120, 10**120), st.floats(allow_nan=True),
                   st.booleans(), st.none(), st.text(max_size=4))
scalar = st.one_of(number, st.lists(number, max_size=3))
"""


def _run_child(body: str, tmp_path: Path, examples: int) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MSRNET_TEST_BUDGET": str(BUDGET),
           "MSRNET_FUZZ_EXAMPLES": str(examples), "OMP_NUM_THREADS": "1"}
    env.pop("CI", None)
    proc = subprocess.run([sys.executable, "-c", CHILD + textwrap.dedent(body)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


DEGRADATION_FUZZ = """
section = st.sampled_from(["blur", "resize", "noise", "jpeg"])
field = st.sampled_from(["prob", "scale", "modes", "size", "sigma", "quality", "poisson_scale", "gray_prob",
                         "anisotropic_prob", "sinc_prob", "generalized_beta"])
stage = st.dictionaries(section, st.dictionaries(field, scalar, max_size=3), max_size=3)
config = st.fixed_dictionaries({}, optional={
    "stages": st.one_of(st.lists(stage, max_size=4), st.integers(0, 100_000).map(lambda n: [{"jpeg": {}}] * n)),
    "bicubic_first": st.one_of(st.booleans(), number),
    "clean_prob": number,
    "final": st.one_of(st.none(), st.dictionaries(st.sampled_from(["sinc_prob", "jpeg", "modes"]), scalar)),
})
raw = st.one_of(
    config.map(json.dumps),
    st.integers(1, 200_000).map(lambda n: "[" * n),
    st.integers(1, 5000).map(lambda n: '{"clean_prob": ' + "9" * n + "}"),
    st.text(max_size=64),
)

@SETTINGS
@given(text=raw, batch=st.integers(1, 10**6), patch=st.integers(1, 10**4), scale=st.sampled_from([2, 4, 8]))
def check(text, batch, patch, scale):
    Path("d.json").write_text(text)
    assert Path("d.json").stat().st_size < 1 << 20
    try:
        config = load_degradation("d.json")
        check_degradation_memory(config, batch, 3, (patch * scale, patch * scale), scale)
    except ValueError as e:
        assert "\\n" not in str(e) and str(e)
        return
    # What was accepted runs on a small batch, within the cap.
    small = torch.rand(1, 3, 8 * scale, 8 * scale)
    msrnet.data.degradations.degrade(small, scale, config, torch.Generator().manual_seed(0))

check()
print("ok")
"""

CONFIG_FUZZ = """
names = ["train_dir", "batch_size", "patch_size", "max_steps", "model_kwargs", "degradation", "seed", "lr",
         "betas", "level_weights", "loss", "device", "compile_mode", "unknown"]
values = st.one_of(scalar, st.dictionaries(st.text(max_size=3), scalar, max_size=2))
config = st.dictionaries(st.sampled_from(names), values, max_size=5)
raw = st.one_of(
    config.map(lambda c: json.dumps({"train_dir": "t", **c})),
    st.integers(1, 200_000).map(lambda n: '{"model_kwargs": ' + "[" * n),
    st.integers(1, 5000).map(lambda n: '{"train_dir": "t", "max_steps": ' + "9" * n + "}"),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)

@SETTINGS
@given(text=raw)
def check(text):
    Path("c.json").write_text(text)
    try:
        values = read_json("c.json")
        if not isinstance(values, dict):
            return
        config_from_dict(values, "c.json")
    except ValueError as e:
        assert "\\n" not in str(e) and str(e).startswith("c.json")

check()
print("ok")
"""


def test_fuzz_degradation_files(tmp_path: Path) -> None:
    assert _run_child(DEGRADATION_FUZZ, tmp_path, 15).strip() == "ok"


def test_fuzz_train_config_files(tmp_path: Path) -> None:
    assert _run_child(CONFIG_FUZZ, tmp_path, 30).strip() == "ok"


@pytest.mark.slow
def test_fuzz_degradation_files_many(tmp_path: Path) -> None:
    assert _run_child(DEGRADATION_FUZZ, tmp_path, 300).strip() == "ok"


@pytest.mark.slow
def test_fuzz_train_config_files_many(tmp_path: Path) -> None:
    assert _run_child(CONFIG_FUZZ, tmp_path, 500).strip() == "ok"


def test_the_reliability_page_states_the_limits_in_force() -> None:
    from msrnet import _utils
    from msrnet.data import degradations

    page = (REPO / "docs" / "reliability.md").read_text()
    stated = {
        "MAX_JSON_BYTES": (_utils.MAX_JSON_BYTES, "1 MiB", 1 << 20),
        "MAX_JSON_DEPTH": (_utils.MAX_JSON_DEPTH, "32", 32),
        "MAX_JSON_INT_DIGITS": (_utils.MAX_JSON_INT_DIGITS, "100", 100),
        "MAX_STAGES": (degradations.MAX_STAGES, "16", 16),
        "MAX_GROWTH": (degradations.MAX_GROWTH, "4", 4),
        "MAX_DEGRADATION_BYTES": (degradations.MAX_DEGRADATION_BYTES, "8 GiB", 8 << 30),
    }
    for name, (value, text, meant) in stated.items():
        assert f"| `{name}` | {text} |" in page and value == meant, name
