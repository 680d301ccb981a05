"""DIV2K layout and the resumable, checksum-verified downloader, against a loopback HTTP server."""
from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from msrnet.data import div2k
from msrnet.data.div2k import DIV2K, download_url, extract_zip


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; can cut a body short once."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        range_header = self.headers.get("Range")
        if range_header and srv.honour_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if srv.cuts:
            # Announce the full length, send part of it, hang up: an interrupted transfer.
            payload = payload[: srv.cuts.pop(0)]
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    requests: list[tuple[str, str | None]]
    cuts: list[int]
    honour_range: bool

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cuts, srv.honour_range = {}, [], [], True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _png(size: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(0).bytes(300_000)


def test_download_verifies_and_renames(server: _Server, tmp_path: Path, payload: bytes) -> None:
    server.files["blob.bin"] = payload
    out = download_url(
        server.url + "blob.bin", tmp_path / "blob.bin", _sha(payload), progress=False
    )
    assert out.read_bytes() == payload
    assert not (tmp_path / "blob.bin.part").exists()
    # A verified file is not fetched again.
    download_url(server.url + "blob.bin", out, _sha(payload), progress=False)
    assert len(server.requests) == 1


def test_download_bad_checksum_deletes_part(
    server: _Server, tmp_path: Path, payload: bytes
) -> None:
    server.files["blob.bin"] = payload
    with pytest.raises(RuntimeError, match="checksum mismatch.*deleted"):
        download_url(server.url + "blob.bin", tmp_path / "blob.bin", _sha(b"other"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_with_range(
    server: _Server, tmp_path: Path, payload: bytes
) -> None:
    server.files["blob.bin"] = payload
    server.cuts = [100_000]
    out = download_url(
        server.url + "blob.bin", tmp_path / "blob.bin", _sha(payload), retry_wait=0, progress=False
    )
    assert out.read_bytes() == payload
    assert server.requests == [("/blob.bin", None), ("/blob.bin", "bytes=100000-")]


def test_part_file_kept_when_retries_run_out(
    server: _Server, tmp_path: Path, payload: bytes
) -> None:
    server.files["blob.bin"] = payload
    server.cuts = [70_000, 50_000]
    dest = tmp_path / "blob.bin"
    with pytest.raises(RuntimeError, match="120000 bytes received are kept.*resumes"):
        download_url(
            server.url + "blob.bin", dest, _sha(payload), retries=1, retry_wait=0, progress=False
        )
    assert (tmp_path / "blob.bin.part").stat().st_size == 120_000
    assert not dest.exists()
    download_url(server.url + "blob.bin", dest, _sha(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests[-1] == ("/blob.bin", "bytes=120000-")


def test_server_ignoring_range_restarts_cleanly(
    server: _Server, tmp_path: Path, payload: bytes
) -> None:
    server.files["blob.bin"] = payload
    server.honour_range = False
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes from another file")
    out = download_url(
        server.url + "blob.bin", tmp_path / "blob.bin", _sha(payload), progress=False
    )
    assert out.read_bytes() == payload


def test_http_error_is_clear(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="HTTP 404"):
        download_url(server.url + "nope.zip", tmp_path / "nope.zip", progress=False)


def test_extract_zip_refuses_archive_without_folder(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"elsewhere/0001.png": _png(4, 0)}))
    with pytest.raises(RuntimeError, match="does not contain the folder DIV2K_valid_HR/"):
        extract_zip(archive, tmp_path, "DIV2K_valid_HR", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


@pytest.fixture
def fake_div2k(server: _Server, monkeypatch: pytest.MonkeyPatch) -> _Server:
    """Tiny valid-split archives (2 images, x2) served in place of the official ones."""
    hr = _zip({f"DIV2K_valid_HR/{i}.png": _png(16, int(i)) for i in ("0801", "0802")})
    lr = _zip({f"DIV2K_valid_LR_bicubic/X2/{i}x2.png": _png(8, int(i)) for i in ("0801", "0802")})
    for name, data in (("DIV2K_valid_HR.zip", hr), ("DIV2K_valid_LR_bicubic_X2.zip", lr)):
        server.files[name] = data
        monkeypatch.setitem(div2k._ARCHIVES, name, (len(data), _sha(data)))
    return server


def test_div2k_downloads_extracts_and_loads(fake_div2k: _Server, tmp_path: Path) -> None:
    ds = DIV2K(tmp_path, "valid", 2, download=True, base_url=fake_div2k.url, progress=False)
    assert len(ds) == 2
    item = ds[1]
    assert item["name"] == "0802"
    assert item["hr"].shape == (3, 16, 16) and item["lr"].shape == (3, 8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "DIV2K_valid_HR",
        "DIV2K_valid_LR_bicubic",
    ]
    requests = len(fake_div2k.requests)
    # Present folders are used as they are, with or without download.
    assert len(DIV2K(tmp_path, "valid", 2, download=True, base_url=fake_div2k.url)) == 2
    assert len(DIV2K(tmp_path, "valid", 2)) == 2
    assert len(fake_div2k.requests) == requests


def test_div2k_broken_archive_leaves_nothing(fake_div2k: _Server, tmp_path: Path) -> None:
    fake_div2k.files["DIV2K_valid_HR.zip"] = b"PK\x03\x04 not the archive that was published"
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        DIV2K(tmp_path, "valid", 2, download=True, base_url=fake_div2k.url, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_div2k_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"missing DIV2K_train_HR/, DIV2K_train_LR_bicubic/X4/.*download=True",
    ):
        DIV2K(tmp_path, "train", 4)
    with pytest.raises(FileNotFoundError, match=r"missing DIV2K_valid_LR_x8/"):
        (tmp_path / "DIV2K_valid_HR").mkdir()
        (tmp_path / "DIV2K_valid_HR" / "0801.png").write_bytes(_png(16, 0))
        DIV2K(tmp_path, "valid", 8)
    with pytest.raises(ValueError, match="scales"):
        DIV2K(tmp_path, "valid", 5)
