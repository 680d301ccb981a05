"""JSON values checked against a dataclass field's annotation (torch-free).

The one decoder of msrnet's typed settings (`~msrnet.train.TrainConfig`, the degradation
configs): a value is accepted only where it is exact for the annotation (an integer for a float
field, a list for a tuple), nothing is parsed from a string, and ``bool`` is not an integer (JSON's
``true`` would otherwise train 1 step).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from typing import Any

__all__ = ["coerce", "describe", "from_json", "type_hints"]

# The name of a value of each scalar type, and of several.
_NAMES: dict[Any, tuple[str, str]] = {
    bool: ("true or false", "booleans"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}


_HINTS: dict[type[Any], dict[str, Any]] = {}


def type_hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved field annotations of ``cls`` (they are strings under
    ``from __future__ import annotations``), resolved once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _optional(hint: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if type(None) in args:
            (inner,) = [a for a in args if a is not type(None)]
            return inner, True
    return hint, False


def describe(hint: Any) -> str:
    """What a value of the annotation ``hint`` is, in words: ``"a list of 2 numbers or null"``."""
    inner, optional = _optional(hint)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if inner in _NAMES:
        text = _NAMES[inner][0]
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        text = f"a list of {_NAMES.get(args[0], ('', 'values'))[1]}"
    elif origin is tuple:
        same = len(set(args)) == 1 and args[0] in _NAMES
        text = f"a list of {len(args)} {_NAMES[args[0]][1] if same else 'values'}"
    elif origin is dict or dataclasses.is_dataclass(inner):
        text = "a JSON object" if origin is dict else "an object"
    else:
        text = str(inner)
    return text + (" or null" if optional else "")


def _wrong(hint: Any, value: Any, where: str) -> ValueError:
    return ValueError(f"{where}: expected {describe(hint)}, got {value!r}")


def coerce(hint: Any, value: Any, where: str, *, max_items: int | None = None) -> Any:
    """``value`` as the annotation ``hint`` types it, or a ValueError naming the innermost wrong
    place: ``"JPEG.quality[0]: expected an integer, got 50.5"``.

    Args:
        hint: a field annotation: bool, int, float, str, ``tuple[T, ...]``, ``tuple[T, U]``,
            ``dict[str, Any]``, a dataclass (from a JSON object, `from_json`), or ``T | None``.
        value: the JSON value (or the Python value given to a dataclass).
        where: the field's name in messages.
        max_items: the most entries a ``tuple[T, ...]`` may hold, checked before any entry is
            (a stranger's file may hold millions); None for no limit.

    Returns:
        The value: a list becomes a tuple, an integer a float where a float is due.

    Raises:
        ValueError: the value does not have the type (or is a non-finite number).
        TypeError: an annotation this decoder does not know (a bug of the dataclass, not input).
    """
    inner, optional = _optional(hint)
    if optional:
        return None if value is None else coerce(inner, value, where, max_items=max_items)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_json(typing.cast(type[Any], hint), value, where, max_items=max_items)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong(hint, value, where)
        if len(args) == 2 and args[1] is Ellipsis:
            if max_items is not None and len(value) > max_items:
                raise ValueError(f"{where}: {len(value)} entries, at most {max_items}")
            return tuple(coerce(args[0], v, f"{where}[{i}]", max_items=max_items) for i, v in enumerate(value))
        if len(value) != len(args):
            raise _wrong(hint, value, where)
        return tuple(coerce(a, v, f"{where}[{i}]", max_items=max_items) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _wrong(hint, value, where)
        return value
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        value = int(value) if ok and type(value) is not int else value
    elif hint is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok and type(value) is not float else value
    elif hint is str:
        ok = isinstance(value, str)
    else:
        raise TypeError(f"{where}: unsupported field type {hint}")
    if not ok:
        raise _wrong(hint, value, where)
    return value


def from_json(cls: type[Any], values: Any, where: str = "", *, max_items: int | None = None) -> Any:
    """The dataclass ``cls`` from a JSON object, every field checked by `coerce` (``where``
    prefixes the field names in messages); an instance of ``cls`` is returned as it is.

    Raises:
        ValueError: not an object, an unknown field, or a field of the wrong type.
    """
    if isinstance(values, cls):  # an instance from the Python API, checked when it was built
        return values
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'the config'}: expected an object, got {type(values).__name__}")
    hints = type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where or 'the config'}: unknown fields {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kwargs = {
        name: coerce(hints[name], value, f"{where}.{name}" if where else name, max_items=max_items)
        for name, value in values.items()
    }
    return cls(**kwargs)
