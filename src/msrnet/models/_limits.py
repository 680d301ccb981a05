"""How large a network msrnet builds from a stranger's description, and how memory is counted.

A description comes from a file anyone may have written: a `local-dir:` / `hf-hub:`
``config.json``, a weights file's ``model_kwargs`` metadata, spandrel's reading of a state dict.
A few bytes of JSON must not make msrnet allocate gigabytes, so the loaders of those files build
the network on the meta device first (`check_buildable`), under these limits, before any tensor
is allocated. The constructors check only their arguments; a network built from a Python call
by its own author is not held to them.

Each limit is read when a network is checked, from the environment variable of its name
(``MSRNET_MAX_MODEL_BYTES``, ...) if set, else from the constant here; raise either to build
larger networks. The shipped networks are far below them (msr_x8: 29 MB of parameters, 0.15 MB
of layer outputs per LR pixel, 210 layers).
"""
from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = [
    "MAX_MODEL_BYTES",
    "MAX_ACTIVATION_BYTES",
    "MAX_LAYERS",
    "ModelSizeError",
    "TensorBytes",
    "bounded_build",
    "check_buildable",
    "model_limits",
    "model_size",
]

# Float32 bytes of the parameters and buffers.
MAX_MODEL_BYTES = 2 << 30
# Float32 bytes of every layer output of one forward pass, per input (LR) pixel: what a tile of
# one pixel costs, which no tiling can reduce (it grows with the square of the scale).
MAX_ACTIVATION_BYTES = 16 << 20
# Modules of the network: building each costs Python time and memory even on the meta device.
MAX_LAYERS = 4096

_LIMITS = ("MAX_MODEL_BYTES", "MAX_ACTIVATION_BYTES", "MAX_LAYERS")
_WHAT = {
    "MAX_MODEL_BYTES": "bytes of parameters",
    "MAX_ACTIVATION_BYTES": "bytes of layer outputs per input pixel",
    "MAX_LAYERS": "layers",
}

M = TypeVar("M", bound=nn.Module)


class ModelSizeError(ValueError):
    """A network description whose parameters, activations or layers exceed msrnet's limits."""


def model_limits() -> dict[str, int]:
    """The limits in force: ``MAX_MODEL_BYTES``, ``MAX_ACTIVATION_BYTES``, ``MAX_LAYERS``.

    Each comes from the environment variable ``MSRNET_<NAME>`` when it is set, else from the
    module constant of that name.
    """
    limits = {}
    for name in _LIMITS:
        value = os.environ.get(f"MSRNET_{name}")
        try:
            limits[name] = int(value) if value else int(globals()[name])
        except ValueError:
            raise ValueError(f"MSRNET_{name} must be an integer, got {value!r}") from None
    return limits


def _refuse(name: str, size: int, limit: int, at_least: bool = False) -> ModelSizeError:
    return ModelSizeError(
        f"this network would need {'at least ' if at_least else ''}{size} {_WHAT[name]}, "
        f"over msrnet's limit of {limit} (the environment variable MSRNET_{name} raises it)"
    )


class TensorBytes(TorchDispatchMode):
    """Counts the bytes of the tensors that ops create inside the mode.

    ``total``: every op's outputs summed, an upper bound of a forward's peak. ``current`` /
    ``peak``: the bytes of those still alive (storages, which views share) and their maximum.
    Counting tensors rather than asking the allocator works on every device, the meta device
    included, and measures a model exactly as it runs (its dtype, self-ensemble, channels_last).
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.current = 0
        self.peak = 0
        self._live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors referring]

    def _release(self, ptr: int) -> None:
        entry = self._live[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.total += t.nelement() * t.element_size()
                storage = t.untyped_storage()
                # The storage's identity, which views share: its C pointer, which unlike
                # data_ptr() also tells meta storages (all at address 0) apart.
                ptr = storage._cdata
                if ptr not in self._live:
                    self._live[ptr] = [storage.nbytes(), 0]
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                self._live[ptr][1] += 1
                weakref.finalize(t, self._release, ptr)
        return out


def model_size(model: nn.Module, in_chans: int | None = None) -> dict[str, int]:
    """Parameter bytes, activation bytes per LR pixel and layers of ``model``, in float32.

    Meant for a model on the meta device (no memory): activations are counted by running it on
    a (1, ``in_chans``, 8, 8) meta input (``in_chans`` default ``model.in_chans``) and summing
    every op's output (`TensorBytes.total`), an upper bound of the peak.
    """
    channels = in_chans if in_chans is not None else int(getattr(model, "in_chans"))
    params = sum(t.nelement() * 4 for t in (*model.parameters(), *model.buffers()))
    side = 8
    with torch.no_grad(), TensorBytes() as counter:
        model(torch.empty(1, channels, side, side, device="meta", dtype=torch.float32))
    layers = sum(1 for _ in model.modules())
    return {"MAX_MODEL_BYTES": params, "MAX_ACTIVATION_BYTES": counter.total // (side * side), "MAX_LAYERS": layers}


@contextmanager
def _bounded_construction(limit: int) -> Iterator[None]:
    """Stop a construction (of this thread) as soon as it registers more than ``limit`` layers.

    A description such as ``num_blocks: 1000000000`` would take hours to build even on the meta
    device, where tensors of any size cost nothing; counting the modules as they are registered
    stops it at the limit instead.
    """
    thread, layers = threading.get_ident(), [1]

    def count(module: nn.Module, name: str, sub: nn.Module | None) -> None:
        if sub is None or threading.get_ident() != thread:
            return
        layers[0] += 1
        if layers[0] > limit:
            raise _refuse("MAX_LAYERS", layers[0], limit, at_least=True)

    handle = register_module_module_registration_hook(count)
    try:
        yield
    finally:
        handle.remove()


def bounded_build(build: Callable[[], M]) -> M:
    """``build()`` on the meta device, stopped once it registers more than ``MAX_LAYERS`` layers
    (`ModelSizeError`); not measured (`check_buildable` measures)."""
    with torch.device("meta"), _bounded_construction(model_limits()["MAX_LAYERS"]):
        return build()


def check_buildable(
    build: Callable[[], M], in_chans: int | None = None, *, verify: Callable[[M], None] | None = None
) -> M:
    """``build()`` on the meta device, refused over the limits in force; returns the meta model.

    The construction stops as soon as it registers more layers than ``MAX_LAYERS``; then
    ``verify`` (if given) checks the meta model, and the whole network is measured
    (`model_size`, an 8x8 meta forward): its parameters, its layer outputs per input pixel and
    its layers. Nothing is allocated.

    Args:
        build: constructs the network (called under ``torch.device("meta")``).
        in_chans: its input channels (default ``model.in_chans``).
        verify: raises for a model that contradicts its source before it is measured, so that
            the error names the contradiction (spandrel's loader: the file's tensor shapes).

    Raises:
        ModelSizeError: over a limit; the message names it and the variable that raises it.
        Exception: whatever ``build`` and ``verify`` raise for a description they refuse.
    """
    limits = model_limits()
    model = bounded_build(build)
    if verify is not None:
        verify(model)
    for name, size in model_size(model, in_chans).items():
        if size > limits[name]:
            raise _refuse(name, size, limits[name])
    return model

