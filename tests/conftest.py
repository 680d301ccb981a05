"""Shared pytest fixtures."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Training runs default to torch.compile on a CPU (`TrainConfig.compile`); a test of something
# else must not pay a compile (tens of seconds) for it. torch's own switch, inherited by the
# commands tests run in subprocesses; tests of compiling take the `real_compile` fixture.
os.environ["TORCH_COMPILE_DISABLE"] = "1"

# Every test, and every command a test starts, sees a CPU without native bf16, whatever this
# machine has: `dtype="auto"` and the trainer's `amp` are then fp32 on the CPU, so a result
# computed in the test process and one from a subprocess compare exactly on every machine.
# oneDNN's own switch (its check is what `msrnet.device.cpu_has_native_bf16` asks first); the
# bf16 paths are tested by saying so (tests/test_device.py's `native_bf16`).
os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"

# A test run started in the background by a shell without job control (`cmd &`, nohup, some CI
# runners) inherits SIGINT ignored, and every msrnet command the tests start would inherit it
# too: Python then installs no KeyboardInterrupt, and the Ctrl-C tests wait on a command that
# never hears them. A handler (unlike SIG_IGN) is reset to the default by exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import torch  # noqa: E402 -- after the switch, which torch._dynamo reads on import
from hypothesis import HealthCheck, settings

# Machine load must not fail a test: no example has a deadline, and slow data generation is not
# a failed health check (both are wall-clock measurements). Tests may narrow this, not time it.
settings.register_profile("msrnet", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI replays the same examples on every run (a red CI means a change broke something); local
# runs keep drawing new examples, which is how bugs get found.
settings.register_profile("ci", parent=settings.get_profile("msrnet"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "msrnet")

REPO_ROOT = Path(__file__).resolve().parents[1]
# torch's intra-op threads when the session started, restored for every test.
_THREADS = torch.get_num_threads()
# The standard sets live beside the repository (../shared/data), never inside it.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder holding Set5/, Set14/ and train291/; skips the test when it is absent."""
    if not (SHARED_DATA / "Set5").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def use_tiny_models(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``use_tiny_models(**widths)``: registered names build narrow networks in every command
    (they build models with `msrnet.models.build_model`), so command-line tests stay fast;
    keywords a caller passes still win, and weights files load as they are."""
    import msrnet.models

    build_model = msrnet.models.build_model

    def use(**tiny: Any) -> None:
        def build(
            model: str | None = None, weights: str | Path | None = None, *, pretrained: bool = False, **kwargs: Any
        ) -> torch.nn.Module:
            if weights is None:
                kwargs = {**tiny, **kwargs}
            return build_model(model, weights, pretrained=pretrained, **kwargs)

        monkeypatch.setattr(msrnet.models, "build_model", build)

    return use


@pytest.fixture
def real_compile(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """torch.compile compiles in this test (and in the commands it runs)."""
    import torch._dynamo.config

    monkeypatch.delenv("TORCH_COMPILE_DISABLE")
    with torch._dynamo.config.patch(disable=False):
        yield


@pytest.fixture(autouse=True)
def _seed_and_threads() -> Iterator[None]:
    """Every test starts from torch seed 0 and with the intra-op thread count the session
    started with (``OMP_NUM_THREADS`` or torch's default), whatever a test before it set."""
    torch.manual_seed(0)
    torch.set_num_threads(_THREADS)
    yield
    torch.set_num_threads(_THREADS)


@pytest.fixture(autouse=True)
def _cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The in-process side of ``ONEDNN_MAX_CPU_ISA`` above, also where torch does not expose
    oneDNN's check (`msrnet.device` would read /proc/cpuinfo): ``dtype="auto"`` is fp32 on the
    CPU, so the tests that compare outputs exactly (16-bit round trips, tiles against one pass)
    mean the same thing on every machine. The detection's own tests patch the layers below."""
    import msrnet.device

    detect = msrnet.device.cpu_has_native_bf16  # a test may replace it; the cache is this one's
    monkeypatch.setattr(msrnet.device, "_onednn_bf16", lambda: False)
    detect.cache_clear()
    yield
    detect.cache_clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` skip without a CUDA device (``pytest -m cuda`` selects them)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


# .ci/run's first pass (the dev extra only) records the tests it skipped for a missing extra, one
# id a line, in the file MSRNET_SKIPPED_FOR_EXTRAS names; its second pass, with every extra
# installed, runs them. Such skips say "needs the NAME extra" (tests/_extras.py).
_EXTRA_SKIP = re.compile(r"needs the [\w-]+ extra")


def _record_extra_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    path = os.environ.get("MSRNET_SKIPPED_FOR_EXTRAS")
    if path and report.skipped and _EXTRA_SKIP.search(str(report.longrepr)):
        with open(path, "a", encoding="utf-8") as f:
            f.write(report.nodeid + "\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_extra_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_extra_skip(report)  # a whole file skipped at import (needs_extra at module level)
