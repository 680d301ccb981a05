"""msrnet weights in spandrel, the model loader of ComfyUI, chaiNNer and other upscaling tools.

spandrel recognises an architecture from the keys of a state dict and rebuilds the network from
its tensor shapes (it ignores safetensors metadata and has no plugin discovery), so `install`
adds msrnet to ``spandrel.MAIN_REGISTRY`` and `MSRNetArch` reads every setting back:

- from shapes: input/output channels, stem widths, kernel size, blocks per level, level widths,
  refinement convs, squeeze-excitation width;
- from the ``msrnet_config`` buffer (`msrnet.models.msr.CONFIG_BUFFER`), for the settings that
  leave no tensor behind: level scales (hence the scale), projection kernel, activation and
  image interpolation. Every msrnet state dict holds it; one without it is refused.

    from msrnet.integrations import spandrel as msr_spandrel
    import spandrel

    msr_spandrel.install()
    descriptor = spandrel.ModelLoader().load_from_file("model.safetensors")  # ImageModelDescriptor
    sr = descriptor(lr)  # (B, 3, H, W) in [0, 1] -> (B, 3, scale*H, scale*W)
"""
from __future__ import annotations

import re
from typing import Any

import torch

try:
    from spandrel import (
        MAIN_REGISTRY,
        Architecture,
        ArchSupport,
        ImageModelDescriptor,
        SizeRequirements,
        StateDict,
    )
    from spandrel.util import KeyCondition
except ModuleNotFoundError as e:  # one line that says what to install, wherever it is imported
    if e.name is None or e.name.split(".")[0] != "spandrel":
        raise
    raise ModuleNotFoundError(
        'msrnet.integrations.spandrel needs spandrel: pip install "msrnet[spandrel]"', name=e.name
    ) from e

from msrnet.models import ModelSizeError, check_buildable
from msrnet.models.msr import CONFIG_BUFFER, MultiScaleSRNet, read_config
from msrnet.models.weights import count_non_finite, shape_mismatch

__all__ = ["DETECT_KEYS", "MSRNetArch", "install", "model_kwargs_from_state_dict"]

ARCH_ID = "msrnet"
# Keys of msrnet's module tree that no spandrel architecture shares. The ComfyUI node folder
# holds a copy (it must recognise msrnet files where msrnet is not installed).
DETECT_KEYS = (
    "stem.layers.0.weight",
    "levels.0.blocks.0.up_proj.weight",
    "levels.0.compress.0.weight",
    "levels.0.to_residual.weight",
)

# Measured by benchmarks/precision.py on the shipped msr_x2/x4/x8 (whole model and input cast,
# as spandrel's users do; docs/integrations.md has the numbers): fp16 and bf16 outputs stay
# finite and within a fraction of a dB of fp32.
SUPPORTS_HALF = True
SUPPORTS_BFLOAT16 = True


def _count(state_dict: StateDict, pattern: str) -> int:
    """How many distinct values the ``(\\d+)`` group of ``pattern`` takes over the keys."""
    regex = re.compile(pattern)
    return len({m.group(1) for key in state_dict if (m := regex.fullmatch(key))})


def model_kwargs_from_state_dict(state_dict: StateDict) -> dict[str, Any]:
    """`MultiScaleSRNet` constructor arguments that rebuild the network of ``state_dict``.

    Reads shapes and the config buffer only; builds nothing. `MSRNetArch.load` then checks that
    a network built from these arguments has exactly the state dict's names and shapes.

    Raises:
        ValueError: the state dict is not a complete msrnet network (missing or malformed
            tensors, a config buffer that is not the JSON msrnet writes).
    """
    try:
        return _model_kwargs(state_dict)
    except ValueError:
        raise
    except (LookupError, TypeError, AttributeError, RuntimeError) as e:
        # A missing key, a tensor of the wrong rank, a config value of the wrong type.
        raise ValueError(f"not an msrnet state dict: {type(e).__name__}: {e}") from None


def _tensor(state_dict: StateDict, key: str, ndim: int) -> Any:
    value = state_dict[key]
    if not isinstance(value, torch.Tensor) or value.ndim != ndim:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"not an msrnet state dict: {key} is {shape}, expected a {ndim}-d tensor")
    return value


def _model_kwargs(state_dict: StateDict) -> dict[str, Any]:
    stem = [_tensor(state_dict, f"stem.layers.{2 * i}.weight", 4)
            for i in range(_count(state_dict, r"stem\.layers\.(\d+)\.weight"))]
    num_levels = _count(state_dict, r"levels\.(\d+)\.to_residual\.weight")
    if not stem or not num_levels:
        raise ValueError("not an msrnet state dict: no stem or no pyramid level")
    in_chans, kernel_size = stem[0].shape[1], stem[0].shape[-1]
    channels = stem[-1].shape[0]
    blocks_per_level = [
        _count(state_dict, rf"levels\.{i}\.blocks\.(\d+)\.up_proj\.weight") for i in range(num_levels)
    ]
    # ConvTranspose2d weights are (in, out, k, k).
    level_chans = [_tensor(state_dict, f"levels.{i}.to_residual.weight", 4).shape[1] for i in range(num_levels)]
    out_chans = state_dict["levels.0.to_residual.weight"].shape[0]

    # Every block but the network's last back-projects; the first block shows the refinement
    # and attention settings unless it is the only block (then they leave no tensor at all).
    refine_convs, se_ratio = 3, 1.0 / 16
    if "levels.0.blocks.0.down_proj.weight" in state_dict:
        refine_convs = _count(state_dict, r"levels\.0\.blocks\.0\.refine\.(\d+)\.weight")
        fc1 = state_dict.get("levels.0.blocks.0.attn.fc1.weight")
        if fc1 is not None:
            fc1 = _tensor(state_dict, "levels.0.blocks.0.attn.fc1.weight", 4)
        # SEModule rounds channels * ratio to a multiple of 8; rd / channels rounds back to rd.
        se_ratio = fc1.shape[0] / channels if fc1 is not None else 0.0

    if CONFIG_BUFFER not in state_dict:
        # The level scales, activation and interpolation leave no tensor: without the buffer
        # the network cannot be rebuilt for sure.
        raise ValueError(
            f"not an msrnet state dict: it lacks the {CONFIG_BUFFER} buffer, the network settings "
            "every msrnet model saves with its weights"
        )
    config = read_config(state_dict[CONFIG_BUFFER])
    if len(config["level_scales"]) != num_levels:
        raise ValueError(f"{CONFIG_BUFFER} names {config['level_scales']} levels, the tensors hold {num_levels}")
    return {
        "scale": config["level_scales"][-1],
        "in_chans": in_chans,
        "out_chans": out_chans,
        "stem_widths": tuple(w.shape[0] for w in stem),
        "num_blocks": sum(blocks_per_level),
        "blocks_per_level": tuple(blocks_per_level),
        "level_chans": tuple(level_chans),
        "level_scales": tuple(config["level_scales"]),
        "projection_kernel": config["projection_kernel"],
        "refine_convs": refine_convs,
        "kernel_size": kernel_size,
        "se_ratio": se_ratio,
        "act_layer": config["act_layer"],
        "image_upsample": config["image_upsample"],
    }


def _check_shapes(kwargs: dict[str, Any], state_dict: StateDict) -> None:
    """The network of ``kwargs``, built on the meta device within msrnet's limits
    (`~msrnet.models._limits.check_buildable`), has ``state_dict``'s names and shapes."""
    found = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}

    def verify(network: MultiScaleSRNet) -> None:
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
        mismatch = shape_mismatch(expected, found, "the network its settings describe")
        if mismatch is not None:
            raise _Mismatch(f"the msrnet state dict does not match its own settings: {mismatch}")

    try:
        check_buildable(lambda: MultiScaleSRNet(**kwargs), kwargs["in_chans"], verify=verify)
    except (ModelSizeError, _Mismatch):
        raise
    except (TypeError, ValueError, LookupError, RuntimeError) as e:
        # An unknown activation (KeyError), settings torch cannot build (RuntimeError): the
        # file's fault, said as the ValueError `MSRNetArch.load` documents.
        raise ValueError(f"not a buildable msrnet network: {type(e).__name__}: {e}") from None


class _Mismatch(ValueError):
    """A state dict whose tensors are not those of the network its settings describe."""


class MSRNetArch(Architecture[MultiScaleSRNet]):
    """spandrel `Architecture` of msrnet's `MultiScaleSRNet` (msr_x2, msr_x4, msr_x8 and variants)."""

    def __init__(self) -> None:
        super().__init__(
            id=ARCH_ID,
            name="msrnet",
            detect=KeyCondition.has_all(*DETECT_KEYS),
        )

    def load(self, state_dict: StateDict) -> ImageModelDescriptor[MultiScaleSRNet]:
        """Rebuild the network of ``state_dict`` (from a file anyone may have written).

        The network the shapes and config buffer describe is first built on the meta device
        (no memory) within msrnet's limits (`msrnet.models.ModelSizeError`: parameters, layer
        outputs per pixel, layers) and must hold exactly the state dict's names and shapes, so
        its parameters take no more memory than the file's own tensors.

        Raises:
            ValueError: not a complete msrnet state dict, or one whose config buffer disagrees
                with its tensors, or a network over msrnet's limits (`ModelSizeError`), or
                weights that hold NaN/inf.
        """
        kwargs = model_kwargs_from_state_dict(state_dict)
        _check_shapes(kwargs, state_dict)
        broken = count_non_finite(v for v in state_dict.values() if isinstance(v, torch.Tensor))
        if broken:
            # As msrnet's own loaders: weights that can only give NaN images are refused, by count.
            raise ValueError(f"the msrnet state dict holds {broken} NaN/inf values: the weights are broken")
        model = MultiScaleSRNet(**kwargs)
        tags = [
            f"x{kwargs['scale']}",
            f"{kwargs['stem_widths'][-1]}nf",
            "-".join(map(str, kwargs["blocks_per_level"])) + "b",
        ]
        return ImageModelDescriptor(
            model,
            state_dict,
            architecture=self,
            purpose="SR",
            tags=tags,
            supports_half=SUPPORTS_HALF,
            supports_bfloat16=SUPPORTS_BFLOAT16,
            scale=kwargs["scale"],
            input_channels=kwargs["in_chans"],
            output_channels=kwargs["out_chans"],
            # 'Same' convolutions and transposed convs with stride = kernel: any H, W >= 1.
            size_requirements=SizeRequirements(minimum=1),
        )


def install(registry: Any = None) -> None:
    """Add msrnet to spandrel's ``MAIN_REGISTRY`` (or ``registry``); calling it again is harmless."""
    registry = registry if registry is not None else MAIN_REGISTRY
    if ARCH_ID in registry:
        return
    # Detected first: msrnet's keys are specific, while some architectures accept loose matches.
    before = tuple(support.architecture.id for support in registry)
    registry.add(ArchSupport.from_architecture(MSRNetArch(), before=before))
