"""What the hardware computes fast, and where a model runs: the one place that decides
msrnet's default device and dtypes.

bf16 is worth using only where the hardware multiplies in it: CUDA GPUs with bf16, and CPUs
with AMX or AVX-512 BF16, where oneDNN's bf16 convolutions run several times faster than fp32.
Elsewhere (AVX2 CPUs, say) bf16 is emulated and slower than fp32, so fp32 stays the default.

    >>> import torch, msrnet.device
    >>> msrnet.device.default_dtype(torch.device("cpu"))  # bf16 on AMX, fp32 on AVX2
"""
from __future__ import annotations

import functools
import math
import shutil
from pathlib import Path

import torch

__all__ = [
    "cpu_has_native_bf16", "cpu_can_compile", "default_dtype", "bf16_reason", "significant_bits", "run_device",
]

# /proc/cpuinfo flags of the x86 extensions that compute bf16 dot products in hardware.
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is no such file)."""
    try:
        with path.open() as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _onednn_bf16() -> bool | None:
    """oneDNN's own answer (it checks AVX-512 BF16 / AMX), or None where torch does not expose it."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        return bool(check())
    except RuntimeError:
        return None


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX-512 BF16).

    oneDNN's check where torch exposes it (it is what runs the convolutions), the
    ``/proc/cpuinfo`` flags otherwise. Cached: the answer does not change in a process.
    """
    answer = _onednn_bf16()
    if answer is not None:
        return answer
    return any(flag in _cpuinfo_flags() for flag in _BF16_FLAGS)


@functools.cache
def cpu_can_compile() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here: inductor compiles them with a C++
    compiler (g++ by default), which a machine may lack (Windows, slim containers)."""
    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def bf16_reason(device: torch.device) -> str:
    """Why ``default_dtype(device)`` is what it is, in a few words for a log line."""
    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_bf16_supported() else "CUDA without bf16"
    if device.type == "cpu":
        return "CPU with native bf16 (AMX / AVX-512 BF16)" if cpu_has_native_bf16() else "CPU without native bf16"
    return f"{device.type} device"


def significant_bits(dtype: torch.dtype) -> int:
    """Bits of precision a sample keeps in ``dtype``: 8 (bf16), 11 (fp16), 24 (fp32), 53 (fp64);
    for an integer dtype, its width (8 for uint8, 16 for uint16)."""
    if dtype.is_floating_point:
        # The mantissa's bits and the implicit leading one: eps is 2 ** -(bits - 1).
        return 1 - int(math.log2(torch.finfo(dtype).eps))
    return torch.iinfo(dtype).bits


def run_device(model: torch.nn.Module, device: torch.device | str | None = None) -> torch.device:
    """Where msrnet runs ``model``: ``device`` when given, else where its weights are (the CPU
    for a model without parameters), so that a model moved to a GPU runs there unasked."""
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def default_dtype(device: torch.device, bits: int = 8) -> torch.dtype:
    """The compute dtype msrnet picks on ``device`` when none is asked for (``--dtype auto``).

    bf16 on CUDA (fp16 on GPUs without bf16) and on a CPU with native bf16; fp32 elsewhere.
    ``bits`` is the precision of the input's samples (8 for 8-bit images, 16 for 16-bit ones,
    `significant_bits` of a float tensor's dtype): a reduced dtype that keeps fewer bits than
    that gives way to fp32, so a 16-bit image never comes back with 8 bits' worth of levels.
    """
    fast = torch.float32
    if device.type == "cuda":
        fast = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif device.type == "cpu" and cpu_has_native_bf16():
        fast = torch.bfloat16
    return fast if significant_bits(fast) >= bits else torch.float32
