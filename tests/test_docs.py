"""The documentation site: its tutorial code runs, it builds strictly, it opens cleanly offline.

- Every ``docs/snippets/*.py`` and ``*.sh`` (the code the pages include with ``--8<--``) is
  executed in a temporary directory, so a tutorial cannot rot; one that needs an optional
  extra skips without it.
- ``mkdocs build --strict`` passes (skips without the ``docs`` extra).
- With Chromium at /usr/bin/chromium, the built site is served on 127.0.0.1 and the home page
  and a tutorial are loaded headless over the DevTools protocol (``--remote-debugging-pipe``):
  no console error, no uncaught exception, no request leaving 127.0.0.1, and a full-page
  screenshot of each (kept in ``$MSRNET_SCREENSHOT_DIR`` when that is set).
"""
from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import importlib.util
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
SNIPPETS = sorted(p for p in (DOCS / "snippets").iterdir() if p.suffix in (".py", ".sh"))
# Snippets that need an optional extra skip cleanly without it.
OPTIONAL_MODULES = {
    "onnx": "onnx", "onnxruntime": "onnx", "onnxscript": "onnx", "spandrel": "spandrel", "av": "video"
}
CHROMIUM = Path("/usr/bin/chromium")
# How long a reply from Chromium may take before it counts as hung (a busy machine is slow, not
# broken).
HANG_GUARD_S = 600.0
# Pages checked in the browser: the home page and one tutorial (paths under the site root).
BROWSER_PAGES = ("", "tutorials/custom-network/")


# --- tutorial code ----------------------------------------------------------------------------
@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda p: p.name)
def test_snippet_runs(snippet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if snippet.suffix == ".sh":
        # The shell snippets call `msrnet` and `python`: those of this interpreter's environment.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", str(snippet)],
            capture_output=True, text=True, env={**os.environ, "PATH": path}, timeout=600,
        )
        assert proc.returncode == 0, f"{snippet.name} failed:\n{proc.stdout}\n{proc.stderr}"
        return
    try:
        runpy.run_path(str(snippet), run_name="__main__")
    except ModuleNotFoundError as e:
        extra = OPTIONAL_MODULES.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        pytest.skip(f'{snippet.name} needs the {extra} extra (pip install -e ".[{extra}]")')


def test_every_snippet_is_included_by_a_page() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    included = set(re.findall(r'--8<--\s+"([^":]+)', pages))
    assert SNIPPETS, "no snippets found"
    orphans = [p.name for p in SNIPPETS if p.name not in included]
    assert not orphans, f"snippets no page includes (dead tutorial code): {orphans}"


# --- the build --------------------------------------------------------------------------------
def _has_docs_extra() -> bool:
    return all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers.python"))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _has_docs_extra():
        pytest.skip('the docs extra is not installed (pip install -e ".[docs]")')
    site = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return site


def test_mkdocs_build_strict(built_site: Path) -> None:
    assert (built_site / "index.html").is_file()
    assert (built_site / "tutorials" / "custom-network" / "index.html").is_file()


def test_site_references_nothing_external(built_site: Path) -> None:
    # Offline readers get console errors from any external font, script or stylesheet.
    pattern = re.compile(r'<(?:link|script|img)\b[^>]*\b(?:href|src)="(https?:)?//', re.IGNORECASE)
    offenders = [
        str(page.relative_to(built_site))
        for page in built_site.rglob("*.html")
        if pattern.search(page.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"pages loading external resources: {offenders}"


# --- the browser ------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class DevTools:
    """A minimal Chrome DevTools protocol client over ``--remote-debugging-pipe``.

    Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4.
    """

    def __init__(self, profile_dir: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child: the pipe ends become fds 3 and 4
            high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                f"--user-data-dir={profile_dir}", "--remote-debugging-pipe", "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            pass_fds=(3, 4),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from Chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited (status {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float = HANG_GUARD_S, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = HANG_GUARD_S) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read_message(deadline))


def _problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and requests that leave 127.0.0.1."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('text')} {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            host = urlsplit(params["request"]["url"]).hostname
            if host not in (None, "127.0.0.1"):
                found.append(f"external request: {params['request']['url']}")
    return found


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium")
@pytest.mark.parametrize("page", BROWSER_PAGES, ids=lambda p: p or "home")
def test_page_opens_without_console_errors(site_url: str, page: str, tmp_path: Path) -> None:
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session)
        browser.send(
            "Emulation.setDeviceMetricsOverride", session,
            width=1280, height=900, deviceScaleFactor=1, mobile=False,
        )
        browser.send("Page.navigate", session, url=site_url + page)
        browser.wait_for("Page.loadEventFired")
        # Late work (the search index worker, deferred scripts) gets a moment to fail too.
        time.sleep(1.5)
        content = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = browser.send(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": 1280, "height": min(content["height"], 6000), "scale": 1},
        )["data"]
        problems = _problems(browser.events)
    finally:
        browser.close()

    png = tmp_path / f"{page.strip('/').replace('/', '_') or 'home'}.png"
    png.write_bytes(base64.b64decode(shot))
    if keep := os.environ.get("MSRNET_SCREENSHOT_DIR"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    assert png.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    assert not problems, "\n".join(problems)
