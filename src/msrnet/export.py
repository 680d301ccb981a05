"""Export a model to ONNX or to a `torch.export` program, with dynamic batch, height and width.

Both formats come from one `torch.export` trace, so the same graph runs in onnxruntime (or any
ONNX backend) and in PyTorch without Python model code (``torch.export.load(path).module()``).
`verify_export` runs the exported file at sizes other than the traced one and compares it with
the eager model.
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from msrnet._utils import atomic_write, missing_extra

__all__ = ["ExportFormat", "check_output_path", "export_model", "format_from_path", "verify_export"]

ExportFormat = Literal["onnx", "exported-program"]

_SUFFIXES: dict[str, ExportFormat] = {".onnx": "onnx", ".pt2": "exported-program"}
# The trace's example input. Its sizes must not be 0 or 1, which torch.export specialises on.
_EXAMPLE_BATCH, _EXAMPLE_SIDE = 2, 32
# Sizes `verify_export` checks by default: odd, non-square, none of them the traced one.
_VERIFY_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 37, 53), (2, 24, 17))


def format_from_path(path: str | Path) -> ExportFormat:
    """The format a file name asks for: ``.onnx`` -> onnx, ``.pt2`` -> exported-program."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"cannot tell the export format from {str(path)!r}: use a .onnx or .pt2 file name, "
            "or pass the format"
        )
    return _SUFFIXES[suffix]


@contextlib.contextmanager
def _onnx_extra() -> Iterator[None]:
    """Turns torch's bare ``No module named 'onnxscript'`` into the extra to install."""
    try:
        yield
    except ModuleNotFoundError as e:
        hint = missing_extra(e)
        if hint is None:
            raise
        raise ModuleNotFoundError(f"ONNX export needs onnx and onnxscript: {hint}", name=e.name) from e


def check_output_path(path: str | Path) -> Path:
    """``path`` as a `Path` if an export can be written there: a file name in an existing folder.

    Missing folders are not created: a typo in a path should be an error, not a new folder tree
    (possibly at the filesystem root).

    Raises:
        IsADirectoryError: ``path`` is a folder.
        FileNotFoundError: the folder ``path`` would go in does not exist.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a file name (.onnx or .pt2)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist")
    return path


def _in_chans(model: nn.Module) -> int:
    return int(getattr(model, "in_chans", 3))


def _cpu_copy(model: nn.Module) -> nn.Module:
    # A copy, so that exporting never moves or casts the caller's model.
    return copy.deepcopy(model).eval().float().cpu()


def export_model(
    model: nn.Module,
    path: str | Path,
    format: ExportFormat | None = None,
    *,
    opset_version: int | None = None,
    verify: bool = False,
    atol: float = 1e-4,
) -> Path:
    """Export a float32, eval-mode CPU copy of ``model`` with dynamic batch, H and W.

    Args:
        model: an image-to-image network, (B, C, H, W) -> (B, C', sH, sW).
        path: the output file, in a folder that exists (`check_output_path`).
        format: ``'onnx'`` (needs the ``onnx`` and ``onnxscript`` packages) or
            ``'exported-program'`` (`torch.export.save`); default: from the suffix
            (``.onnx`` / ``.pt2``).
        opset_version: ONNX opset (default: torch's).
        verify: run `verify_export` afterwards and raise if the exported model disagrees.
        atol: the largest absolute difference `verify` accepts (outputs are in [0, 1]).

    Returns:
        ``path``. Inputs of the exported model: (B, C, H, W) float32, B >= 1, H, W >= 2.

    Raises:
        IsADirectoryError, FileNotFoundError: ``path`` is a folder, or its folder is missing
            (checked before the model is traced).
    """
    path = check_output_path(path)
    format = format or format_from_path(path)
    if format not in ("onnx", "exported-program"):
        raise ValueError(f"format must be 'onnx' or 'exported-program', got {format!r}")
    model = _cpu_copy(model)
    example = (torch.rand(_EXAMPLE_BATCH, _in_chans(model), _EXAMPLE_SIDE, _EXAMPLE_SIDE),)
    dynamic_shapes = {
        "x": {0: Dim("batch", min=1), 2: Dim("height", min=2), 3: Dim("width", min=2)}
    }
    # Written beside `path` and renamed into place: a failed export leaves an existing file
    # intact, and a symlink at `path` is replaced rather than written through.
    if format == "exported-program":
        with torch.no_grad():
            program = torch.export.export(model, example, dynamic_shapes=dynamic_shapes)
        with atomic_write(path) as f:
            torch.export.save(program, f.name)
    else:
        with atomic_write(path) as f, _onnx_extra():
            torch.onnx.export(
                model,
                example,
                f.name,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                input_names=["lr"],
                output_names=["sr"],
                opset_version=opset_version,
                # One self-contained file: msrnet's models are far below protobuf's 2 GB limit.
                external_data=False,
                verbose=False,
            )
    if verify:
        error = verify_export(path, model, format)
        if error > atol:
            raise RuntimeError(
                f"exported model {path} disagrees with PyTorch: max abs difference {error:.3g} > {atol:g}"
            )
    return path


def verify_export(
    path: str | Path,
    model: nn.Module,
    format: ExportFormat | None = None,
    shapes: Sequence[tuple[int, int, int]] = _VERIFY_SHAPES,
) -> float:
    """Largest absolute difference between the exported file and ``model`` over ``shapes``.

    Each shape is (B, H, W) of a random input; the ONNX file runs in onnxruntime (CPU), the
    exported program in PyTorch.

    Raises:
        ImportError: an ONNX file is checked and onnxruntime is not installed
            (``pip install "msrnet[onnx]"``).
    """
    path = Path(path)
    format = format or format_from_path(path)
    model = _cpu_copy(model)
    if format == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError('checking an ONNX export needs onnxruntime: pip install "msrnet[onnx]"') from e
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(x: torch.Tensor) -> np.ndarray:
            return session.run(None, {input_name: x.numpy()})[0]
    else:
        exported = torch.export.load(path).module()

        def run(x: torch.Tensor) -> np.ndarray:
            return exported(x).numpy()

    error = 0.0
    with torch.no_grad():
        for batch, height, width in shapes:
            x = torch.rand(batch, _in_chans(model), height, width)
            expected = model(x).numpy()
            actual = run(x)
            if actual.shape != expected.shape:
                raise RuntimeError(
                    f"exported model {path} returned shape {actual.shape} for input "
                    f"{tuple(x.shape)}, PyTorch {expected.shape}"
                )
            error = max(error, float(np.abs(actual - expected).max()))
    return error
