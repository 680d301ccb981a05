"""Small helpers shared across msrnet's modules."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (weights and archives can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
