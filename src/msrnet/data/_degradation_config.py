"""Degradation configs: which ops run, how likely, with which parameter ranges, and what a
pipeline may cost. Torch-free; `msrnet.data.degradations` (which runs the pipelines) exports
everything here.

- frozen dataclasses (`Blur`, `Resize`, `Noise`, `JPEG`, `Stage`, `Final`, `DegradationConfig`)
  that check the type and range of every field however they are built (Python or JSON);
- `PRESETS` (``bicubic``, ``web``, ``real``) and `load_degradation`, which reads a preset name
  or a JSON file of the same fields through msrnet's bounded reader;
- the limits a config from a stranger is held to before anything is allocated: `MAX_STAGES`,
  `MAX_GROWTH` (the product of the resize factors) and `MAX_DEGRADATION_BYTES`
  (`check_degradation_memory`, from the batch and patch size).
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msrnet._catalogue import DEGRADATION_PRESETS
from msrnet._typed import coerce, from_json, type_hints
from msrnet._utils import read_json

__all__ = [
    "JPEG",
    "MAX_DEGRADATION_BYTES",
    "MAX_GROWTH",
    "MAX_STAGES",
    "PRESETS",
    "RESIZE_MODES",
    "Blur",
    "DegradationConfig",
    "Final",
    "Noise",
    "Resize",
    "Stage",
    "check_degradation_memory",
    "degradation_growth",
    "load_degradation",
]

RESIZE_MODES = ("area", "bilinear", "bicubic")

# ----------------------------------------------------------------------------------------------
# Limits.

# Limits on what a pipeline may cost, checked before anything is allocated (a config comes
# from a file anyone may have written; `load_degradation`'s reader bounds the file itself).
# Stages run one after the other on the whole batch: Real-ESRGAN's pipeline has two.
MAX_STAGES = 16
# How much the resize stages may enlarge the image, per side, over where the pipeline starts:
# the product of each stage's largest factor above 1 (`degradation_growth`; ``real``: 1.5 x 1.2
# = 1.8). Each stage's factor is at most 4, but factors multiply from stage to stage.
MAX_GROWTH = 4.0
# Bytes the pipeline may hold at once for one batch (`check_degradation_memory`: three batches
# of its largest size, for an op's input, its output and a partial copy). Read at every check
# from MSRNET_MAX_DEGRADATION_BYTES when set, else from this constant. The ``real`` pipeline
# needs 0.13 GiB at the trainer's defaults (batch 32, LR patch 48, x4), 7.3 GiB at the largest
# batch scripts/gpu_run.py tries (256 patches of 64 at x8; 2.25 GiB with ``bicubic`` or ``web``).
MAX_DEGRADATION_BYTES = 8 << 30
# Copies of the largest batch alive at once: an op's input, its output, and `_apply_to`'s clone.
_LIVE_COPIES = 3


def degradation_growth(config: DegradationConfig) -> float:
    """The largest factor by which ``config``'s resize stages can enlarge an image, per side,
    over the size it enters the stages at: the product of each stage's largest factor above 1
    (a stage may be skipped, so a factor below 1 never shrinks the bound)."""
    growth = 1.0
    for stage in config.stages:
        if stage.resize is not None:
            growth *= max(1.0, stage.resize.scale[1])
    return growth


def check_degradation_memory(
    config: DegradationConfig | str, batch: int, channels: int, hr_size: tuple[int, int], scale: int,
    itemsize: int = 4,
) -> int:
    """Refuse a pipeline that would hold more than ``MAX_DEGRADATION_BYTES`` for one batch.

    Pure arithmetic, run before anything is allocated: by `degrade` on each batch, and by the
    trainer from its batch and patch size before it loads a single image.

    Args:
        config: the pipeline.
        batch, channels: the batch's size and channel count.
        hr_size: the HR patch's (height, width); the LR patch is ``scale`` times smaller.
        scale: the down-scaling factor.
        itemsize: bytes per element of the batch (float32: 4).

    Returns:
        The bound of the bytes held at once (``_LIVE_COPIES`` batches of the largest size the
        pipeline reaches).

    Raises:
        ValueError: over the limit; the message gives both numbers and the variable to raise.
    """
    config = load_degradation(config)
    height, width = hr_size
    if config.bicubic_first:
        height, width = max(1, height // scale), max(1, width // scale)
    growth = degradation_growth(config)
    # Whole HR batches exist anyway (the patch and its float copy), hence the max with 1.
    largest = batch * channels * math.ceil(height * growth) * math.ceil(width * growth) * itemsize
    largest = max(largest, batch * channels * hr_size[0] * hr_size[1] * itemsize)
    needed = _LIVE_COPIES * largest
    value = os.environ.get("MSRNET_MAX_DEGRADATION_BYTES")
    try:
        limit = int(value) if value else MAX_DEGRADATION_BYTES
    except ValueError:
        raise ValueError(f"MSRNET_MAX_DEGRADATION_BYTES must be an integer, got {value!r}") from None
    if needed > limit:
        raise ValueError(
            f"the degradation pipeline would hold {needed / 2**30:.1f} GiB at once for a batch of {batch} "
            f"{hr_size[0]}x{hr_size[1]} HR patches (its resizes enlarge them up to {growth:g}x per side); "
            f"the limit is {limit / 2**30:.1f} GiB (MSRNET_MAX_DEGRADATION_BYTES): use a smaller batch "
            f"or patch size, or smaller resize factors"
        )
    return needed


# ----------------------------------------------------------------------------------------------
# Field types: a JSON value and a Python value are checked alike.


def _check_types(config: Any) -> None:
    """Check (and normalize) every field of a config dataclass as its JSON value is checked
    (`msrnet._typed.coerce`), so the Python API refuses what a file would:
    ``JPEG(quality=(50.5, 90))`` is a ValueError naming ``JPEG.quality[0]``, not a TypeError deep
    inside `degrade`. A list becomes a tuple, an integer a float where a float is due. No list
    of a config is long when it is genuine (stages: `MAX_STAGES`): a long one is refused before
    an object is built for each entry."""
    cls = type(config)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        checked = coerce(type_hints(cls)[f.name], value, f"{cls.__name__}.{f.name}", max_items=MAX_STAGES)
        if checked is not value:
            object.__setattr__(config, f.name, checked)


# ----------------------------------------------------------------------------------------------
# Configs: what runs, how likely, with which parameter ranges. Ranges are (low, high), drawn
# uniformly per sample.


@dataclass(frozen=True)
class Blur:
    """A random blur per sample: Gaussian (isotropic or anisotropic), generalized Gaussian,
    plateau, or sinc.

    Args:
        prob: chance that a sample is blurred.
        size: odd kernel sides to draw from, (smallest, largest).
        sigma: standard deviation range in pixels (each axis, for anisotropic kernels).
        anisotropic_prob: chance of two sigmas and a random rotation instead of one sigma.
        generalized_prob, plateau_prob: chances of those shapes instead of a Gaussian.
        generalized_beta, plateau_beta: their shape parameter ranges.
        sinc_prob: chance of a sinc (ringing) kernel instead of all of the above.
    """

    prob: float = 1.0
    size: tuple[int, int] = (7, 21)
    sigma: tuple[float, float] = (0.2, 3.0)
    anisotropic_prob: float = 0.5
    generalized_prob: float = 0.15
    plateau_prob: float = 0.15
    generalized_beta: tuple[float, float] = (0.5, 4.0)
    plateau_beta: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1

    def __post_init__(self) -> None:
        _check_types(self)


@dataclass(frozen=True)
class Resize:
    """A random resize of the whole batch (one shape per batch).

    Args:
        prob: chance that the batch is resized at this point.
        scale: range of the resize factor.
        modes: interpolation modes to draw from (``area``, ``bilinear``, ``bicubic``).
    """

    prob: float = 1.0
    scale: tuple[float, float] = (0.15, 1.5)
    modes: tuple[str, ...] = RESIZE_MODES

    def __post_init__(self) -> None:
        _check_types(self)


@dataclass(frozen=True)
class Noise:
    """Random noise per sample: Gaussian, or else Poisson (shot) noise.

    Args:
        prob: chance that a sample gets noise.
        gaussian_prob: chance that the noise is Gaussian rather than Poisson.
        sigma: Gaussian standard deviation range, on the 0-255 scale.
        poisson_scale: Poisson strength range (see `add_poisson_noise`).
        gray_prob: chance of luminance-only noise instead of colour noise.
    """

    prob: float = 1.0
    gaussian_prob: float = 0.5
    sigma: tuple[float, float] = (1.0, 30.0)
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    gray_prob: float = 0.4

    def __post_init__(self) -> None:
        _check_types(self)


@dataclass(frozen=True)
class JPEG:
    """JPEG compression per sample at a random quality.

    Args:
        prob: chance that a sample is compressed.
        quality: quality range (integers in [1, 100], both ends included).
    """

    prob: float = 1.0
    quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        _check_types(self)


@dataclass(frozen=True)
class Stage:
    """One round of degradation, run in the order blur, resize, noise, JPEG; a missing part
    (None) is skipped. ``prob`` is the chance that the batch goes through the stage at all."""

    blur: Blur | None = None
    resize: Resize | None = None
    noise: Noise | None = None
    jpeg: JPEG | None = None
    prob: float = 1.0

    def __post_init__(self) -> None:
        _check_types(self)


@dataclass(frozen=True)
class Final:
    """Real-ESRGAN's last step: the resize to the LR size with a sinc filter (with chance
    ``sinc_prob``) and a JPEG compression, in random order (one order per batch)."""

    sinc_prob: float = 0.8
    jpeg: JPEG = JPEG(quality=(30, 95))
    modes: tuple[str, ...] = RESIZE_MODES

    def __post_init__(self) -> None:
        _check_types(self)


@dataclass(frozen=True)
class DegradationConfig:
    """A degradation pipeline from an HR patch to its LR patch.

    With ``bicubic_first`` (the ``bicubic`` and ``web`` presets) the HR patch is first
    down-scaled with MATLAB's bicubic ``imresize``, as the benchmark protocol does, and the
    ``stages`` then run on the LR patch; stages must not resize. Without it (``real``), the
    stages run from the HR patch, may resize, and ``final`` brings the result to the LR size.

    Args:
        stages: the rounds of degradation, in order.
        bicubic_first: see above.
        final: the last step of a pipeline that starts from the HR patch (None: a plain
            resize to the LR size with a random mode).
        clean_prob: share of samples that skip every stage and keep the clean bicubic LR
            patch, so one model serves clean inputs and degraded ones.
    """

    stages: tuple[Stage, ...] = ()
    bicubic_first: bool = True
    final: Final | None = None
    clean_prob: float = 0.0

    def __post_init__(self) -> None:
        _check_types(self)
        _check_config(self)

    @property
    def is_bicubic(self) -> bool:
        """Whether the pipeline is the protocol's bicubic down-scaling alone: the one rule for
        "nothing to degrade" (`degrade` then returns the clean LR, and a run of it is scored
        on the protocol only)."""
        return self.bicubic_first and not self.stages

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values (tuples become lists): what a .json file of it holds, and
        what `load_degradation` reads back as an equal config."""
        return typing.cast(dict[str, Any], _json_values(dataclasses.asdict(self)))


def _json_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_values(v) for v in value]
    return value


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ValueError(f"{name} must be (low, high) with {low} <= low <= high <= {high}, got {value}")


def _check_config(config: DegradationConfig) -> None:
    def prob(name: str, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value}")

    prob("clean_prob", config.clean_prob)
    if len(config.stages) > MAX_STAGES:
        raise ValueError(f"stages: {len(config.stages)} stages, at most {MAX_STAGES}")
    for i, stage in enumerate(config.stages):
        where = f"stages[{i}]"
        prob(f"{where}.prob", stage.prob)
        if stage.blur is not None:
            b = stage.blur
            for field_name in ("prob", "anisotropic_prob", "generalized_prob", "plateau_prob", "sinc_prob"):
                prob(f"{where}.blur.{field_name}", getattr(b, field_name))
            if b.generalized_prob + b.plateau_prob > 1:
                raise ValueError(f"{where}.blur: generalized_prob + plateau_prob must be at most 1")
            _check_range(f"{where}.blur.size", b.size, 1, 51)
            if b.size[0] % 2 == 0 or b.size[1] % 2 == 0:
                raise ValueError(f"{where}.blur.size must be odd sides, got {b.size}")
            _check_range(f"{where}.blur.sigma", b.sigma, 1e-3, 20.0)
            _check_range(f"{where}.blur.generalized_beta", b.generalized_beta, 0.1, 10.0)
            _check_range(f"{where}.blur.plateau_beta", b.plateau_beta, 0.1, 10.0)
        if stage.resize is not None:
            if config.bicubic_first:
                raise ValueError(f"{where}.resize: stages after the bicubic down-scaling must keep the LR size")
            prob(f"{where}.resize.prob", stage.resize.prob)
            _check_range(f"{where}.resize.scale", stage.resize.scale, 0.05, 4.0)
            _check_modes(f"{where}.resize.modes", stage.resize.modes)
        if stage.noise is not None:
            n = stage.noise
            for field_name in ("prob", "gaussian_prob", "gray_prob"):
                prob(f"{where}.noise.{field_name}", getattr(n, field_name))
            _check_range(f"{where}.noise.sigma", n.sigma, 0.0, 255.0)
            _check_range(f"{where}.noise.poisson_scale", n.poisson_scale, 0.0, 100.0)
        if stage.jpeg is not None:
            _check_jpeg(f"{where}.jpeg", stage.jpeg)
    growth = degradation_growth(config)
    if growth > MAX_GROWTH:
        factors = " x ".join(f"{s.resize.scale[1]:g}" for s in config.stages if s.resize and s.resize.scale[1] > 1)
        raise ValueError(
            f"stages: the resizes can enlarge the image {growth:g}x per side ({factors}); their largest "
            f"factors above 1 may multiply to at most {MAX_GROWTH:g}"
        )
    if config.final is not None:
        if config.bicubic_first:
            raise ValueError("final applies only to pipelines that start from the HR patch (bicubic_first false)")
        prob("final.sinc_prob", config.final.sinc_prob)
        _check_jpeg("final.jpeg", config.final.jpeg)
        _check_modes("final.modes", config.final.modes)


def _check_jpeg(name: str, jpeg: JPEG) -> None:
    if not 0.0 <= jpeg.prob <= 1.0:
        raise ValueError(f"{name}.prob must be a probability in [0, 1], got {jpeg.prob}")
    _check_range(f"{name}.quality", jpeg.quality, 1, 100)


def _check_modes(name: str, modes: tuple[str, ...]) -> None:
    if not modes or any(m not in RESIZE_MODES for m in modes):
        raise ValueError(f"{name} must be a non-empty list of {', '.join(RESIZE_MODES)}, got {modes}")


# The benchmark protocol: MATLAB bicubic down-scaling and nothing else.
_BICUBIC = DegradationConfig()
# Images as the web serves them: mild noise (phone-camera grain) and JPEG at common qualities on
# the bicubic LR patch; a fifth of the samples stay clean.
_WEB = DegradationConfig(
    stages=(
        Stage(
            noise=Noise(prob=0.5, gaussian_prob=1.0, sigma=(1.0, 12.0), gray_prob=0.2),
            jpeg=JPEG(prob=0.8, quality=(35, 95)),
        ),
    ),
    clean_prob=0.2,
)
# After Real-ESRGAN's second-order pipeline (Wang et al., 2021): its ranges, but a few draws of
# our own (anisotropy, the resizes' direction and reference size, the second stage's chance, the
# final sinc width), listed in docs/real-photos.md#presets.
_REAL = DegradationConfig(
    stages=(
        Stage(
            blur=Blur(),
            resize=Resize(scale=(0.15, 1.5)),
            noise=Noise(sigma=(1.0, 30.0), poisson_scale=(0.05, 3.0)),
            jpeg=JPEG(quality=(30, 95)),
        ),
        Stage(
            blur=Blur(prob=0.8, sigma=(0.2, 1.5)),
            resize=Resize(scale=(0.3, 1.2)),
            noise=Noise(sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5)),
            prob=0.8,
        ),
    ),
    bicubic_first=False,
    final=Final(),
)
# One config per name of `msrnet._catalogue.DEGRADATION_PRESETS` (bicubic, web, real), in its order.
PRESETS: dict[str, DegradationConfig] = dict(zip(DEGRADATION_PRESETS, (_BICUBIC, _WEB, _REAL), strict=True))




def load_degradation(spec: str | Path | DegradationConfig) -> DegradationConfig:
    """A `DegradationConfig` from a preset name (`PRESETS`), a JSON file of its fields, or
    itself.

    The file is read by msrnet's bounded JSON reader (`msrnet._utils.read_json`: a regular
    file of at most 1 MiB, nested at most 32 deep), and holds at most `MAX_STAGES` stages whose
    resizes multiply to at most `MAX_GROWTH`.

    Raises:
        ValueError: an unknown name, or a file that is missing, not a regular file, too large,
            or not a valid config (one line naming the file and the field).
    """
    if isinstance(spec, DegradationConfig):
        return spec
    name = str(spec)
    if name in PRESETS:
        return PRESETS[name]
    path = Path(name)
    if path.suffix.lower() != ".json":
        raise ValueError(
            f"unknown degradation {name!r}: use a preset ({', '.join(PRESETS)}) or a .json file of "
            f"DegradationConfig fields"
        )
    values = read_json(path, "JSON file")
    try:
        return typing.cast(DegradationConfig, from_json(DegradationConfig, values, max_items=MAX_STAGES))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
