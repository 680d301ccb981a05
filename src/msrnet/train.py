"""The reference trainer: `TrainConfig` and `train`.

One step: a batch of (LR, HR) patches is cut on the training device
(`~msrnet.data.InMemoryPatchSampler`), the model predicts every level of its pyramid
(``forward_pyramid``), and the loss is taken at every level against the HR patch down-scaled to
that level's size with MATLAB's bicubic ``imresize``. AdamW with linear warm-up and cosine decay
(timm's scheduler), gradient clipping, a weight EMA (timm's ``ModelEmaV3``), bf16 autocast and
channels_last on CUDA, optional ``torch.compile``.

Outputs in ``output_dir`` (written by rank 0 only)::

    config.json         the TrainConfig of the run
    log.jsonl           one JSON object per line (see docs/training.md)
    checkpoint.pt       everything needed to resume exactly (sha256-checked, written atomically)
    best.safetensors    fp16 EMA weights with the best validation PSNR (the latest without
                        validation), metadata {"arch", "scale", "model_kwargs", "step", "psnr"}

Distributed: launched with ``torchrun``, each process trains on its own GPU (NCCL) or CPU
(gloo) with its own data stream; gradients are averaged by DDP.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from timm.optim import param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from msrnet.data.benchmark import BenchmarkDataset
from msrnet.data.io import list_images
from msrnet.data.patches import InMemoryPatchSampler
from msrnet.evaluate import evaluate
from msrnet.metrics import ssim_per_plane
from msrnet.models import create_model
from msrnet.ops.imresize import imresize

__all__ = [
    "TrainConfig",
    "train",
    "pyramid_loss",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "LOSSES",
]

CHECKPOINT_NAME = "checkpoint.pt"
# With a time budget the schedule's position is the share of the budget spent, in these units.
BUDGET_TICKS = 10_000
WEIGHTS_NAME = "best.safetensors"
LOG_NAME = "log.jsonl"


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` and in checkpoints.

    Args:
        train_dir: folder of HR training images (decoded once into memory on the device).
        train_images: use only the first this many images of ``train_dir`` (default: all).
        val_dir: folder of HR validation images (e.g. Set5); Y-PSNR every ``val_every`` steps.
        val_images: score only the first this many images of ``val_dir`` (default: all).
        output_dir: where checkpoints, weights and the log go.
        model: registered architecture (``msr_x2``, ``msr_x4``, ``msr_x8``); its scale is used.
        model_kwargs: constructor arguments of the model (widths, block counts, ...).
        init_weights: safetensors weights to start from: fine-tuning, or a larger scale warm-
            started from a smaller one's trunk (`load_init_weights`).
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
        warmup_steps: linear warm-up length, at most a tenth of the schedule. With a
            ``time_budget`` the warm-up is the first 5% of the budget instead.
        weight_decay, betas: AdamW's.
        loss: ``"l1"``, ``"charbonnier"``, ``"dssim"`` ((1 - SSIM) / 2, the seed's) or a weighted
            sum such as ``"0.8*charbonnier+0.2*dssim"``.
        level_weights: weight of each pyramid level's loss, coarse first (default: equal).
        grad_clip: max global gradient norm (0 disables clipping).
        ema_decay: EMA decay, reached after a warm-up of the decay (0 disables the EMA).
        augment: random flips and 90-degree rotations of the patches.
        min_scale: down-scaling augmentation of the HR images (1 disables it).
        val_every, ckpt_every, log_every: periods in steps.
        device: ``"cuda"``, ``"cpu"``, ... (default: CUDA when available).
        amp: bf16 autocast (CUDA only).
        compile: ``torch.compile`` the training forward.
        seed: seeds the model init and, with the process rank, the data streams.
        resume: a checkpoint file, or a folder holding ``checkpoint.pt``, to continue from.
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
    val_every: int = 1000
    ckpt_every: int = 1000
    log_every: int = 50
    device: str | None = None
    amp: bool = True
    compile: bool = False
    seed: int = 0
    resume: str | None = None
    progress: bool = True


# --- losses ----------------------------------------------------------------------------------
def _charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def _l1(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean()


def _dssim(pred: Tensor, target: Tensor) -> Tensor:
    """(1 - SSIM) / 2 over every RGB plane on [0, 1] (Wang's 11x11, sigma 1.5 window, valid region)."""
    if min(pred.shape[-2:]) < 11:
        raise ValueError(
            f"the dssim loss needs at least 11x11 pixels at every pyramid level, got "
            f"{tuple(pred.shape[-2:])}: use a larger patch_size"
        )
    planes = [t.flatten(0, 1).unsqueeze(1) for t in (pred, target)]  # (B*C, 1, H, W)
    return (1 - ssim_per_plane(*planes, data_range=1.0).mean()) / 2


LOSSES = {"l1": _l1, "charbonnier": _charbonnier, "dssim": _dssim}


def _parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"0.8*charbonnier+0.2*dssim"`` -> ``[(0.8, "charbonnier"), (0.2, "dssim")]``."""
    terms = []
    for term in spec.replace(" ", "").split("+"):
        weight, _, name = term.rpartition("*")
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r} in {spec!r}; choose from {sorted(LOSSES)}")
        try:
            terms.append((float(weight) if weight else 1.0, name))
        except ValueError:
            raise ValueError(f"bad loss weight {weight!r} in {spec!r}") from None
    return terms


def pyramid_loss(
    outputs: Sequence[Tensor],
    hr: Tensor,
    loss: str = "charbonnier",
    level_weights: Sequence[float] | None = None,
) -> Tensor:
    """Weighted loss over every pyramid level, each against ``hr`` bicubic-resized to its size.

    Args:
        outputs: ``forward_pyramid`` images, coarse first: ``(B, C, h_k, w_k)``, the last one
            the size of ``hr``.
        hr: HR target ``(B, C, H, W)`` in [0, 1].
        loss: loss spec (see `TrainConfig.loss`).
        level_weights: one weight per level (default: equal); normalised to sum to 1.

    Returns:
        Scalar float32 loss.
    """
    terms = _parse_loss(loss)
    weights = list(level_weights) if level_weights is not None else [1.0] * len(outputs)
    if len(weights) != len(outputs):
        raise ValueError(f"{len(weights)} level_weights for {len(outputs)} pyramid levels")
    total = hr.new_zeros(())
    for out, w in zip(outputs, weights):
        target = hr if out.shape[-2:] == hr.shape[-2:] else imresize(hr, size=tuple(out.shape[-2:]))
        out = out.float()
        total = total + w * sum(t_w * LOSSES[name](out, target) for t_w, name in terms)
    return total / sum(weights)


# --- checkpoints -----------------------------------------------------------------------------
_MAGIC = b"MSRNETCK"  # then 8 bytes payload length, 32 bytes sha256, the torch.save payload
_CHECKPOINT_FORMAT = 1  # version of the payload's keys


class CheckpointError(RuntimeError):
    """A checkpoint that is truncated, altered or not an msrnet checkpoint."""


def _atomic_write(path: Path, write: Any) -> None:
    """Write via ``write(tmp_path)`` then rename, so readers never see a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` (tensors and plain values) atomically, after a length and sha256 header."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = _MAGIC + len(payload).to_bytes(8, "little") + hashlib.sha256(payload).digest()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)

    _atomic_write(Path(path), write)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, refusing any that fails its integrity check.

    Raises:
        CheckpointError: not an msrnet checkpoint, truncated, or its sha256 does not match.
    """
    path = Path(path)
    data = path.read_bytes()
    head = len(_MAGIC) + 8 + 32
    if len(data) < head or not data.startswith(_MAGIC):
        raise CheckpointError(
            f"{path} is not an msrnet training checkpoint (or is truncated to {len(data)} bytes)"
        )
    length = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 8], "little")
    payload = data[head:]
    if len(payload) != length:
        raise CheckpointError(
            f"{path} is truncated or padded: {len(payload)} payload bytes, expected {length}; "
            f"refusing to resume from it"
        )
    if hashlib.sha256(payload).digest() != data[len(_MAGIC) + 8 : head]:
        raise CheckpointError(
            f"{path} is corrupted or was modified: sha256 mismatch; refusing to resume from it"
        )
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)


def load_init_weights(model: nn.Module, path: str | Path) -> tuple[int, list[str]]:
    """Start ``model`` from a weights file: every tensor whose name and shape match is copied.

    The same architecture loads whole (fine-tuning); a larger scale takes a smaller one's trunk
    (stem, the blocks of the shared levels), as EDSR warm-starts x4 from x2, and the rest keeps
    its initialization.

    Returns:
        How many tensors were loaded, and the names of the model's tensors left as they were.

    Raises:
        ValueError: not a ``.safetensors`` file, or no weight (beyond biases) of it fits ``model``.
    """
    if not str(path).endswith(".safetensors"):
        raise ValueError(f"init weights must be a .safetensors file, got {path}")
    own = model.state_dict()
    fits = {k: v for k, v in load_file(str(path)).items() if k in own and own[k].shape == v.shape}
    # Biases of the 3-channel image heads fit any model: only a matching weight means a trunk.
    if not any(v.ndim > 1 for v in fits.values()):
        raise ValueError(f"no weight of {path} fits {type(model).__name__}: wrong architecture?")
    model.load_state_dict(fits, strict=False)
    return len(fits), sorted(set(own) - set(fits))


def _export_weights(model: nn.Module, path: Path, metadata: dict[str, Any]) -> None:
    state = {
        k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()
    }
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    _atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


# --- RNG state -------------------------------------------------------------------------------
def _rng_state(sampler: InMemoryPatchSampler) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": np_state["state"]["pos"],
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "sampler": sampler.state_dict(),
    }


def _set_rng_state(state: dict[str, Any], sampler: InMemoryPatchSampler) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    sampler.load_state_dict(state["sampler"])


def _seed_for(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


# --- the run ---------------------------------------------------------------------------------
class _Pyramid(nn.Module):
    """Routes ``forward`` to ``forward_pyramid``, so DDP and torch.compile see the pyramid."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model.forward_pyramid(x)


def _setup_distributed(device: str | None) -> tuple[int, int, torch.device, bool]:
    """(rank, world_size, device, whether this call created the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    kind = torch.device(device).type if device else ("cuda" if torch.cuda.is_available() else "cpu")
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


class _Log:
    """The JSON-lines log; silent on ranks other than 0."""

    def __init__(self, path: Path, active: bool, resume_step: int | None) -> None:
        self.path, self.active = path, active
        if active and resume_step is not None and path.exists():
            # Lines past the checkpoint belong to the interrupted run and will be written again.
            kept = [
                line
                for line in path.read_text().splitlines()
                if json.loads(line)["step"] <= resume_step
            ]
            path.write_text("".join(line + "\n" for line in kept))
        elif active:
            path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        if self.active:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def train(config: TrainConfig) -> dict[str, Any]:
    """Train a model as ``config`` says; returns a summary.

    Returns:
        ``{"step", "loss", "best_psnr", "seconds", "checkpoint", "weights", "output_dir"}``
        (``loss`` the mean of the last logging interval, ``best_psnr`` None without validation,
        ``seconds`` the wall-clock split: ``train`` (what the budget counts), ``startup`` (data,
        model and the first step, compilation included), ``validation``, ``checkpoint``,
        ``total``).
    """
    schedule_steps = config.schedule_steps or config.max_steps
    if config.max_steps < 1 or schedule_steps < config.max_steps:
        raise ValueError(
            f"need 1 <= max_steps ({config.max_steps}) <= schedule_steps ({schedule_steps})"
        )
    if config.time_budget is not None and not config.time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds, got {config.time_budget}")
    _parse_loss(config.loss)  # fail before any work on a bad spec
    rank, world, device, created_group = _setup_distributed(config.device)
    try:
        return _train(config, schedule_steps, rank, world, device)
    finally:
        if created_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig, schedule_steps: int, rank: int, world: int, device: torch.device
) -> dict[str, Any]:
    run_start = time.perf_counter()
    main = rank == 0
    out_dir = Path(config.output_dir)
    cuda = device.type == "cuda"
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed patch shapes

    # Same init everywhere (DDP also broadcasts rank 0's); data and other RNGs differ per rank.
    torch.manual_seed(config.seed)
    model = create_model(config.model, **config.model_kwargs)
    if config.init_weights:
        loaded, left = load_init_weights(model, config.init_weights)
        if main and left:
            print(
                f"msrnet train: {loaded} tensors from {config.init_weights}; "
                f"{len(left)} keep their initialization ({', '.join(left[:4])}, ...)",
                file=sys.stderr,
            )
    scale = int(model.scale)
    rank_seed = _seed_for(config.seed, rank)
    random.seed(rank_seed)
    np.random.seed(rank_seed % 2**32)
    torch.manual_seed(rank_seed)
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    train_files = list_images(config.train_dir)[: config.train_images]
    if not train_files:
        raise FileNotFoundError(f"no training images in {config.train_dir}")
    sampler = InMemoryPatchSampler(
        train_files,
        scale,
        config.patch_size,
        config.batch_size,
        augment=config.augment,
        min_scale=config.min_scale,
        device=device,
        seed=rank_seed,
        progress=config.progress and main,
    )
    val_items = None
    if config.val_dir and main:
        val_set = BenchmarkDataset(config.val_dir, scale)
        val_items = [
            val_set[i] for i in range(min(len(val_set), config.val_images or len(val_set)))
        ]

    # No weight decay on biases and other 1-D parameters; the fused kernel on CUDA.
    optimizer = torch.optim.AdamW(
        param_groups_weight_decay(model, config.weight_decay),
        lr=config.lr,
        betas=config.betas,
        fused=cuda,
    )
    budget = config.time_budget
    if budget is None:
        schedule_length, warmup = schedule_steps, min(config.warmup_steps, schedule_steps // 10)
    else:
        schedule_length, warmup = BUDGET_TICKS, BUDGET_TICKS // 20
    scheduler = CosineLRScheduler(
        optimizer,
        t_initial=schedule_length - warmup,
        lr_min=config.lr * config.min_lr_ratio,
        warmup_t=warmup,
        warmup_lr_init=config.lr * 0.01,
        warmup_prefix=True,
        t_in_epochs=False,
    )
    ema = (
        ModelEmaV3(model, decay=config.ema_decay, use_warmup=True, warmup_power=3 / 4)
        if config.ema_decay > 0
        else None
    )
    net: nn.Module = _Pyramid(model)
    if config.compile:  # before the DDP wrap, as timm does
        net = torch.compile(net)
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if cuda else None)

    step, best_psnr, train_seconds = 0, -math.inf, 0.0
    resume_path = None
    if config.resume:
        resume_path = Path(config.resume)
        if resume_path.is_dir():
            resume_path = resume_path / CHECKPOINT_NAME
        state = load_checkpoint(resume_path)
        if state.get("format") != _CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{resume_path} has checkpoint format {state.get('format')}, "
                f"expected {_CHECKPOINT_FORMAT}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            if state["ema"] is None:
                raise CheckpointError(f"{resume_path} holds no EMA weights but ema_decay > 0")
            ema.load_state_dict(state["ema"])
        step, best_psnr = state["step"], state["best_psnr"]
        train_seconds = state.get("train_seconds", 0.0)
        if len(state["rng"]) == world:
            _set_rng_state(state["rng"][rank], sampler)
        else:
            warnings.warn(
                f"checkpoint was written by {len(state['rng'])} processes, now {world}: "
                f"data streams are reseeded, so the run will not repeat exactly",
                stacklevel=2,
            )
            sampler.generator.manual_seed(_seed_for(config.seed + step, rank))
        if step >= config.max_steps:
            warnings.warn(
                f"checkpoint is at step {step} >= max_steps {config.max_steps}: nothing to do",
                stacklevel=2,
            )

    def schedule_position() -> int:
        if budget is None:
            return step
        return min(BUDGET_TICKS, int(BUDGET_TICKS * train_seconds / budget))

    def finished() -> bool:
        return step >= config.max_steps or (budget is not None and train_seconds >= budget)

    scheduler.step_update(schedule_position())
    log = _Log(out_dir / LOG_NAME, main, step if resume_path else None)

    arch = config.model.split(".", 1)[0]

    def checkpoint() -> None:
        rng = _rng_state(sampler)
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if main:
            save_checkpoint(
                {
                    "format": _CHECKPOINT_FORMAT,
                    "config": asdict(config),
                    "step": step,
                    "train_seconds": train_seconds,
                    "best_psnr": best_psnr,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "rng": gathered,
                },
                out_dir / CHECKPOINT_NAME,
            )
            if val_items is None:
                export(None)

    def export(psnr: float | None) -> None:
        weights = ema.module if ema is not None else model
        metadata = {
            "arch": arch,
            "scale": str(scale),
            "model_kwargs": config.model_kwargs,
            "step": step,
        }
        if psnr is not None:
            metadata["psnr"] = f"{psnr:.4f}"
        _export_weights(weights, out_dir / WEIGHTS_NAME, metadata)

    def validate() -> float:
        nonlocal best_psnr
        scored = ema.module if ema is not None else model
        was_training = scored.training
        result = evaluate(scored, val_items, scale, device, progress=False)
        scored.train(was_training)
        log.write({"event": "val", "step": step, "psnr": result["psnr"], "ssim": result["ssim"]})
        if result["psnr"] > best_psnr:
            best_psnr = result["psnr"]
            export(best_psnr)
        return result["psnr"]

    bar = tqdm(
        total=config.max_steps if budget is None else round(budget),
        initial=step if budget is None else round(train_seconds),
        desc=f"train {arch}",
        unit="step" if budget is None else "s",
        dynamic_ncols=True,
        disable=not (config.progress and main),
        file=sys.stderr,
    )
    model.train()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and config.amp)
    loss_sum, interval_steps, interval_start = (
        torch.zeros((), device=device),
        0,
        time.perf_counter(),
    )
    last_loss, last_psnr = math.nan, None
    timings = {"startup": 0.0, "validation": 0.0, "checkpoint": 0.0}
    first_step = True
    while not finished():
        step_start = time.perf_counter()
        lr_patch, hr_patch = sampler.sample()
        with autocast:
            outputs = net(lr_patch.contiguous(memory_format=memory_format))
        loss = pyramid_loss(outputs, hr_patch, config.loss, config.level_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        if ema is not None:
            ema.update(model, step=step)
        loss_sum += loss.detach()
        interval_steps += 1
        if first_step:
            # Compilation and autotuning happen here: they do not count against the budget.
            if cuda:
                torch.cuda.synchronize(device)
            timings["startup"] = time.perf_counter() - run_start
            interval_start, first_step = time.perf_counter(), False
        else:
            # Host time; on CUDA the host runs at most a queue's length ahead of the GPU.
            seconds = time.perf_counter() - step_start
            train_seconds += seconds
            if budget is not None:
                bar.update(min(seconds, max(0.0, budget - bar.n)))
        if budget is None:
            bar.update(1)
        scheduler.step_update(schedule_position())

        done = finished()
        if step % config.log_every == 0 or done:
            if world > 1:
                dist.all_reduce(loss_sum)
            elapsed = max(time.perf_counter() - interval_start, 1e-9)
            last_loss = loss_sum.item() / (interval_steps * world)
            lr_now = optimizer.param_groups[0]["lr"]
            log.write(
                {
                    "event": "train",
                    "step": step,
                    "loss": last_loss,
                    "lr": lr_now,
                    "samples_per_s": interval_steps * config.batch_size * world / elapsed,
                    "train_seconds": round(train_seconds, 3),
                }
            )
            postfix = {"step": str(step), "loss": f"{last_loss:.4f}", "lr": f"{lr_now:.2e}"}
            if last_psnr is not None:
                postfix["psnr"] = f"{last_psnr:.2f}"
            bar.set_postfix(postfix, refresh=False)
            loss_sum.zero_()
            interval_steps, interval_start = 0, time.perf_counter()
        paused = time.perf_counter()
        if val_items is not None and (step % config.val_every == 0 or done):
            last_psnr = validate()
            timings["validation"] += time.perf_counter() - paused
        checkpoint_start = time.perf_counter()
        if step % config.ckpt_every == 0 or done:
            checkpoint()
            timings["checkpoint"] += time.perf_counter() - checkpoint_start
        interval_start += time.perf_counter() - paused  # throughput counts training time only
    bar.close()
    return {
        "step": step,
        "loss": last_loss,
        "best_psnr": best_psnr if best_psnr > -math.inf else None,
        "seconds": {
            "train": round(train_seconds, 2),
            **{k: round(v, 2) for k, v in timings.items()},
            "total": round(time.perf_counter() - run_start, 2),
        },
        "checkpoint": str(out_dir / CHECKPOINT_NAME),
        "weights": str(out_dir / WEIGHTS_NAME),
        "output_dir": str(out_dir),
    }
