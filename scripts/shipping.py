"""Release tooling: shipping trained weights in the source tree's weights folder -- where a run
starts, when its weights replace the shipped file, and the copy. Not part of the msrnet package.

`examples/train_291.py` (the recipe of the shipped weights) and `scripts/gpu_run.py` (which runs
that recipe on a GPU, one architecture at a time) follow the same rules, kept here; both import
it as ``shipping`` (this folder on ``sys.path``):

- A run of an architecture fine-tunes its shipped file for the tag (``<arch>.<tag>.safetensors``)
  or, for a tag with no file yet, the clean ``t291`` file of the same architecture. Weights the
  caller names explicitly come first. A medium architecture with no file of its own grows the
  small variant's file of the same scale (that tag's, else ``t291``) into its wider network,
  which then computes what the small one computes (`msrnet.models.widen`). With nothing
  shipped, the run starts from the weights it chains from (a smaller scale's trunk) or from
  scratch (`warm_start`).
- New weights replace the shipped file only if none ships, or if they score higher on every set
  and condition they are scored on: Set5 and Set14 with the benchmark protocol and, for weights
  trained on degraded inputs (the ``real`` tag), on every degraded benchmark condition too
  (`compare_with_shipped`). The shipped file is the bar whatever the run started from.
- A file of a larger variant that does not ship yet -- every medium file, and the full-size
  ones for degraded inputs (``real``) -- ships only if it also beats the small variant's shipped
  file of the same scale and tag (``msr_small_x4.real`` for ``msr_x4.real`` or
  ``msr_medium_x4.real``, ``msr_small_x4.t291`` for ``msr_medium_x4.t291``) on every score its
  tag is for: Set5 and Set14 for ``t291``, every (set, degraded condition) for the others. A
  file that a several times cheaper one beats where it is meant to be used has no reason to
  ship (`needs_small_bar`, `compare_with_small`). The full-size ``t291`` files shipped first
  and are what the headline calls load: one that improves on itself ships, whatever the small
  file scores.
- `ship` copies them into the weights folder and returns the sha256 that ``PRETRAINED_SHA256``
  (``msrnet._catalogue``) lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msrnet._utils import atomic_copy, sha256sum
from msrnet.data.degradations import load_degradation
from msrnet.evaluate import evaluate

__all__ = [
    "CLEAN_TAG",
    "SHIPPING_SETS",
    "DEGRADED_CONDITIONS",
    "WarmStart",
    "Verdict",
    "shipped_file",
    "warm_start",
    "compare_with_shipped",
    "small_variant",
    "needs_small_bar",
    "beats_on_every_degraded_condition",
    "compare_with_small",
    "ship",
]

# The tag of weights trained on the benchmark protocol's clean LR (on the 291 images).
CLEAN_TAG = "t291"
# The benchmark sets new weights are scored on, with the field's protocol.
SHIPPING_SETS = ("Set5", "Set14")
# The degraded inputs (`msrnet.data.degradations.BENCHMARK_CONDITIONS`) that weights trained on
# degraded LR are also scored on, each of which they must improve to be shipped.
DEGRADED_CONDITIONS = ("jpeg75", "jpeg50", "noise10", "noise5-jpeg75")

def shipped_file(arch: str, tag: str, package_dir: str | Path) -> Path:
    """The file ``package_dir`` ships for ``arch`` and ``tag``: ``<arch>.<tag>.safetensors``
    (which may not exist)."""
    return Path(package_dir) / f"{arch}.{tag}.safetensors"


@dataclass(frozen=True)
class WarmStart:
    """Where a run starts.

    Attributes:
        weights: the weights file to start from (a `TrainConfig`'s ``init_weights``), or
            None for a random init.
        finetune: whether they are shipped weights, which a run fine-tunes (at a lower
            learning rate in `examples/train_291.py`) rather than warm-starts from.
    """

    weights: str | None
    finetune: bool


def warm_start(
    arch: str, tag: str, package_dir: str | Path, *, init: str | None = None, chained: str | None = None
) -> WarmStart:
    """Where a run of ``arch`` whose weights ship as ``tag`` starts.

    Args:
        arch: a registered architecture, e.g. ``msr_x4``.
        tag: the tag its weights ship under (`CLEAN_TAG`; ``real`` for degradation-aware ones).
        package_dir: the weights folder (``src/msrnet/weights`` in a checkout).
        init: weights the caller chose: the run starts from them, whatever ships.
        chained: weights to start from when nothing ships, e.g. the smaller scale's, whose
            trunk a larger scale shares.

    Returns:
        ``init``; else the shipped ``<arch>.<tag>`` file, or for a new tag the shipped clean
        ``<arch>.t291`` file; else, for a medium ``arch``, the small variant's ``<tag>`` then
        ``t291`` file, grown by ``--init`` into the wider network (these ``finetune`` True:
        trained weights); else ``chained`` (None: from scratch).
    """
    if init is not None:
        return WarmStart(init, finetune=False)
    archs = [arch, small_variant(arch)] if _variant(arch) == "msr_medium" else [arch]
    for candidate in (shipped_file(a, t, package_dir) for a in archs for t in (tag, CLEAN_TAG)):
        if candidate.is_file():
            return WarmStart(str(candidate), finetune=True)
    return WarmStart(chained, finetune=False)


@dataclass(frozen=True)
class Verdict:
    """New weights scored against the shipped file.

    Attributes:
        scores: the new weights' `~msrnet.evaluate.evaluate` rows, keyed ``"<set>"`` (the
            benchmark protocol) or ``"<set>/<condition>"`` (a degraded input).
        shipped: the shipped file's rows under the same keys; None when none ships.
        replace: whether the new weights replace the shipped file: none ships, or every one of
            ``scores`` has a higher PSNR than the shipped file's.
    """

    scores: dict[str, dict[str, Any]]
    shipped: dict[str, dict[str, Any]] | None
    replace: bool


def _conditions(degradation: str) -> tuple[str | None, ...]:
    """What weights trained on ``degradation`` are scored on: the protocol (None), plus every
    degraded condition for weights trained on degraded inputs."""
    return (None,) if load_degradation(degradation).is_bicubic else (None, *DEGRADED_CONDITIONS)


def _scores(
    weights: Path, data_dir: Path, scale: int, device: str, conditions: tuple[str | None, ...]
) -> dict[str, dict[str, Any]]:
    """`evaluate` rows of ``weights`` on every shipping set and condition, keyed as `Verdict`'s."""
    return {
        name if condition is None else f"{name}/{condition}": evaluate(
            weights, data_dir / name, scale, device=device, progress=False, condition=condition or "clean"
        )
        for name in SHIPPING_SETS
        for condition in conditions
    }


def compare_with_shipped(
    weights: str | Path,
    arch: str,
    tag: str,
    package_dir: str | Path,
    data_dir: str | Path,
    scale: int,
    *,
    device: str = "cpu",
    degradation: str = "bicubic",
) -> Verdict:
    """Score ``weights`` and the shipped ``<arch>.<tag>`` file alike, and say whether to ship.

    Args:
        weights: the new weights (a run's ``best.safetensors``).
        arch, tag, package_dir: the shipped file to beat (`shipped_file`).
        data_dir: the folder holding `SHIPPING_SETS` (``Set5/``, ``Set14/``).
        scale: the super-resolution factor of ``arch``.
        device: where to score.
        degradation: what the new weights were trained on (a `TrainConfig`'s
            ``degradation``); anything but ``bicubic`` adds `DEGRADED_CONDITIONS` to the scores.
    """
    data_dir = Path(data_dir)
    conditions = _conditions(degradation)
    scores = _scores(Path(weights), data_dir, scale, device, conditions)
    target = shipped_file(arch, tag, package_dir)
    shipped = _scores(target, data_dir, scale, device, conditions) if target.is_file() else None
    replace = shipped is None or all(scores[key]["psnr"] > shipped[key]["psnr"] for key in scores)
    return Verdict(scores, shipped, replace)


def _variant(arch: str) -> str:
    """The variant of a registered msr architecture: ``msr_medium_x4`` -> ``msr_medium``."""
    variant, _, scale = arch.rpartition("_x")
    if variant not in ("msr", "msr_medium", "msr_small") or not scale.isdigit():
        raise ValueError(f"{arch!r} is not an msr architecture (msr[_medium|_small]_x<scale>)")
    return variant


def small_variant(arch: str) -> str:
    """The small variant of a larger architecture: ``msr_x4`` or ``msr_medium_x4`` -> ``msr_small_x4``."""
    if _variant(arch) == "msr_small":
        raise ValueError(f"{arch!r} is the small variant already")
    return "msr_small_x" + arch.rpartition("_x")[2]


def needs_small_bar(arch: str, tag: str) -> bool:
    """Whether weights of ``arch`` and ``tag`` ship only if they also beat the small variant's
    shipped file (`compare_with_small`): every medium file, and the full-size files of a tag
    other than `CLEAN_TAG` (``real``). Not the small files themselves, nor the full-size
    ``t291`` ones, which shipped first and are the headline calls'."""
    variant = _variant(arch)
    return variant == "msr_medium" or (variant == "msr" and tag != CLEAN_TAG)


def _degraded_keys() -> list[str]:
    """``"<set>/<condition>"`` for every shipping set and degraded condition."""
    return [f"{name}/{condition}" for name in SHIPPING_SETS for condition in DEGRADED_CONDITIONS]


def beats_on_every_degraded_condition(
    scores: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]]
) -> bool:
    """Whether ``scores`` has a higher PSNR than ``other`` on every (set, degraded condition):
    each ``"<set>/<condition>"`` of `SHIPPING_SETS` x `DEGRADED_CONDITIONS`. A key missing from
    ``scores`` fails (it was not shown to improve); one missing from ``other`` raises KeyError."""
    return _beats_on_every(scores, other, _degraded_keys())


def _beats_on_every(scores: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]], keys: list[str]) -> bool:
    """Whether ``scores`` has a higher PSNR than ``other`` under every one of ``keys`` (one
    missing from ``scores`` fails: it was not shown to improve)."""
    return all(key in scores and scores[key]["psnr"] > other[key]["psnr"] for key in keys)


def compare_with_small(
    scores: dict[str, dict[str, Any]],
    arch: str,
    tag: str,
    package_dir: str | Path,
    data_dir: str | Path,
    scale: int,
    *,
    device: str = "cpu",
) -> Verdict:
    """Weights of a larger variant against the small variant's shipped file of the same tag.

    Args:
        scores: the new weights' rows, keyed as `Verdict.scores` (a `compare_with_shipped` of
            the run has them all).
        arch: the larger architecture, e.g. ``msr_x4`` or ``msr_medium_x4``.
        tag: the tag both ship under.
        package_dir, data_dir, scale, device: as for `compare_with_shipped`.

    Returns:
        A `Verdict` whose ``shipped`` holds the small file's scores on what ``tag`` is for
        (`CLEAN_TAG`: Set5 and Set14 with the protocol; any other: every (set, degraded
        condition)), None when it does not ship, which sets no bar; ``replace`` says whether
        the new weights have a higher PSNR on every one of them.
    """
    target = shipped_file(small_variant(arch), tag, package_dir)
    if not target.is_file():
        return Verdict(scores, None, replace=True)
    conditions: tuple[str | None, ...] = (None,) if tag == CLEAN_TAG else DEGRADED_CONDITIONS
    small = _scores(target, Path(data_dir), scale, device, conditions)
    return Verdict(scores, small, _beats_on_every(scores, small, list(small)))


def ship(weights: str | Path, arch: str, tag: str, package_dir: str | Path) -> str:
    """Copy ``weights`` into ``package_dir`` as ``<arch>.<tag>.safetensors``; returns its sha256.

    The copy replaces the shipped file in one rename, so a reader never finds half a file.
    """
    return sha256sum(atomic_copy(weights, shipped_file(arch, tag, package_dir)))
