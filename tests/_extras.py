"""`needs_extra`: a test that needs an optional extra skips without it, naming the extra.

The README's test command installs the ``dev`` extra only; ``.ci/run`` then installs every
extra and runs what skipped. The module-to-extra table is msrnet's own (`OPTIONAL_MODULES`,
which the CLI's hints use too).
"""
from __future__ import annotations

from types import ModuleType

import pytest

from msrnet._utils import OPTIONAL_MODULES


def needs_extra(module: str) -> ModuleType:
    """``module``, imported; or skip the test (or, at module level, the file) naming its extra."""
    extra = OPTIONAL_MODULES[module.split(".")[0]]
    return pytest.importorskip(module, reason=f'needs the {extra} extra: pip install -e ".[{extra}]"')
