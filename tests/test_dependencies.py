"""The package's dependencies are a decision made here, not a consequence of its imports.

- The required dependencies in pyproject.toml are exactly `ALLOWED`, each with what needs it:
  adding one means adding it here, with its reason.
- Every third-party module the package imports (lazily or not) is declared: required, or in an
  optional extra (which the code imports only where that extra's feature is used).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The required dependencies and why the package cannot do without each.
ALLOWED = {
    "torch": "the networks, every op",
    "timm": "the model registry, layers (SE, activations), optimizer groups, schedule, EMA",
    "einops": "reshapes that name their axes (SSIM's planes, the per-sample blur)",
    "safetensors": "weights files",
    "numpy": "image arrays, metrics on arrays",
    "pillow": "image files",
    "tqdm": "progress bars",
}
# Distributions whose import name is not their own name.
_IMPORT_NAMES = {"pillow": "PIL"}


def _project() -> dict[str, object]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project: dict[str, object] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return project


def _names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


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


def test_required_dependencies_are_the_allowed_ones() -> None:
    assert _names(_project()["dependencies"]) == set(ALLOWED)


def test_every_imported_module_is_declared() -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    declared = set(ALLOWED).union(*(_names(reqs) for reqs in extras.values()))
    declared_imports = {_IMPORT_NAMES.get(name, name) for name in declared}
    imported = _imported_modules()
    assert {"torch", "numpy", "av"} <= imported, "the scan no longer finds the imports"
    undeclared = sorted(imported - declared_imports - set(sys.stdlib_module_names) - {"msrnet", "__future__"})
    assert not undeclared, f"imported by src/msrnet but declared nowhere in pyproject.toml: {undeclared}"
