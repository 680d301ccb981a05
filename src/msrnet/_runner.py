"""How `msrnet.upscale` calls a model on one LR tile (`_Runner`): the compiled copy, the
reduced-precision weights cast once, self-ensemble, and the fp32 fallback.
"""
from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn

from msrnet.models import PyramidForward
from msrnet.models.weights import count_non_finite
from msrnet.ops import self_ensemble as _self_ensemble


# Compiled copies of models, one per (model, dtype, levels, device), kept while the model lives:
# a folder or a video compiles once, not once per image. The key's last part is the weights'
# identity and version, so a model trained or loaded since gets a fresh copy.
_COMPILED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], nn.Module]] = weakref.WeakKeyDictionary()


def _compiled_copy(model: nn.Module, net: nn.Module, dtype: torch.dtype, device: torch.device, levels: bool) -> nn.Module:
    """``torch.compile`` of a copy of ``net`` (``model`` or its pyramid wrapper) cast to ``dtype``.

    A copy in ``dtype`` rather than autocast (which would cast every weight on every call) or
    ``functional_call`` over cast weights; the model itself stays as it is. Shapes are
    specialised on first sight and made dynamic if a second tile shape comes (torch.compile's
    default), so a folder of one image size compiles once.
    """
    # Parameter objects and their version counters: in-place updates (an optimizer step,
    # load_state_dict) bump the counter; the layout changes `upscale` makes and undoes do not.
    version = tuple((id(p), p._version) for p in model.parameters())
    key = (dtype, levels, device, version)
    hit = _COMPILED.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    copied = copy.deepcopy(net).to(device=device, dtype=dtype).eval()
    compiled = cast(nn.Module, torch.compile(copied))
    _COMPILED[model] = (key, compiled)
    return compiled


class _Runner:
    """Calls the model on one LR tile: reduced dtype, channels_last, self-ensemble, fp32 fallback.

    Shapes: (B, 3, h, w) float32 on any device -> [(B, 3, s*h, s*w) float32 on ``device``], one
    tensor per output level: ``model(x)`` alone, or with ``levels`` every level of
    ``model.forward_pyramid(x)``, coarse first (`_output_scales` gives their scales).
    """

    def __init__(
        self, model: nn.Module, device: torch.device, dtype: torch.dtype, ensemble: bool,
        levels: bool = False, compile: bool = False,
    ):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.ensemble = ensemble
        self.levels = levels
        self.compile = compile
        # The module called on each tile, whose forward gives every output level.
        self.net: nn.Module = PyramidForward(model) if levels else model
        self._reduced: tuple[torch.dtype, dict[str, Tensor]] | None = None

    def _reduced_weights(self, dtype: torch.dtype) -> dict[str, Tensor]:
        """The network's floating-point parameters and buffers in ``dtype``, cast once.

        Autocast would cast every weight and bias again on every call: for msr_x4 that is 173
        of the 371 ops of a frame (`benchmarks/inference_profile.py`), and on a GPU each is a
        kernel launch. Casting once keeps the model itself in float32 for the fallback.
        """
        if self._reduced is None or self._reduced[0] != dtype:
            tensors = {**dict(self.net.named_parameters()), **dict(self.net.named_buffers())}
            cast = {k: t.to(dtype) if t.is_floating_point() else t for k, t in tensors.items()}
            self._reduced = (dtype, cast)
        return self._reduced[1]

    def _forward(self, x: Tensor, dtype: torch.dtype) -> list[Tensor]:
        net: Callable[[Tensor], Any]
        if self.compile and dtype == self.dtype:
            # The fp32 fallback of a broken reduced dtype runs eager: it is the rare path.
            compiled = _compiled_copy(self.model, self.net, dtype, self.device, self.levels)
            net = lambda t: compiled(t.to(dtype))  # noqa: E731
        elif dtype == torch.float32:
            net = self.net
        else:
            weights = self._reduced_weights(dtype)
            net = lambda t: torch.func.functional_call(self.net, weights, (t.to(dtype),))  # noqa: E731

        out = _self_ensemble(net, x) if self.ensemble else net(x)
        return [y.float() for y in _outputs(out)]

    def __call__(self, x: Tensor) -> list[Tensor]:
        x = x.to(self.device, torch.float32, non_blocking=True).contiguous(memory_format=torch.channels_last)
        ys = self._forward(x, self.dtype)
        if self.dtype != torch.float32 and not all(_all_finite(y) for y in ys):
            # A reduced dtype overflowed (fp16) or otherwise broke: redo this tile, and every
            # later one, in fp32 rather than return NaNs.
            warnings.warn(
                f"{self.dtype} inference produced NaN/inf; falling back to float32", RuntimeWarning,
                stacklevel=3,
            )
            self.dtype = torch.float32
            ys = self._forward(x, torch.float32)
        if not all(_all_finite(y) for y in ys):
            # The input was checked finite, so float32 NaN/inf come from the model itself.
            broken = count_non_finite(self.model.parameters())
            cause = (
                f"{broken} of its parameters are NaN/inf: the weights are broken" if broken
                else "its parameters are finite, so a layer overflowed"
            )
            raise FloatingPointError(f"the model produced NaN/inf values in float32; {cause}")
        # The caller blends in place, which must never touch the input.
        return [
            y.clone() if y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() else y
            for y in ys
        ]


def _outputs(out: Tensor | list[Tensor]) -> list[Tensor]:
    """A model's output as a list: [(B, C, H', W')] for one tensor, the list itself for many."""
    return [out] if isinstance(out, Tensor) else list(out)


def _all_finite(y: Tensor) -> bool:
    """Whether ``y`` has no NaN/inf. NaN and inf carry into a sum, which needs no y-sized mask;
    only a sum that overflowed on huge finite values needs the exact check."""
    return bool(torch.isfinite(y.sum())) or bool(torch.isfinite(y).all())


def _output_scales(model: nn.Module, levels: bool) -> list[int]:
    """The scale of each output level of `_Runner`: ``[model.scale]``, or with ``levels`` the
    pyramid's ``model.level_scales``, coarse first."""
    if not levels:
        return [getattr(model, "scale", 1)]
    scales = list(getattr(model, "level_scales", ()))
    if not scales or not hasattr(model, "forward_pyramid"):
        raise ValueError("levels=True needs a pyramid model with forward_pyramid and level_scales (msrnet's)")
    return scales
