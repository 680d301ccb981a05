"""How a run computes: on which device and process group (`setup_distributed`), in which dtype
(`amp_enabled`), and compiled or not (`compile_enabled`, `compile_blocks`). Each answer has one
rule, asked once per run by `msrnet.train.trainer`.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from msrnet import device as hardware
from msrnet.device import bf16_reason, default_dtype
from msrnet.models.msr import PyramidResidualBlock

from .config import TrainConfig

__all__ = ["amp_enabled", "compile_enabled", "compile_blocks", "setup_distributed"]


def amp_enabled(config: TrainConfig, device: torch.device) -> tuple[bool, str]:
    """Whether a run of ``config`` on ``device`` trains under bf16 autocast, and why.

    ``config.amp`` asks for bf16; it is granted where the hardware computes it
    (`msrnet.device.default_dtype` is bf16): CUDA, and CPUs with AMX or AVX-512 BF16. Elsewhere
    bf16 is emulated, slower than fp32, so the run trains in fp32.
    """
    reason = bf16_reason(device)
    if not config.amp:
        return False, "amp off"
    return default_dtype(device) == torch.bfloat16, reason


def compile_enabled(config: TrainConfig, device: torch.device) -> bool:
    """``config.compile``, or where it is None, whether this is a CPU that can compile: there the
    compiled step ran 1.38x (fp32, AVX2) to 4.4x (bf16, AMX) as fast as the eager one and its
    compile (18 to 100 s) was paid back within tens of steps (docs/training.md). On CUDA the
    eager step is already fast and compiling takes minutes: there it stays opt-in."""
    if config.compile is not None:
        return config.compile
    if os.environ.get("TORCH_COMPILE_DISABLE") == "1":  # torch's own switch: compile is a no-op
        return False
    return device.type == "cpu" and hardware.cpu_can_compile()


def setup_distributed(device: str | None) -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, whether this call created the process group).

    Raises:
        ValueError: ``device`` names a device type torch does not know, or CUDA without CUDA
            (the config checks only its form, without importing torch).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        kind = torch.device(device).type if device else ("cuda" if torch.cuda.is_available() else "cpu")
    except RuntimeError as e:
        raise ValueError(f"device {device!r}: {e}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available")
    if world > 1 and kind == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        dev = torch.device(device or kind)
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)
    created = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
        created = True
    rank = dist.get_rank() if world > 1 else 0
    return rank, world, dev, created


def compile_blocks(model: nn.Module) -> int:
    """``torch.compile`` every `PyramidResidualBlock` of ``model`` in place; returns how many.

    Regional compilation: the blocks repeat, so each kind of block (one per pyramid level,
    plus the last block, which does not back-project) compiles once and its code serves every
    block like it. That takes about half the time of compiling the whole network, for the same
    step time (docs/training.md has the measurements), and a time-budgeted run pays for
    compilation in every process it starts. ``dynamic=False`` keeps each kind's kernels
    specialised to its shapes instead of one shape-generic version for all. Parameter names,
    and so checkpoints and exported weights, are unchanged.
    """
    blocks = [m for m in model.modules() if isinstance(m, PyramidResidualBlock)]
    for block in blocks:
        block.compile(dynamic=False)
    return len(blocks)
