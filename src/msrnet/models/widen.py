"""Grow trained weights into a wider network of the same structure, computing the same function.

A narrow network (``msr_small_x4``) trained for many hours is a better start for a wider one
(``msr_medium_x4``) than any random init: `widen_state_dict` places every trained weight in the
wider network so that its output is the narrow network's, and the extra channels start to
learn at once (Net2Net's function-preserving growth, Chen et al. 2016, with zeros instead of
copies). For every convolution:

- the trained weights fill the block of old output and old input channels;
- old outputs read the new inputs through zeros, so the new channels change nothing yet;
- new outputs keep the wide network's own random init, reading every input. Their values are
  non-zero, so the zeros that read them get gradients on the first step (all-zero growth would
  leave both sides at zero forever).

Channel ``j`` of a narrow tensor is channel ``j`` of the wide one, except in a level's
``compress`` input, a concatenation of every block's up-projection: block ``b``'s channel ``j``
moves from ``b * narrow + j`` to ``b * wide + j``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from msrnet.models.msr import CONFIG_BUFFER, MultiScaleSRNet, PyramidLevel, decode_config

__all__ = ["widen_state_dict"]


def widen_state_dict(narrow: Mapping[str, Tensor], model: MultiScaleSRNet) -> dict[str, Tensor]:
    """A state dict for ``model`` that computes what ``narrow`` computes in its narrower network.

    Args:
        narrow: the trained weights of a network built like ``model`` (same scale, levels,
            blocks, kernels and settings buffer, which may be left out) with at most
            ``model``'s width everywhere.
        model: the wide network; its own (random) weights initialise the new output channels.

    Returns:
        Every entry of ``model.state_dict()``, float32 on the CPU; the settings buffer is
        ``model``'s own.

    Raises:
        ValueError: ``narrow`` misses a tensor of ``model`` or has one it lacks, names other
            settings, or a tensor is wider than ``model``'s or differs in a dimension that
            widening does not change.
    """
    wide = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    # The settings buffer is the model's own; one in the weights must name the same settings.
    theirs = narrow.get(CONFIG_BUFFER)
    if theirs is not None and decode_config(theirs) != decode_config(wide[CONFIG_BUFFER]):
        raise ValueError(
            f"the weights were saved from a network with {decode_config(theirs)}, "
            f"this one has {decode_config(wide[CONFIG_BUFFER])}"
        )
    names = set(narrow) - {CONFIG_BUFFER}
    extra, missing = names - set(wide), set(wide) - names - {CONFIG_BUFFER}
    if extra or missing:
        raise ValueError(
            f"the weights are not of {type(model).__name__}'s structure: "
            f"missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}"
        )
    concatenated = {
        f"{name}.compress.0": len(level.blocks)
        for name, level in model.named_modules()
        if isinstance(level, PyramidLevel)
    }
    done = {CONFIG_BUFFER}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            continue
        # ConvTranspose2d stores (in, out, kH, kW), Conv2d (out, in, kH, kW).
        out_dim, in_dim = (1, 0) if isinstance(module, nn.ConvTranspose2d) else (0, 1)
        key = f"{name}.weight"
        old, new = narrow[key].float().cpu(), wide[key]
        _check_widens(key, old, new, (out_dim, in_dim))
        outs = torch.arange(old.shape[out_dim])
        ins = _positions(old.shape[in_dim], new.shape[in_dim], concatenated.get(name, 1))
        new.narrow(out_dim, 0, len(outs)).zero_()  # old outputs read the new inputs through zeros
        if out_dim == 0:
            new[outs[:, None], ins[None, :]] = old
        else:
            new[ins[:, None], outs[None, :]] = old
        done.add(key)
        if module.bias is not None:
            bias = f"{name}.bias"
            _check_widens(bias, narrow[bias], wide[bias], (0,))
            wide[bias][: narrow[bias].shape[0]] = narrow[bias].float()
            done.add(bias)
    left = set(wide) - done
    if left:
        raise ValueError(f"widen_state_dict does not know how to widen {sorted(left)[:3]}")
    return wide


def _positions(narrow: int, wide: int, blocks: int) -> Tensor:
    """Where each of ``narrow`` channels (``blocks`` concatenated groups) sits among ``wide``."""
    if narrow % blocks or wide % blocks:
        raise ValueError(f"{narrow} and {wide} channels do not split into {blocks} blocks")
    per_old, per_new = narrow // blocks, wide // blocks
    return (torch.arange(blocks)[:, None] * per_new + torch.arange(per_old)[None, :]).flatten()


def _check_widens(key: str, old: Tensor, new: Tensor, widened: tuple[int, ...]) -> None:
    """``old`` fits ``new``: no wider in ``widened`` dims, equal in every other."""
    fits = old.ndim == new.ndim and all(
        o <= n if d in widened else o == n for d, (o, n) in enumerate(zip(old.shape, new.shape))
    )
    if not fits:
        raise ValueError(f"{key}: {tuple(old.shape)} does not widen to {tuple(new.shape)}")
