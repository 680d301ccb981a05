"""The required dependencies in pyproject.toml are the ones the package imports: none unused."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Distributions whose import name is not their own name.
_IMPORT_NAMES = {"pillow": "PIL"}


def _imported_modules() -> set[str]:
    """Top-level names of every module that a file of src/msrnet imports, lazily or not."""
    names: set[str] = set()
    for path in (REPO_ROOT / "src" / "msrnet").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_every_required_dependency_is_imported() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    required = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    packages = [re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in required]
    imported = _imported_modules()
    assert {"torch", "numpy"} <= imported, "the scan no longer finds the imports"
    unused = [p for p in packages if _IMPORT_NAMES.get(p, p) not in imported]
    assert not unused, f"declared in pyproject.toml but imported nowhere in src/msrnet: {unused}"
