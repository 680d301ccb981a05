"""The run: `TrainState` (what a checkpoint holds), `RunContext` (what stays fixed),
`train_step`, `validate`, `keep_best`, `save` and `train`.

One step: a batch of (LR, HR) patches is cut on the training device
(`~msrnet.data.InMemoryPatchSampler`), the model predicts every level of its pyramid
(``forward_pyramid``), and the loss is taken at every level against the HR patch down-scaled to
that level's size with MATLAB's bicubic ``imresize`` (`pyramid_loss`). AdamW with linear warm-up
and cosine decay (timm's scheduler), gradient clipping, a weight EMA (timm's ``ModelEmaV3``),
channels_last (oneDNN and cuDNN both run these convolutions faster in it), bf16 autocast where
the hardware computes bf16 (CUDA; CPUs with AMX or AVX-512 BF16: `msrnet.device`), optional
``torch.compile`` (inductor, on CUDA and on the CPU) of the residual blocks (`compile_blocks`).
Loss, optimizer state and EMA stay float32 under autocast.

Outputs in ``output_dir`` (written by rank 0 only)::

    config.json         the TrainConfig of the run
    log.jsonl           one JSON object per line (see docs/training.md)
    checkpoint.pt       the `TrainState` and every process's data stream (sha256-checked,
                        written atomically); resuming repeats the uninterrupted run exactly on
                        the CPU (on CUDA, cuDNN autotuning makes it close, not bitwise equal);
                        also the degradation pipeline the run read, which a resume must match
    best.safetensors    fp16 EMA weights with the best validation PSNR (the latest without
                        validation), `~msrnet.models.weights` metadata plus "step" and "psnr"
    .lock               held while the run trains (`~msrnet.train.outputs.lock_run_folder`)

Distributed: launched with ``torchrun``, each process trains on its own GPU (NCCL) or CPU
(gloo) with its own data stream; gradients are averaged by DDP; each process scores a share of
the validation images.
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from timm.optim import param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from msrnet.data.benchmark import BenchmarkDataset, Sample
from msrnet.data.degradations import DegradationConfig, check_degradation_memory, load_degradation
from msrnet.data.io import list_images
from msrnet.data.patches import InMemoryPatchSampler, load_images
from msrnet.evaluate import evaluate
from msrnet.models import PyramidForward, create_model
from msrnet.models.weights import load_matching_weights, save_weights

from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, CheckpointError, save_checkpoint
from .config import TrainConfig
from .losses import pyramid_loss
from .modes import amp_enabled, compile_blocks, compile_enabled, setup_distributed
from .outputs import LOG_NAME, WEIGHTS_NAME, RunLog, check_output_dir, lock_run_folder, prepare_output_dir
from .resume import Resume, resume_state

__all__ = [
    "TrainState", "RunContext", "train", "train_step", "validate", "keep_best", "save", "BUDGET_TICKS",
]

# With a time budget the schedule's position is the share of the budget spent, in these units.
BUDGET_TICKS = 10_000


class TrainState:
    """Everything that changes from step to step, with one owner.

    ``state_dict()`` / ``load_state_dict()`` are what a checkpoint stores of it; the data
    stream and the torch RNGs are per process (`rng_state`), gathered by `save`.

    Attributes:
        model: the network being trained.
        ema: its weight EMA, or None.
        optimizer, scheduler: AdamW and the warm-up + cosine schedule.
        sampler: this process's patch stream.
        step: optimizer steps taken.
        best_psnr: the best validation Y-PSNR so far (-inf before any).
        train_seconds: training time spent, as the time budget counts it.
    """

    def __init__(
        self,
        model: nn.Module,
        ema: ModelEmaV3 | None,
        optimizer: torch.optim.Optimizer,
        scheduler: CosineLRScheduler,
        sampler: InMemoryPatchSampler,
    ) -> None:
        self.model, self.ema = model, ema
        self.optimizer, self.scheduler, self.sampler = optimizer, scheduler, sampler
        self.step = 0
        self.best_psnr = -math.inf
        self.train_seconds = 0.0

    @property
    def scored(self) -> nn.Module:
        """The weights that are validated and exported: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "best_psnr": self.best_psnr,
            "train_seconds": self.train_seconds,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if state["ema"] is None:
                raise CheckpointError("the checkpoint holds no EMA weights but ema_decay > 0")
            self.ema.load_state_dict(state["ema"])
        self.step, self.best_psnr = int(state["step"]), float(state["best_psnr"])
        self.train_seconds = float(state["train_seconds"])

    def rng_state(self) -> dict[str, Any]:
        """This process's random streams: the patch sampler's and torch's."""
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "sampler": self.sampler.state_dict(),
        }

    def load_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available():
            for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state, index)
        self.sampler.load_state_dict(state["sampler"])


@dataclass(frozen=True)
class RunContext:
    """What stays fixed during a run, beside `TrainState`, which holds what changes.

    `train` builds it once; `train_step`, `validate`, `keep_best` and `save` read it.

    Attributes:
        config: the run's settings.
        rank, world: this process's rank and the number of processes (1 without torchrun).
        device: this process's device.
        out_dir: the run folder (``config.output_dir``).
        arch: the architecture, ``config.model`` without its tag; exported weights name it.
        scale: the model's super-resolution factor.
        net: what a step calls: the model routed to ``forward_pyramid``, under DDP when
            ``world > 1``.
        log: the run's ``log.jsonl``.
        val_items: the validation images, or None without validation.
        amp: whether steps run under bf16 autocast (``config.amp`` where the hardware computes
            bf16, `amp_enabled`).
        compiled: whether the model is compiled (`compile_enabled`).
        degradation: the pipeline ``config.degradation`` resolved to when the run started
            (`~msrnet.data.degradations.DegradationConfig.to_dict`); checkpoints record it, so
            a resume can refuse a degradation file whose content has changed.
    """

    config: TrainConfig
    rank: int
    world: int
    device: torch.device
    out_dir: Path
    arch: str
    scale: int
    net: nn.Module
    log: RunLog
    val_items: tuple[Sample, ...] | None
    amp: bool = False
    compiled: bool = False
    degradation: dict[str, Any] = field(default_factory=dict)

    @property
    def main(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0


def train_step(state: TrainState, run: RunContext, lr: Tensor, hr: Tensor) -> Tensor:
    """One optimizer step on a batch ``lr`` ``(B, 3, p, p)``, ``hr`` ``(B, 3, s*p, s*p)``.

    Returns:
        The batch's loss, detached (a scalar tensor on the device: no host sync).
    """
    config = run.config
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.amp)
    if run.compiled and config.compile_mode is not None:
        # Each step is a new iteration for CUDA graph trees (whose replays reuse the last one's
        # output memory); without CUDA graphs this only counts.
        torch.compiler.cudagraph_mark_step_begin()
    with autocast:
        outputs = run.net(lr.contiguous(memory_format=torch.channels_last))
    loss = pyramid_loss(outputs, hr, config.loss, config.level_weights)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), config.grad_clip)
    state.optimizer.step()
    state.step += 1
    if state.ema is not None:
        state.ema.update(state.model, step=state.step)
    return loss.detach()


def validate(state: TrainState, run: RunContext) -> dict[str, float]:
    """``{"psnr", "ssim"}``: Y-PSNR / SSIM of the scored weights over the validation images.

    Every process scores its share of the images: sharing the work keeps the other ranks from
    idling in a collective (and hitting its timeout) while one scores a long validation set.
    Changes nothing: `keep_best` decides what the scores mean for the weights.
    """
    assert run.val_items is not None
    shard = run.val_items[run.rank :: run.world]
    sums = torch.zeros(3, dtype=torch.float64)
    if shard:
        # Eager: compiled blocks are specialised to the training patch (without an EMA they are
        # the scored model's), and every validation image has its own size.
        with torch.compiler.set_stance("force_eager"):
            result = evaluate(state.scored, shard, run.scale, run.device, progress=False)
        sums += torch.tensor([result["psnr"], result["ssim"], 1.0], dtype=torch.float64) * len(shard)
    if run.world > 1:
        sums = sums.to(run.device)
        dist.all_reduce(sums)
    psnr, ssim = (sums[:2] / sums[2]).tolist()
    return {"psnr": psnr, "ssim": ssim}


def keep_best(state: TrainState, run: RunContext, psnr: float | None) -> bool:
    """Export the scored weights as ``best.safetensors`` (rank 0) when they are the best so far:
    a validation ``psnr`` over ``state.best_psnr`` (which it becomes), or, in a run without
    validation (``psnr`` None), the latest. Returns whether they were kept."""
    if psnr is not None:
        if psnr <= state.best_psnr:
            return False
        state.best_psnr = psnr
    if run.main:
        extra: dict[str, Any] = {"step": state.step}
        if psnr is not None:
            extra["psnr"] = f"{psnr:.4f}"
        save_weights(
            state.scored, run.out_dir / WEIGHTS_NAME, arch=run.arch, model_kwargs=run.config.model_kwargs, **extra
        )
    return True


def save(state: TrainState, run: RunContext) -> None:
    """Write the checkpoint (rank 0, with every process's data stream)."""
    rng = state.rng_state()
    if run.world > 1:
        gathered: list[Any] = [None] * run.world
        dist.all_gather_object(gathered, rng)
    else:
        gathered = [rng]
    if run.main:
        payload = {
            "format": CHECKPOINT_FORMAT, "config": run.config.to_dict(), "degradation": run.degradation,
            **state.state_dict(), "rng": gathered,
        }
        save_checkpoint(payload, run.out_dir / CHECKPOINT_NAME)


def _seed_for(seed: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def _check_degradation_memory(config: TrainConfig, pipeline: DegradationConfig) -> None:
    """The run's degradation ``pipeline`` must fit
    `~msrnet.data.degradations.check_degradation_memory` at its batch and patch size. Pure
    arithmetic, before any image is loaded: the model is built on the meta device for its
    scale.

    Raises:
        ValueError: over the limit, or a model that cannot be built (one line).
    """
    with torch.device("meta"):
        scale = int(cast(int, _build_model(config).scale))
    hr = config.patch_size * scale
    try:
        check_degradation_memory(pipeline, config.batch_size, 3, (hr, hr), scale)
    except ValueError as e:
        raise ValueError(f"degradation {config.degradation}: {e}") from None


def _build_model(config: TrainConfig) -> nn.Module:
    try:
        return create_model(config.model, **config.model_kwargs)
    except TypeError as e:  # an unknown constructor argument
        raise ValueError(f"model_kwargs {config.model_kwargs} do not fit {config.model}: {e}") from None


def train(config: TrainConfig) -> dict[str, Any]:
    """Train a model as ``config`` says; returns a summary.

    Every check (the config, the output folder, the checkpoint to resume and its settings) runs
    before anything is written, so a refused run leaves ``output_dir`` as it was.

    Returns:
        ``{"step", "loss", "best_psnr", "seconds", "checkpoint", "weights", "output_dir"}``
        (``loss`` the mean of the last logging interval, ``best_psnr`` None without validation,
        ``seconds`` the wall-clock split: ``train`` (what the budget counts), ``startup`` (data,
        model and the first step, compilation included), ``validation``, ``checkpoint``,
        ``total``).

    Raises:
        ValueError: a bad setting, or an ``output_dir`` that is a file, holds another run, or
            is in use by another training (`~msrnet.train.outputs.lock_run_folder`).
        CheckpointError: the checkpoint to resume is damaged or was written with other settings
            (or another degradation pipeline).
        FileNotFoundError: no (readable) training images, or no checkpoint to resume.
    """
    # Each setting was checked when the TrainConfig was built (`TrainConfig.__post_init__`);
    # what needs torch or the file system is checked next, before any work.
    # The one setting `TrainConfig` leaves to the trainer: a ``degradation`` .json file must
    # exist and hold a valid pipeline, which takes torch to read (presets were checked by name).
    # It is read once: the run trains with, and its checkpoints record, what it read now.
    pipeline = load_degradation(config.degradation)
    resumed = resume_state(config, pipeline.to_dict())
    _check_degradation_memory(config, pipeline)
    out_dir = Path(config.output_dir)
    # Ranks other than 0 belong to the run whose rank 0 takes the lock: they do not probe it.
    check_output_dir(out_dir, resumed is not None, config.overwrite, locked=os.environ.get("RANK", "0") != "0")
    rank, world, device, created_group = setup_distributed(config.device)
    # The run autotunes cuDNN for its fixed patch shapes (`_build_state`); the process gets its
    # own setting back, for whatever it runs next.
    cudnn_benchmark = torch.backends.cudnn.benchmark
    try:
        # One training per run folder: a second one into the same folder stops here.
        with lock_run_folder(out_dir, active=rank == 0):
            # Again under the lock: a run may have finished in the folder since the check.
            check_output_dir(out_dir, resumed is not None, config.overwrite, locked=True)
            return _train(config, rank, world, device, resumed, pipeline)
    finally:
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if created_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    rank: int,
    world: int,
    device: torch.device,
    resumed: Resume | None,
    pipeline: DegradationConfig,
) -> dict[str, Any]:
    """Build the run, restore the checkpoint it resumes, start its folder, and train."""
    run_start = time.perf_counter()
    state = _build_state(config, rank, device, pipeline)
    scale = cast(int, state.model.scale)
    compiled = compile_enabled(config, device)
    net = _build_net(state.model, config, world, device, compiled)
    val_items = _validation_items(config, scale)
    if resumed is not None:
        _restore(state, resumed, config, rank, world)
    # Every check has passed: only now is the run folder touched.
    log = _start_run_folder(state, config, resumed, rank == 0, world)
    arch = config.model.split(".", 1)[0]
    amp, reason = amp_enabled(config, device)
    if config.amp and not amp and rank == 0:
        print(f"msrnet train: training in float32, not bf16: {reason}", file=sys.stderr)
    run = RunContext(
        config, rank, world, device, Path(config.output_dir), arch, scale, net, log, val_items, amp, compiled,
        pipeline.to_dict(),
    )
    try:
        return _loop(state, run, run_start)
    finally:
        log.close()


def _build_state(config: TrainConfig, rank: int, device: torch.device, pipeline: DegradationConfig) -> TrainState:
    """The model (one init on every rank, warm-started from ``init_weights``), this rank's
    patch stream (degraded by ``pipeline``, ``config.degradation`` as the run read it), AdamW,
    the schedule and the EMA; the torch RNG is left seeded for ``rank``."""
    main = rank == 0
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch shapes; `train` restores it

    # Same init everywhere (DDP also broadcasts rank 0's); the data streams differ per rank.
    torch.manual_seed(config.seed)
    model = _build_model(config)
    if config.init_weights:
        loaded, left = load_matching_weights(model, config.init_weights)
        if main and left:
            print(
                f"msrnet train: {loaded} tensors from {config.init_weights}; "
                f"{len(left)} keep their initialization ({', '.join(left[:4])}{', ...' if len(left) > 4 else ''})",
                file=sys.stderr,
            )
    scale = cast(int, model.scale)
    rank_seed = _seed_for(config.seed, rank)
    torch.manual_seed(rank_seed)
    model.to(device).to(memory_format=torch.channels_last)

    train_files = list_images(config.train_dir)[: config.train_images]
    images = load_images(train_files, progress=config.progress and main, skip_unreadable=True) if train_files else []
    if not images:
        raise FileNotFoundError(f"no readable training images in {config.train_dir}")
    sampler = InMemoryPatchSampler(
        images,
        scale,
        config.patch_size,
        config.batch_size,
        augment=config.augment,
        min_scale=config.min_scale,
        device=device,
        seed=rank_seed,
        degradation=pipeline,
    )

    # No weight decay on biases and other 1-D parameters; the fused kernel on CUDA.
    optimizer = torch.optim.AdamW(
        param_groups_weight_decay(model, config.weight_decay),
        lr=config.lr,
        betas=config.betas,
        fused=device.type == "cuda",
    )
    if config.time_budget is None:
        schedule_steps = config.schedule_steps or config.max_steps
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
    ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=True, warmup_power=3 / 4) if config.ema_decay > 0 else None
    return TrainState(model, ema, optimizer, scheduler, sampler)


def _build_net(model: nn.Module, config: TrainConfig, world: int, device: torch.device, compiled: bool) -> nn.Module:
    """What a step calls: ``model`` (with ``compiled``, its blocks compiled, or the whole
    forward with ``config.compile_mode``) routed to ``forward_pyramid``, under DDP when there
    are several processes.

    Called after the EMA's deep copy, so that only the trained model compiles.
    """
    if compiled and config.compile_mode is None:
        compile_blocks(model)
    net: nn.Module = PyramidForward(model)
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if compiled and config.compile_mode is not None:
        # The whole forward in one graph: CUDA graphs (reduce-overhead) then replay every
        # block's kernels with one launch. The wrapper holds no parameters of its own, so
        # checkpoints and exported weights keep their names.
        net = cast(nn.Module, torch.compile(net, mode=config.compile_mode, dynamic=False))
    return net


def _validation_items(config: TrainConfig, scale: int) -> tuple[Sample, ...] | None:
    """The first ``val_images`` samples of ``val_dir`` (LR by the protocol's bicubic), or None
    without validation."""
    if not config.val_dir:
        return None
    val_set = BenchmarkDataset(config.val_dir, scale)
    return tuple(val_set[i] for i in range(min(len(val_set), config.val_images or len(val_set))))


def _restore(state: TrainState, resumed: Resume, config: TrainConfig, rank: int, world: int) -> None:
    """Load the checkpoint into ``state``, and this rank's data stream where the process count
    is the checkpoint's (else reseed it: the run then does not repeat exactly)."""
    checkpoint = resumed.checkpoint
    state.load_state_dict(checkpoint)
    if len(checkpoint["rng"]) == world:
        state.load_rng_state(checkpoint["rng"][rank])
    else:
        warnings.warn(
            f"checkpoint was written by {len(checkpoint['rng'])} processes, now {world}: "
            f"data streams are reseeded, so the run will not repeat exactly",
            stacklevel=4,
        )
        state.sampler.generator.manual_seed(_seed_for(config.seed + state.step, rank))
    if state.step >= config.max_steps:
        warnings.warn(
            f"checkpoint is at step {state.step} >= max_steps {config.max_steps}: nothing to do",
            stacklevel=4,
        )


def _start_run_folder(
    state: TrainState, config: TrainConfig, resumed: Resume | None, main: bool, world: int
) -> RunLog:
    """Write ``config.json`` (rank 0) and open ``log.jsonl``; a resumed run logs what it changed."""
    out_dir = Path(config.output_dir)
    if main:
        prepare_output_dir(out_dir, config.to_dict(), config.overwrite and resumed is None)
    if world > 1:
        dist.barrier()
    log = RunLog(out_dir / LOG_NAME, main, state.step if resumed is not None else None)
    if resumed is not None:
        # What the resumed run does differently is on record, in the log and on the console.
        changed = {k: {"from": old, "to": new} for k, (old, new) in resumed.changed.items()}
        log.write({"event": "resume", "step": state.step, "checkpoint": str(resumed.path), "changed": changed})
        if main and changed:
            details = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in resumed.changed.items())
            print(f"msrnet train: resuming {resumed.path} at step {state.step} with {details}", file=sys.stderr)
    return log


class _Interval:
    """The training steps since the last ``train`` log line: their summed loss (on the device,
    so that no step waits for the host) and their training time."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.steps = 0
        self.start = time.perf_counter()

    def restart(self) -> None:
        self.loss_sum.zero_()
        self.steps, self.start = 0, time.perf_counter()


def _schedule_position(state: TrainState, config: TrainConfig) -> int:
    """Where the learning-rate schedule stands: the step, or with a time budget its share spent."""
    if config.time_budget is None:
        return state.step
    return min(BUDGET_TICKS, int(BUDGET_TICKS * state.train_seconds / config.time_budget))


def _finished(state: TrainState, config: TrainConfig) -> bool:
    budget = config.time_budget
    return state.step >= config.max_steps or (budget is not None and state.train_seconds >= budget)


def _progress_bar(state: TrainState, run: RunContext) -> tqdm:
    """Steps done of ``max_steps``, or with a time budget its seconds spent."""
    budget = run.config.time_budget
    return tqdm(
        total=run.config.max_steps if budget is None else round(budget),
        initial=state.step if budget is None else round(state.train_seconds),
        desc=f"train {run.arch}",
        unit="step" if budget is None else "s",
        dynamic_ncols=True,
        disable=not (run.config.progress and run.main),
        file=sys.stderr,
    )


def _timed_step(state: TrainState, run: RunContext, interval: _Interval, first: bool) -> float:
    """One training step on a fresh batch; returns its host seconds, which the budget counts.

    On CUDA the host runs at most a queue's length ahead of the GPU; the first step of a process
    (compilation, autotuning) is waited for, so that it counts against the budget whole.
    """
    step_start = time.perf_counter()
    lr_patch, hr_patch = state.sampler.sample()
    interval.loss_sum += train_step(state, run, lr_patch, hr_patch)
    interval.steps += 1
    if first and run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    seconds = time.perf_counter() - step_start
    state.train_seconds += seconds
    return seconds


def _log_train(state: TrainState, run: RunContext, interval: _Interval) -> float:
    """Write the interval's ``train`` line (mean loss over every process, throughput) and start
    the next interval; returns the mean loss."""
    if run.world > 1:
        dist.all_reduce(interval.loss_sum)
    elapsed = max(time.perf_counter() - interval.start, 1e-9)
    loss = interval.loss_sum.item() / (interval.steps * run.world)
    run.log.write(
        {
            "event": "train",
            "step": state.step,
            "loss": loss,
            "lr": state.optimizer.param_groups[0]["lr"],
            "samples_per_s": interval.steps * run.config.batch_size * run.world / elapsed,
            "train_seconds": round(state.train_seconds, 3),
        }
    )
    interval.restart()
    return loss


def _loop(state: TrainState, run: RunContext, run_start: float) -> dict[str, Any]:
    """Step until ``max_steps`` or the time budget; log, validate (keeping the best weights) and
    checkpoint on their periods and at the end. Returns `train`'s summary."""
    config = run.config
    state.scheduler.step_update(_schedule_position(state, config))
    bar = _progress_bar(state, run)
    state.model.train()
    interval = _Interval(run.device)
    last_loss, last_psnr = math.nan, None
    timings = {"startup": 0.0, "first_step": 0.0, "validation": 0.0, "checkpoint": 0.0}
    first = True
    while not _finished(state, config):
        step_start = time.perf_counter()
        seconds = _timed_step(state, run, interval, first)
        if first:
            # The first step holds compilation and autotuning: not in the log's throughput.
            timings["startup"], timings["first_step"] = step_start - run_start, seconds
            interval.start, first = time.perf_counter(), False
        bar.update(1 if config.time_budget is None else min(seconds, max(0.0, config.time_budget - bar.n)))
        state.scheduler.step_update(_schedule_position(state, config))

        done = _finished(state, config)
        if state.step % config.log_every == 0 or done:
            last_loss = _log_train(state, run, interval)
            postfix = {"step": str(state.step), "loss": f"{last_loss:.4f}", "lr": f"{state.optimizer.param_groups[0]['lr']:.2e}"}
            if last_psnr is not None:
                postfix["psnr"] = f"{last_psnr:.2f}"
            bar.set_postfix(postfix, refresh=False)
        paused = time.perf_counter()
        if run.val_items is not None and (state.step % config.val_every == 0 or done):
            scores = validate(state, run)
            run.log.write({"event": "val", "step": state.step, **scores})
            last_psnr = scores["psnr"]
            keep_best(state, run, last_psnr)
            timings["validation"] += time.perf_counter() - paused
        checkpoint_start = time.perf_counter()
        if state.step % config.ckpt_every == 0 or done:
            save(state, run)
            if run.val_items is None:
                keep_best(state, run, None)  # without validation, the latest weights
            timings["checkpoint"] += time.perf_counter() - checkpoint_start
        interval.start += time.perf_counter() - paused  # throughput counts training time only
    bar.close()
    return _summary(state, run, last_loss, timings, run_start)


def _summary(
    state: TrainState, run: RunContext, last_loss: float, timings: dict[str, float], run_start: float
) -> dict[str, Any]:
    """`train`'s return value (its docstring has the keys)."""
    return {
        "step": state.step,
        "loss": last_loss,
        "best_psnr": state.best_psnr if state.best_psnr > -math.inf else None,
        "seconds": {
            "train": round(state.train_seconds, 2),
            **{k: round(v, 2) for k, v in timings.items()},
            "total": round(time.perf_counter() - run_start, 2),
        },
        "amp_bf16": run.amp,
        "compiled": run.compiled,
        "checkpoint": str(run.out_dir / CHECKPOINT_NAME),
        "weights": str(run.out_dir / WEIGHTS_NAME),
        "output_dir": str(run.out_dir),
    }
