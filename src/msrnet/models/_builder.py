"""`build_model`: the one way msrnet's commands build a model, from a name or a weights file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ._registry import create_model
from .msr import MultiScaleSRNet
from .weights import WEIGHT_SUFFIXES, load_weights

__all__ = ["build_model"]


def build_model(
    model: str | None = None,
    weights: str | Path | None = None,
    *,
    pretrained: bool | str = False,
    **model_kwargs: Any,
) -> MultiScaleSRNet:
    """A model, in eval mode on the CPU, from a registered name, a weights file or both.

    The arguments are those of ``msrnet upscale | benchmark | export``: ``--model NAME``,
    ``--weights FILE`` and ``--pretrained/--no-pretrained``.

    - ``build_model("msr_x4", pretrained=True)``: the registered model with the weights that
      ship for it (``"msr_x4.t291"`` names a tag), as `create_model` builds it; without
      ``pretrained``, random weights.
    - ``build_model(weights="best.safetensors")``: the network a weights file was saved from
      (`load_weights`: its ``arch`` metadata, else ``msr_x<scale>`` with the scale its config
      buffer records).
    - ``build_model("msr_small_x4", "w.pth")``: the file's tensors in that architecture (for
      files without metadata).

    Args:
        model: a registered model name, ``NAME`` or ``NAME.TAG`` (not a file: files are
            ``weights``).
        weights: a ``.safetensors`` / ``.pth`` / ``.pt`` state dict; ``pretrained`` is then
            ignored.
        pretrained: load the weights that ship with msrnet for ``model`` (True, or a tag:
            ``"real"``; `create_model`'s rule).
        model_kwargs: constructor arguments (`MultiScaleSRNet`); for a weights file they
            replace its ``model_kwargs`` metadata.

    Raises:
        ValueError: neither a name nor weights, an unknown name, or a file passed as ``model``.
        FileNotFoundError: no such weights file.
        WeightsError: a file that is not weights, or that does not fit its architecture.
        RuntimeError: ``pretrained`` and no weights ship for ``model``, or they are corrupted.
    """
    if model is not None and (Path(model).suffix in WEIGHT_SUFFIXES or Path(model).is_file()):
        raise ValueError(f"{model} is a weights file, not a model name: pass it as weights (--weights FILE)")
    if weights is not None:
        return load_weights(weights, model, model_kwargs=model_kwargs or None)
    if model is None:
        raise ValueError("name a model (--model NAME) or a weights file (--weights FILE)")
    return create_model(model, pretrained=pretrained, **model_kwargs).eval()
