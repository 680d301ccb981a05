"""`TrainConfig`: everything a training run depends on (torch-free, so the CLI reads it fast)."""
from __future__ import annotations

import argparse
import json
import math
import re
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from msrnet._catalogue import DEGRADATION_PRESETS, LOSS_NAMES
from msrnet._typed import coerce, describe, type_hints

__all__ = [
    "TrainConfig",
    "RESUMABLE_FIELDS",
    "COMPILE_MODES",
    "config_diff",
    "config_from_dict",
    "field_defaults",
    "field_help",
    "float_list",
    "parse_loss",
]

# A config names a degradation preset or a .json file; whether that file holds a valid pipeline
# is left to `msrnet.train.train`, which has torch. The names of the losses and presets are the
# torch-free catalogue's, so that a config is checked without importing torch.


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"0.8*charbonnier+0.2*dssim"`` -> ``[(0.8, "charbonnier"), (0.2, "dssim")]``.

    Raises:
        ValueError: an unknown loss name, or a weight that is not a finite number >= 0.
    """
    terms = []
    for term in spec.replace(" ", "").split("+"):
        weight, _, name = term.rpartition("*")
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {name!r} in {spec!r}; choose from {sorted(LOSS_NAMES)}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"bad loss weight {weight!r} in {spec!r}: expected a number >= 0")
        terms.append((value, name))
    return terms


def float_list(value: str) -> tuple[float, ...]:
    """``"0.5,1"`` -> ``(0.5, 1.0)``: the argparse type of the list fields of `TrainConfig`
    (``betas``, ``level_weights``) in ``msrnet train`` and the example recipes.

    Raises:
        argparse.ArgumentTypeError: a part that is not a number.
    """
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` and in checkpoints.

    Args:
        train_dir: folder of HR training images (decoded once into memory on the device);
            an unreadable image is skipped with a warning that names it.
        train_images: use only the first this many images of ``train_dir`` (default: all).
        val_dir: folder of HR validation images (e.g. Set5); Y-PSNR every ``val_every`` steps.
        val_images: score only the first this many images of ``val_dir`` (default: all).
        output_dir: where checkpoints, weights and the log go.
        model: registered architecture (``msr_x2``, ``msr_x4``, ``msr_x8``); its scale is used.
        model_kwargs: constructor arguments of the model (widths, block counts, ...), JSON.
        init_weights: safetensors weights to start from: fine-tuning, or a larger scale
            warm-started from a smaller one's trunk
            (`~msrnet.models.weights.load_matching_weights`).
        max_steps: the run ends after this many optimizer steps.
        time_budget: seconds of training after which the run ends (with ``max_steps`` as a cap).
            The warm-up and cosine decay then run over training time rather than steps, so the
            run ends with its schedule complete. Every step counts, the first too (its
            compilation and autotuning: a compiled run pays for them); start-up (data),
            validation and checkpoints do not. The summary reports each.
        schedule_steps: length of the warm-up + cosine schedule (default: ``max_steps``); set it
            above ``max_steps`` to stop early on the same schedule and ``resume`` later.
        batch_size: patches per step per process.
        patch_size: LR patch side (the HR patch is ``scale`` times larger).
        lr: peak learning rate; the cosine decays it to ``lr * min_lr_ratio``.
        min_lr_ratio: the cosine's floor, as a fraction of ``lr``.
        warmup_steps: linear warm-up length, at most a tenth of the schedule. With a
            ``time_budget`` the warm-up is the first 5% of the budget instead.
        weight_decay: AdamW's weight decay (not applied to biases and other 1-D parameters).
        betas: AdamW's betas.
        loss: ``"l1"``, ``"charbonnier"``, ``"mse"``, ``"dssim"`` ((1 - SSIM) / 2, the seed's) or a weighted
            sum such as ``"0.8*charbonnier+0.2*dssim"``.
        level_weights: weight of each pyramid level's loss, coarse first (default: equal).
        grad_clip: max global gradient norm (0 disables clipping).
        ema_decay: EMA decay, reached after a warm-up of the decay (0 disables the EMA).
        augment: random flips and 90-degree rotations of the patches.
        min_scale: down-scaling augmentation of the HR images (1 disables it).
        degradation: how LR patches are made from HR patches, on the training device: a preset
            (``bicubic``, the benchmark protocol's clean LR; ``web``, mild noise and JPEG;
            ``real``, Real-ESRGAN's second-order blur, resize, noise and JPEG) or a JSON file of
            `~msrnet.data.degradations.DegradationConfig` fields.
        val_every: validation period in steps.
        ckpt_every: checkpoint period in steps.
        log_every: logging period in steps.
        device: ``"cuda"``, ``"cpu"``, ... (default: CUDA when available).
        amp: bf16 autocast where the hardware computes bf16 (CUDA; a CPU with AMX or AVX-512
            BF16, `msrnet.device.cpu_has_native_bf16`); elsewhere the run trains in fp32 and
            says so once. Loss, optimizer state and EMA stay fp32.
        compile: ``torch.compile`` the residual blocks (regional compilation, `compile_blocks`);
            None (the default) compiles on a CPU with a C++ compiler for inductor, where
            compiled steps ran 1.4x (fp32, AVX2) to 4.4x (bf16, AMX) as fast as fp32 eager ones,
            and not on CUDA.
        compile_mode: with ``compile``, None compiles the residual blocks (regional); a
            ``torch.compile`` mode (`COMPILE_MODES`, e.g. ``reduce-overhead``, which replays CUDA
            graphs) compiles the whole pyramid forward with that mode instead, since a graph
            that spans every block is what removes the launches between them.
        seed: seeds the model init and, with the process rank, the data streams.
        resume: a checkpoint file, or a folder holding ``checkpoint.pt``, to continue from.
            Only the run's length (``max_steps``, ``time_budget``) and its bookkeeping (the
            ``val_every``, ``ckpt_every`` and ``log_every`` periods, ``progress``,
            ``output_dir``) may differ from the settings stored in the checkpoint
            (`RESUMABLE_FIELDS`); the log names what changed, and any other change is refused.
        overwrite: start afresh in an ``output_dir`` that holds another run, replacing it
            (without it, or ``resume``, such a run is refused).
        progress: tqdm progress bar on stderr.
    """

    train_dir: str
    train_images: int | None = None
    val_dir: str | None = None
    val_images: int | None = None
    output_dir: str = "runs/train"
    model: str = "msr_x4"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None
    max_steps: int = 100_000
    time_budget: float | None = None
    schedule_steps: int | None = None
    batch_size: int = 32
    patch_size: int = 48
    lr: float = 2e-4
    min_lr_ratio: float = 0.01
    warmup_steps: int = 1000
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    loss: str = "charbonnier"
    level_weights: tuple[float, ...] | None = None
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    augment: bool = True
    min_scale: float = 1.0
    degradation: str = "bicubic"
    val_every: int = 1000
    ckpt_every: int = 1000
    log_every: int = 50
    device: str | None = None
    amp: bool = True
    compile: bool | None = None
    compile_mode: str | None = None
    seed: int = 0
    resume: str | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        """Check every field's type and range, so a bad setting fails here, by name, on one line.

        Values as JSON gives them are accepted where they are exact: an int for a float field,
        a list for a tuple. Nothing else is converted: ``"3"`` is not an int, ``"false"`` not a
        bool (it would be true), ``16.5`` not an int.

        Raises:
            ValueError: naming the first field that is wrong, what it needs and what it got.
        """
        hints = type_hints(TrainConfig)
        for f in fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), hints[f.name]))
        for name, rule in _RULES.items():
            value = getattr(self, name)
            if value is not None and not rule.test(value):
                raise ValueError(f"{name} must be {rule.text}, got {value!r}")
        if self.schedule_steps is not None and self.schedule_steps < self.max_steps:
            raise ValueError(
                f"schedule_steps ({self.schedule_steps}) must be >= max_steps ({self.max_steps})"
            )
        try:
            parse_loss(self.loss)
        except ValueError as e:
            raise ValueError(f"loss: {e}") from None
        try:
            json.dumps(self.model_kwargs, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model_kwargs must hold JSON values only: {e}") from None
        if self.degradation not in DEGRADATION_PRESETS and Path(self.degradation).suffix.lower() != ".json":
            # The words of `msrnet.data.degradations.load_degradation`, which reads the file.
            raise ValueError(
                f"unknown degradation {self.degradation!r}: use a preset ({', '.join(DEGRADATION_PRESETS)}) "
                f"or a .json file of DegradationConfig fields"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values (tuples become lists), as ``config.json`` stores it."""
        return json.loads(json.dumps(asdict(self)))


class _Rule(typing.NamedTuple):
    test: typing.Callable[[Any], bool]
    text: str


def _positive(value: Any) -> bool:
    return bool(value > 0)


def _non_negative(value: Any) -> bool:
    return bool(value >= 0)


def _unit(value: Any) -> bool:  # [0, 1)
    return bool(0 <= value < 1)


# The modes `torch.compile` accepts, for ``compile_mode``.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Ranges, checked after the types (None, where a field allows it, always passes).
_POSITIVE_INT = _Rule(_positive, "an integer >= 1")
_NON_EMPTY = _Rule(bool, "a non-empty string")
_RULES: dict[str, _Rule] = {
    "train_dir": _NON_EMPTY,
    "train_images": _POSITIVE_INT,
    "val_dir": _NON_EMPTY,
    "val_images": _POSITIVE_INT,
    "output_dir": _NON_EMPTY,
    "model": _NON_EMPTY,
    "init_weights": _NON_EMPTY,
    "max_steps": _POSITIVE_INT,
    "time_budget": _Rule(_positive, "a number of seconds > 0"),
    "schedule_steps": _POSITIVE_INT,
    "batch_size": _POSITIVE_INT,
    "patch_size": _POSITIVE_INT,
    "lr": _Rule(_positive, "a number > 0"),
    "min_lr_ratio": _Rule(lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "warmup_steps": _Rule(_non_negative, "an integer >= 0"),
    "weight_decay": _Rule(_non_negative, "a number >= 0"),
    "betas": _Rule(lambda v: all(map(_unit, v)), "two numbers in [0, 1)"),
    "loss": _NON_EMPTY,
    "level_weights": _Rule(lambda v: all(map(_non_negative, v)) and sum(v) > 0, "numbers >= 0, not all 0"),
    "grad_clip": _Rule(_non_negative, "a number >= 0 (0 disables clipping)"),
    "ema_decay": _Rule(_unit, "a number in [0, 1) (0 disables the EMA)"),
    "min_scale": _Rule(lambda v: 0 < v <= 1, "a number in (0, 1]"),
    # A preset or a .json name (`__post_init__`); whether the file holds a valid pipeline,
    # `train` checks (with torch).
    "degradation": _NON_EMPTY,
    "val_every": _POSITIVE_INT,
    "ckpt_every": _POSITIVE_INT,
    "log_every": _POSITIVE_INT,
    # A torch device string ("cuda", "cuda:1", "cpu"); whether it exists is known only at run time.
    "device": _Rule(lambda v: re.fullmatch(r"[a-z][a-z0-9_]*(:\d+)?", v) is not None,
                    "a device such as 'cuda', 'cuda:1' or 'cpu'"),
    "compile_mode": _Rule(lambda v: v in COMPILE_MODES, "one of " + ", ".join(COMPILE_MODES)),
    "seed": _Rule(_non_negative, "an integer >= 0"),
    "resume": _NON_EMPTY,
}


def _checked(name: str, value: Any, kind: Any) -> Any:
    """``value`` if it has the type ``kind`` (a field's annotation), as that type
    (`msrnet._typed.coerce`: exact only); else a ValueError that names the field and its type."""
    try:
        return coerce(kind, value, name)
    except ValueError:
        raise ValueError(f"{name} must be {describe(kind)}, got {value!r}") from None


def field_defaults() -> dict[str, Any]:
    """Each field's default, as JSON (``train_dir``, which has none, as None)."""
    values: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
        else:
            values[f.name] = None if f.default is MISSING else f.default
    return json.loads(json.dumps(values))


# What a resumed run may change: its length, how it starts, and its bookkeeping (how often it
# validates, checkpoints and logs, and where it reports), none of which changes the training.
RESUMABLE_FIELDS = frozenset(
    {
        "max_steps",
        "time_budget",
        "resume",
        "overwrite",
        "progress",
        "output_dir",
        "val_every",
        "ckpt_every",
        "log_every",
    }
)


def config_diff(stored: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{field: (stored value, new value)}`` for every field where ``config`` differs from a
    checkpoint's ``stored`` config, as JSON (fields the stored config lacks count at their
    defaults)."""
    new = config.to_dict()
    old = json.loads(json.dumps({**field_defaults(), **stored}))
    return {k: (old.get(k), new[k]) for k in new if old.get(k) != new[k]}


def config_from_dict(values: dict[str, Any], source: str | Path = "config") -> TrainConfig:
    """A `TrainConfig` from JSON values (``config.json``), refusing unknown fields.

    Raises:
        ValueError: an unknown or missing field, or a bad value (`TrainConfig` checks each);
            the message starts with ``source`` and names the field.
    """
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown TrainConfig fields {', '.join(unknown)}")
    if "train_dir" not in values:
        raise ValueError(f"{source}: train_dir is required")
    try:
        return TrainConfig(**values)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def field_help() -> dict[str, str]:
    """Each field's description, from the ``Args:`` section of `TrainConfig`'s docstring."""
    doc = (TrainConfig.__doc__ or "").split("Args:", 1)[-1]
    helps: dict[str, str] = {}
    name = None
    for line in doc.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 8 and ":" in stripped:
            name, _, text = stripped.partition(":")
            helps[name] = text.strip()
        elif name and indent > 8 and stripped:
            helps[name] += " " + stripped
    return helps
