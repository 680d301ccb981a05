"""What a GPU session (``scripts/gpu_run.py``) trains, in which order, for how long, and which
of its weights files come back: the rules, apart from the running of them.

A session trains targets (`Target`): one weights file each, ``<variant>_x<scale>.<tag>``, step
c's in `training_queue` order, step f's in `real_queue` order. One order of worth, `rank`,
decides both what the deadline leaves out (`training_budget`: when the time left cannot give
every queued model its minimum, the least valuable go without) and which files fill the places
a device call brings back (`returned`):

1. the variant: msr, then msr_medium, then msr_small (`VARIANTS`). The GPU's time is worth what
   a file would cost without it: a full-size model has 17 times a small one's multiply-adds, a
   medium one 3.5 times, and the small files are the ones a CPU trains well. The full-size
   ``.t291`` files are also what the headline calls load;
2. within a variant, ``.t291`` before ``.real``: the next session's ``.real`` runs start from
   the best ``.t291`` weights;
3. within a tag, the order they train in: x8, x4, x2 for ``.t291`` (msr_x8 is the weakest file),
   x4, x2, x8 for ``.real`` (`REAL_ORDER`).
"""
from __future__ import annotations

from typing import NamedTuple

from shipping import CLEAN_TAG

__all__ = [
    "VARIANTS",
    "REAL_VARIANTS",
    "REAL_TAG",
    "MAX_OUT_FILES",
    "WEIGHT_PLACES",
    "Target",
    "training_queue",
    "real_queue",
    "rank",
    "share",
    "training_budget",
    "returned",
]

# The msr variants, most valuable first (`rank`): the order step c trains them in.
VARIANTS = ("msr", "msr_medium", "msr_small")
# Each variant's weight in sharing out the training time, relative to the full-size model of
# the same scale: the narrower ones are cheaper per step (a medium network has 4.8 times fewer
# multiply-adds than a full-size one; a small one's training step is 14 times cheaper), so a
# smaller share still buys them more steps.
VARIANT_SHARES = {"msr": 1.0, "msr_medium": 0.5, "msr_small": 0.25}
# Each scale's weight, in the order a variant's .t291 models train: x8 first and longest, since
# msr_x8 is the weakest file (below msr_small_x8 on the held-out sets) and the one the headline
# call loads; then x4, then x2. Fine-tuned from the shipped files, no scale needs a smaller
# one's trunk first.
BUDGET_SHARES = {8: 0.45, 4: 0.30, 2: 0.25}
T291_ORDER = (8, 4, 2)
# Step f's .real models: the variants that have no .real file of their own yet (msr_small's
# ship, trained on a CPU, and are the bar), x4 first (the scale of the shipped small .real file
# the issue names), each at this weight relative to its .t291 share.
REAL_VARIANTS = ("msr", "msr_medium")
REAL_ORDER = (4, 2, 8)
REAL_SHARE = 0.5
REAL_TAG = "real"
# What a device call brings back from --out: at most this many files; results.json and
# log.txt take two of them, the weights files the rest.
MAX_OUT_FILES = 8
WEIGHT_PLACES = MAX_OUT_FILES - 2


class Target(NamedTuple):
    """One weights file a session trains: ``<variant>_x<scale>.<tag>``."""

    variant: str
    scale: int
    tag: str = CLEAN_TAG

    @property
    def arch(self) -> str:
        """The registered architecture, e.g. ``msr_medium_x4``."""
        return f"{self.variant}_x{self.scale}"

    @property
    def name(self) -> str:
        """``<arch>.<tag>``, as ``PRETRAINED_SHA256`` and the log name it."""
        return f"{self.arch}.{self.tag}"

    @property
    def file(self) -> str:
        """The file name it ships as (`shipping.shipped_file`)."""
        return f"{self.name}.safetensors"


def training_queue(scales: list[int], variants: list[str]) -> list[Target]:
    """Step c's models, in the order they train: each of ``variants`` in `VARIANTS` order, each
    variant's scales largest first (a smaller scale warm-starts from the larger one's trunk
    when nothing ships)."""
    return [Target(v, s) for v in VARIANTS if v in variants for s in T291_ORDER if s in scales]


def real_queue(scales: list[int], variants: list[str]) -> list[Target]:
    """Step f's models, in the order they train: the ``.real`` files of `REAL_VARIANTS` among
    ``variants``, each in `REAL_ORDER`."""
    return [Target(v, s, REAL_TAG) for v in REAL_VARIANTS if v in variants for s in REAL_ORDER if s in scales]


def rank(target: Target) -> tuple[int, int, int]:
    """A target's place in the order of worth (lower first; the module's docstring says why)."""
    order = T291_ORDER if target.tag == CLEAN_TAG else REAL_ORDER
    return VARIANTS.index(target.variant), int(target.tag != CLEAN_TAG), order.index(target.scale)


def share(target: Target) -> float:
    """A target's weight in sharing out the training time."""
    real = REAL_SHARE if target.tag != CLEAN_TAG else 1.0
    return BUDGET_SHARES[target.scale] * VARIANT_SHARES[target.variant] * real


def training_budget(spare: float, overhead: float, queued: list[Target], min_budget: float) -> float | None:
    """Seconds of training for ``queued[0]``, the model about to train; None: it is skipped.

    Args:
        spare: the seconds left for training and the processes around it.
        overhead: the seconds each process takes beside its training.
        queued: every model still to train, ``queued[0]`` the next.
        min_budget: the fewest seconds of training worth a process.

    The time goes to as many of ``queued`` as can each have ``min_budget``, the most valuable
    first (`rank`), shared by `share`: when not all fit, the least valuable go without, wherever
    they stand in the queue. ``queued[0]`` gets its share if it is among them.
    """
    by_worth = sorted(queued, key=rank)
    for count in range(len(by_worth), 0, -1):
        chosen = by_worth[:count]
        left = spare - overhead * count
        total = sum(share(t) for t in chosen)
        if left * min(share(t) for t in chosen) / total >= min_budget:
            return left * share(queued[0]) / total if queued[0] in chosen else None
    return None


def returned(qualified: list[Target], places: int = WEIGHT_PLACES) -> list[Target]:
    """Which of the files that ``qualified`` to ship a device call brings back: the ``places``
    most valuable (`rank`)."""
    return sorted(qualified, key=rank)[:places]
