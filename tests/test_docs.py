"""The documentation site: its tutorial code runs, it builds strictly, it opens cleanly offline.

- Every ``docs/snippets/*.py`` and ``*.sh`` is executed in a temporary directory, so a tutorial
  cannot rot; one that needs an optional extra skips without it. Pages carry a copy of the code
  they show (``<!-- snippet: file.py:section -->`` before a fenced block, so that they read
  well on GitHub too), and each copy must equal its section of the executed file.
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

from msrnet._utils import OPTIONAL_MODULES  # snippets that need an optional extra skip without it

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
SNIPPETS = sorted(p for p in (DOCS / "snippets").iterdir() if p.suffix in (".py", ".sh"))
CHROMIUM = Path("/usr/bin/chromium")
# How long a reply from Chromium may take before it counts as hung (a busy machine is slow, not
# broken).
HANG_GUARD_S = 600.0
# Pages checked in the browser: the home page and one tutorial (paths under the site root).
BROWSER_PAGES = ("", "tutorials/custom-network/")


# --- tutorial code ----------------------------------------------------------------------------
# Snippets that export or train full-size models: run by `pytest -m slow`.
SLOW_SNIPPETS = {"export.py"}


@pytest.mark.parametrize(
    "snippet",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_SNIPPETS else p for p in SNIPPETS],
    ids=lambda p: p.name,
)
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
        pytest.skip(f'{snippet.name} needs the {extra} extra: pip install -e ".[{extra}]"')


_SECTION_MARK = re.compile(r"^\s*(?:#|//)?\s*--8<-- \[(start|end):([\w-]+)\]\s*$")
# A page's copy of snippet code: the marker comment, then a fenced block (both may be indented).
_COPY = re.compile(r"^([ \t]*)<!-- snippet: (\S+) -->\n\1```\w*\n(.*?)\n\1```$", re.MULTILINE | re.DOTALL)


def snippet_section(name: str) -> str:
    """The code of ``'file.py:section'`` (or a whole ``'file.py'``), without section markers."""
    file, _, section = name.partition(":")
    lines, inside = [], not section
    for line in (DOCS / "snippets" / file).read_text(encoding="utf-8").splitlines():
        mark = _SECTION_MARK.match(line)
        if mark and mark.group(2) == section:
            inside = mark.group(1) == "start"
        elif not mark and inside:
            lines.append(line)
    assert lines, f"{name}: no such snippet section"
    return "\n".join(lines)


def _page_copies() -> list[tuple[Path, str, str]]:
    """(page, snippet name, the page's code) for every snippet copy in the docs."""
    copies = []
    for page in sorted(DOCS.rglob("*.md")):
        for indent, name, code in _COPY.findall(page.read_text(encoding="utf-8")):
            lines = [line.removeprefix(indent) for line in code.split("\n")]
            copies.append((page, name, "\n".join(lines)))
    return copies


def test_pages_carry_their_code_inline() -> None:
    # Pages are read on GitHub and in editors too, where a `--8<--` include shows as a raw line:
    # the code is written out in the page, and the next test keeps it equal to the executed file.
    raw = [str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if re.search(r'^\s*--8<--\s+"', p.read_text(), re.M)]
    assert not raw, f"pages with --8<-- includes (write the code out, with a snippet marker): {raw}"


def test_page_code_is_the_executed_snippet() -> None:
    copies = _page_copies()
    assert copies, "no snippet copies found"
    for page, name, code in copies:
        assert code == snippet_section(name), f"{page.relative_to(DOCS)}: the copy of {name} differs from the snippet"


def test_every_snippet_is_included_by_a_page() -> None:
    included = {name.partition(":")[0] for _, name, _ in _page_copies()}
    assert SNIPPETS, "no snippets found"
    orphans = [p.name for p in SNIPPETS if p.name not in included]
    assert not orphans, f"snippets no page includes (dead tutorial code): {orphans}"


# --- facts the pages state ----------------------------------------------------------------------
_EXTRA_NAMES = re.compile(r'(?:msrnet|\.)\[([\w,-]+)\]')


def _pyproject_extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_every_extra_named_in_the_docs_exists() -> None:
    extras = _pyproject_extras()
    files = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")]
    named = {
        (str(f.relative_to(REPO_ROOT)), extra)
        for f in files
        for group in _EXTRA_NAMES.findall(f.read_text(encoding="utf-8"))
        for extra in group.split(",")
    }
    assert {extra for _, extra in named} >= {"dev", "onnx"}, "the pattern no longer finds the extras"
    unknown = sorted((f, extra) for f, extra in named if extra not in extras)
    assert not unknown, f"extras that pyproject.toml does not define: {unknown}"


def test_installation_table_lists_every_extra_and_what_it_installs() -> None:
    extras = _pyproject_extras()
    text = (DOCS / "installation.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([\w-]+)` \| ([^|]+) \|", text, re.MULTILINE))
    assert set(rows) == set(extras), f"Extras table: {sorted(rows)}, pyproject.toml: {sorted(extras)}"
    for extra, requirements in extras.items():
        for requirement in requirements:
            package = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
            assert re.search(rf"\b{re.escape(package)}\b", rows[extra]), f"`{extra}` row does not name {package}"


def test_documented_list_models_output_is_the_real_one() -> None:
    import msrnet

    shown = []
    for f in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = f.read_text(encoding="utf-8")
        # print(msrnet.list_models()) or print(msrnet.list_models('FILTER')), then its output
        shown += re.findall(r"msrnet\.list_models\(('[^']*')?\)\)\"?[^\n]*\n# (.+)", text)
        for version in re.findall(r"msrnet --version +# msrnet (\S+)", text):
            assert version == msrnet.__version__, f"{f.name} shows version {version}"
    assert shown, "no documented list_models() output found"
    for pattern, line in shown:
        assert line == str(msrnet.list_models(*([pattern.strip("'")] if pattern else [])))


# The widest code line the site shows without a scrollbar: about 85 characters at 1280 px with
# both sidebars (mkdocs-material's text column and its code font).
CODE_COLUMNS = 84


def test_code_blocks_fit_the_column() -> None:
    # Long commands are wrapped with `\` (and long comments moved above their line), so that a
    # reader sees, and copies, all of a command.
    too_long = []
    for f in sorted(DOCS.rglob("*.md")):
        inside = False
        for number, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                inside = not inside
            elif inside and len(line) > CODE_COLUMNS and not line.lstrip().startswith("{"):  # JSON log lines
                too_long.append(f"{f.relative_to(DOCS)}:{number} ({len(line)})")
    assert not too_long, f"code lines longer than {CODE_COLUMNS} characters: {too_long}"


def test_no_page_points_at_a_sibling_data_folder() -> None:
    # Users have no ../shared/data: commands say $DATA, and a page that does links the page that
    # says where the data comes from.
    for f in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = f.read_text(encoding="utf-8")
        assert "shared/data" not in text, f"{f.name} names ../shared/data: use $DATA"
        if "$DATA" in text and f.name != "datasets.md":
            assert "datasets.md" in text, f"{f.name} uses $DATA without linking datasets.md"


def _published_bicubic() -> dict[tuple[str, int], float]:
    """(set, scale) -> published bicubic Y-PSNR, from the table of docs/datasets.md."""
    text = (DOCS / "datasets.md").read_text(encoding="utf-8")
    header = re.search(r"^\| bicubic Y-PSNR \(dB\), published \|(.+)\|$", text, re.MULTILINE)
    assert header, "no published bicubic table in datasets.md"
    scales = [int(c.strip().lstrip("x")) for c in header.group(1).split("|")]
    published = {}
    table = text[header.end():].split("\n\n", 1)[0]
    for name, cells in re.findall(r"^\| (Set5|Set14|B100|Urban100|Manga109) \|(.+)\|$", table, re.MULTILINE):
        for scale, cell in zip(scales, cells.split("|")):
            if cell.strip() not in ("–", "-"):
                published[name, scale] = float(cell)
    return published


def _measured_bicubic() -> dict[tuple[str, int], dict[str, Any]]:
    rows = json.loads((DOCS / "runs" / "benchmark-bicubic.json").read_text())
    return {(r["dataset"], r["scale"]): r for r in rows}


def test_bicubic_tables_agree_with_the_run_and_the_published_figures() -> None:
    measured, published = _measured_bicubic(), _published_bicubic()
    checked = 0
    for f in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]:
        # The bicubic tables: those with published figures beside the measured ones.
        blocks = re.findall(r"(?:^\|.*\n)+", f.read_text(encoding="utf-8"), re.MULTILINE)
        text = "\n".join(b for b in blocks if "published" in b and "bicubic" not in b.split("\n")[0])
        # | Set14 | 30.32 / 0.8699 | 26.09 / 0.7048 | 23.18 / 0.5666 |   (x2, x4, x8)
        for name, cells in re.findall(r"^\| (Set5|Set14)(?:, measured)? \|((?: [\d.]+ / [\d.]+ \|){3})$", text, re.M):
            for scale, cell in zip((2, 4, 8), cells.strip(" |").split(" | ")):
                psnr, ssim = cell.split(" / ")
                row = measured[name, scale]
                assert (psnr, ssim) == (f"{row['psnr']:.2f}", f"{row['ssim']:.4f}"), f"{f.name}: {name} x{scale}"
                checked += 1
        # | Set14, published (MATLAB) | 30.24 | 26.00 | 23.10 |
        for name, cells in re.findall(r"^\| (Set5|Set14), published \(MATLAB\) \|((?: [\d.]+ \|){3})$", text, re.M):
            for scale, cell in zip((2, 4, 8), cells.strip(" |").split(" | ")):
                assert float(cell) == published[name, scale], f"{f.name}: published {name} x{scale}"
                checked += 1
        # | Set14 | x2 | 30.32 | 30.24 | 0.8699 |
        for name, scale, psnr, pub, ssim in re.findall(r"^\| (Set5|Set14) \| x(\d) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.M):
            row = measured[name, int(scale)]
            assert (psnr, ssim) == (f"{row['psnr']:.2f}", f"{row['ssim']:.4f}"), f"{f.name}: {name} x{scale}"
            assert float(pub) == published[name, int(scale)], f"{f.name}: published {name} x{scale}"
            checked += 1
    assert checked >= 30, f"only {checked} table cells found: have the tables changed shape?"


def test_set14_offset_is_written_as_measured() -> None:
    # How far this copy of Set14 scores above the published bicubic figures: one measurement
    # (docs/runs/benchmark-bicubic.json), written the same way wherever the docs state it.
    measured, published = _measured_bicubic(), _published_bicubic()
    offsets = {s: round(measured["Set14", s]["psnr"] - published["Set14", s], 2) for s in (2, 4, 8)}
    claims = 0
    claim = re.compile(r"(\d\.\d\d)(?: to (\d\.\d\d))? dB (?:above|higher)([^.]*)", re.DOTALL)
    for f in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = f.read_text(encoding="utf-8")
        for m in claim.finditer(text):
            if "Set14" not in text[max(0, m.start() - 120):m.start()]:
                continue
            claims += 1
            low, high, rest = m.groups()
            if high:
                assert (float(low), float(high)) == (min(offsets.values()), max(offsets.values())), f"{f.name}: {m[0]!r}"
            else:
                scale = re.search(r"at x(\d)", rest)
                assert scale, f"{f.name}: a single Set14 offset must name its scale: {m[0]!r}"
                assert float(low) == offsets[int(scale.group(1))], f"{f.name}: {m[0]!r}, measured {offsets}"
    assert claims >= 6, f"only {claims} Set14 offset claims found"


# --- the build --------------------------------------------------------------------------------
def _has_docs_extra() -> bool:
    return all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers.python"))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _has_docs_extra():
        pytest.skip('needs the docs extra: pip install -e ".[docs]"')
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
