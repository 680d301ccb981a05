"""`TrainConfig`: everything a training run depends on (torch-free, so the CLI reads it fast)."""
from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "RESUMABLE_FIELDS", "config_changes", "config_from_dict", "field_help"]


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
            run ends with its schedule complete. Start-up (data, the first step's compilation and
            autotuning), validation and checkpoints are not counted; the summary reports them.
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
        amp: bf16 autocast (CUDA only).
        compile: ``torch.compile`` the residual blocks (regional compilation, `compile_blocks`).
        seed: seeds the model init and, with the process rank, the data streams.
        resume: a checkpoint file, or a folder holding ``checkpoint.pt``, to continue from.
            Only the run's length (``max_steps``, ``time_budget``) may differ from the settings
            stored in the checkpoint (`RESUMABLE_FIELDS`); any other change is refused.
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
    compile: bool = False
    seed: int = 0
    resume: str | None = None
    overwrite: bool = False
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON values (tuples become lists), as ``config.json`` stores it."""
        return json.loads(json.dumps(asdict(self)))


# What a resumed run may change: its length, and how it starts and reports.
RESUMABLE_FIELDS = frozenset({"max_steps", "time_budget", "resume", "overwrite", "progress", "output_dir"})


def config_changes(stored: dict[str, Any], config: TrainConfig) -> list[str]:
    """Names of the fields where ``config`` differs from a checkpoint's ``stored`` config,
    besides `RESUMABLE_FIELDS` (fields the stored config lacks count at their defaults)."""
    new = config.to_dict()
    defaults = TrainConfig(train_dir="").to_dict()
    old = json.loads(json.dumps({**defaults, **stored}))
    return [k for k in new if k not in RESUMABLE_FIELDS and old.get(k) != new[k]]


def config_from_dict(values: dict[str, Any], source: str | Path = "config") -> TrainConfig:
    """A `TrainConfig` from JSON values (``config.json``), refusing unknown fields."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown TrainConfig fields {', '.join(unknown)}")
    hints = typing.get_type_hints(TrainConfig)
    cooked = dict(values)
    for name, value in values.items():
        if isinstance(value, list) and "tuple" in str(hints[name]):
            cooked[name] = tuple(value)
    if "train_dir" not in cooked:
        raise ValueError(f"{source}: train_dir is required")
    return TrainConfig(**cooked)


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
