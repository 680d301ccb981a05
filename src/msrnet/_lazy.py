"""Attributes of a package that load on first use (PEP 562), so that importing it stays cheap.

`msrnet` and `msrnet.train` name what they export without importing torch: ``msrnet --help``
and a torch-free `msrnet.train.TrainConfig` stay instant, and the first use of any other name
imports the module that defines it.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(package: str, attributes: Mapping[str, str | None]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``attributes`` load on first use.

    Args:
        package: the package's dotted name (its ``__name__``).
        attributes: each name -> the submodule of ``package`` that defines it (``"models"``),
            or None for the submodule of that name itself.
    """

    def __getattr__(name: str) -> Any:
        if name not in attributes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where = attributes[name]
        module = importlib.import_module(f"{package}.{where or name}")
        value = module if where is None else getattr(module, name)
        setattr(sys.modules[package], name, value)  # from now on a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(attributes))

    return __getattr__, __dir__
