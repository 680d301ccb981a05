"""DIV2K (Agustsson & Timofte, NTIRE 2017) in its official layout, with a checked, resumable
download.

After download (or unzipping the official archives by hand) ``root`` holds::

    root/DIV2K_train_HR/0001.png ... 0800.png
    root/DIV2K_valid_HR/0801.png ... 0900.png
    root/DIV2K_{split}_LR_bicubic/X{2,3,4}/0001x4.png ...   (MATLAB bicubic LR)
    root/DIV2K_{split}_LR_x8/0001x8.png ...                 (bicubic x8, NTIRE 2018 track 1)

The x8 archive unpacks to ``DIV2K_{split}_LR_x8`` rather than ``LR_bicubic/X8``; it is used
as the official archive lays it out.
"""
from __future__ import annotations

import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from msrnet._utils import sha256sum
from msrnet.data.benchmark import PairedDataset
from msrnet.data.io import list_images

__all__ = ["DIV2K", "DIV2K_URL", "download_url", "extract_zip"]

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"

# Archive name -> (size in bytes, sha256) of the official archives, as recorded by
# tensorflow/datasets in tensorflow_datasets/url_checksums/div2k.txt.
# fmt: off
_ARCHIVES: dict[str, tuple[int, str]] = {
    "DIV2K_train_HR.zip": (3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
    "DIV2K_valid_HR.zip": (448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
    "DIV2K_train_LR_bicubic_X2.zip": (925390592, "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850"),
    "DIV2K_train_LR_bicubic_X3.zip": (427847282, "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a"),
    "DIV2K_train_LR_bicubic_X4.zip": (246914039, "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a"),
    "DIV2K_train_LR_x8.zip": (65753171, "706fa23164fa0756a3accb78e69b937ea47f882b47e13506895deefd623a35c2"),
    "DIV2K_valid_LR_bicubic_X2.zip": (117763600, "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57"),
    "DIV2K_valid_LR_bicubic_X3.zip": (54513392, "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3"),
    "DIV2K_valid_LR_bicubic_X4.zip": (31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553"),
    "DIV2K_valid_LR_x8.zip": (8428103, "3432f23da7c6887acc5e2cde9669427a7710b3b256c58912dddc19e3eda5bc69"),
}
# fmt: on

_SPLITS = ("train", "valid")
_SCALES = (2, 3, 4, 8)


class _IncompleteTransfer(ConnectionError):
    """The server closed the connection before the whole body arrived."""


def _fetch_to_part(url: str, part: Path, timeout: float, chunk_size: int, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range from its current size)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "msrnet"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Nothing left past `offset`: the part is already whole; the checksum decides.
            return
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        if offset and not (response.status == 206 and content_range.startswith(f"bytes {offset}-")):
            offset = 0  # the server ignored the Range header and sends everything again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, "ab" if offset else "wb") as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                file=sys.stderr,
                leave=False,
            ) as bar,
        ):
            while chunk := response.read(chunk_size):
                f.write(chunk)
                bar.update(len(chunk))
    # http.client's read(n) returns b"" when the peer closes early instead of raising.
    received = part.stat().st_size
    if total is not None and received < total:
        raise _IncompleteTransfer(f"connection closed after {received} of {total} bytes")


def download_url(
    url: str,
    path: str | Path,
    sha256: str | None = None,
    *,
    retries: int = 5,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``path``, resuming interrupted transfers, and check its sha256.

    Bytes go to ``path + '.part'`` first. A dropped connection is retried up to ``retries``
    times, each retry asking only for the missing bytes (HTTP ``Range``); if every retry
    fails, the ``.part`` file is kept and the next call resumes from it. The finished file
    is renamed to ``path`` only after its sha256 matches; on a mismatch the ``.part`` file is
    deleted (resuming a corrupt file can never fix it) and a ``RuntimeError`` is raised.

    Args:
        url: http(s) URL of the file.
        path: destination file. An existing file with the right checksum is not fetched again.
        sha256: expected hex digest; ``None`` skips the check.
        retries: further attempts after a dropped or failed connection.
        retry_wait: seconds before the first retry, doubled on each further one.
        timeout: socket timeout in seconds.
        chunk_size: bytes read per call.
        progress: show a tqdm bar on stderr.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    if path.is_file() and (sha256 is None or sha256sum(path) == sha256):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_to_part(url, part, timeout, chunk_size, progress)
            break
        except urllib.error.HTTPError as err:
            if err.code < 500:  # 404, 403, ...: retrying cannot help
                raise RuntimeError(
                    f"download of {url} failed: HTTP {err.code} {err.reason}"
                ) from err
            failure: Exception = err
        except (OSError, http.client.HTTPException) as err:  # refused, reset, timeout, cut short
            failure = err
        if attempt == retries:
            raise RuntimeError(
                f"download of {url} failed after {retries + 1} attempts ({failure}); "
                f"the {part.stat().st_size if part.exists() else 0} bytes received are kept in "
                f"{part} and the next call resumes from there"
            ) from failure
        time.sleep(retry_wait * 2**attempt)
    if sha256 is not None:
        actual = sha256sum(part)
        if actual != sha256:
            part.unlink()
            raise RuntimeError(
                f"checksum mismatch for {url}: sha256 {actual}, expected {sha256}; the corrupt "
                f"download was deleted, run again to fetch it afresh"
            )
    os.replace(part, path)
    return path


def extract_zip(archive: str | Path, root: str | Path, folder: str, progress: bool = True) -> Path:
    """Unpack ``folder`` (a path inside the archive) from a zip into ``root``, atomically.

    The archive is unpacked into a temporary folder under ``root`` and ``folder`` is moved
    into place with one rename, so an interrupted extraction never leaves a half-filled
    ``root/folder`` that would later pass for a complete one. Member names are sanitised by
    ``zipfile`` (no absolute paths, no ``..``).

    Returns:
        ``root / folder``.

    Raises:
        RuntimeError: the archive holds no ``folder``.
    """
    archive, root = Path(archive), Path(root)
    target = root / folder
    staging = root / f".{Path(archive).name}.extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in tqdm(
                zf.infolist(),
                desc=f"extracting {archive.name}",
                unit="file",
                disable=not progress,
                file=sys.stderr,
                leave=False,
            ):
                zf.extract(member, staging)
        if not (staging / folder).is_dir():
            raise RuntimeError(f"{archive} does not contain the folder {folder}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging / folder, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _archive(split: str, scale: int | None) -> tuple[str, str]:
    """(archive file name, folder it provides) for the HR (``scale=None``) or LR images."""
    if scale is None:
        return f"DIV2K_{split}_HR.zip", f"DIV2K_{split}_HR"
    if scale == 8:
        return f"DIV2K_{split}_LR_x8.zip", f"DIV2K_{split}_LR_x8"
    return f"DIV2K_{split}_LR_bicubic_X{scale}.zip", f"DIV2K_{split}_LR_bicubic/X{scale}"


class DIV2K(PairedDataset):
    """DIV2K's HR images and their official bicubic LR images at one scale.

    Items are those of :class:`~msrnet.data.PairedDataset`: dicts with ``"lr"`` float32
    ``(3, H / scale, W / scale)`` and ``"hr"`` float32 ``(3, H, W)`` in [0, 1] and
    ``"name"`` (``"0801"``). ``hr_root`` is the HR folder, for training on HR patches.

    Args:
        root: folder holding (or to receive) the official layout (see the module docstring).
        split: ``"train"`` (800 images) or ``"valid"`` (100 images).
        scale: 2, 3, 4 or 8.
        download: fetch and unpack the missing archives from ``base_url`` (sha256-checked,
            resumable; the zip is deleted after unpacking). Without it, missing folders raise
            ``FileNotFoundError``.
        base_url: where the archives live (a mirror, or a local server in tests).
        channels: passed to :func:`~msrnet.data.io.read_image`.
        progress: progress bars on stderr while downloading and unpacking.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        scale: int = 4,
        download: bool = False,
        *,
        base_url: str = DIV2K_URL,
        channels: int | None = 3,
        progress: bool = True,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        if scale not in _SCALES:
            raise ValueError(f"DIV2K has bicubic LR images for scales {_SCALES}, got {scale}")
        self.root = Path(root)
        self.split = split
        needed = [_archive(split, None), _archive(split, scale)]
        missing = [
            (name, folder) for name, folder in needed if not self._present(self.root / folder)
        ]
        if missing and not download:
            size = sum(_ARCHIVES[name][0] for name, _ in missing) / 1e9
            folders = ", ".join(f"{folder}/" for _, folder in missing)
            raise FileNotFoundError(
                f"DIV2K {split} x{scale} is not in {self.root}: missing {folders}. Pass "
                f"download=True (or --download) to fetch {size:.1f} GB from {base_url}, or unzip "
                f"{', '.join(name for name, _ in missing)} from there into {self.root}"
            )
        for name, folder in missing:
            archive = download_url(
                base_url.rstrip("/") + "/" + name,
                self.root / name,
                _ARCHIVES[name][1],
                progress=progress,
            )
            extract_zip(archive, self.root, folder, progress=progress)
            archive.unlink()
        super().__init__(self.root / needed[0][1], self.root / needed[1][1], scale, channels)

    @staticmethod
    def _present(folder: Path) -> bool:
        return folder.is_dir() and bool(list_images(folder))
