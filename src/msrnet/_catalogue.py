"""The names msrnet's command line shows before it imports torch, and the shipped weights' table.

This module is the one owner of each list of names that ``msrnet --help`` and argument
checks need: the registered models (`MODEL_NAMES`), the fixed benchmark conditions
(`BENCHMARK_CONDITION_NAMES`, their seeds up to `MAX_SEED`), the per-pixel losses
(`LOSS_NAMES`) and the degradation presets (`DEGRADATION_PRESETS`). The torch modules take
their keys from here (`msrnet.models.msr` registers one entry point per model name,
`msrnet.data.degradations` builds one `Condition` per condition name, ...), so no list is kept
by hand in two places. It imports neither torch nor anything else of msrnet, so that
``--help`` and ``msrnet weights`` answer at once.

The weights that ship inside msrnet are ``msrnet/weights/<arch>.<tag>.safetensors``; this
module owns their sha256 table and what a name of a shipped file may look like.
`msrnet.models._pretrained` reads the files through it.
"""
from __future__ import annotations

from pathlib import Path

__all__ = [
    "MODEL_NAMES", "BENCHMARK_CONDITION_NAMES", "MAX_SEED", "LOSS_NAMES", "DEGRADATION_PRESETS",
    "WEIGHTS_DIR", "PRETRAINED_SHA256", "shipped_tags", "resolve_names",
]

# The registered models: msr_<variant>_x<scale>, one `@register_model` entry point each
# (`msrnet.models.msr`, whose widths for each variant are there).
MODEL_NAMES = (
    "msr_x2", "msr_x4", "msr_x8", "msr_small_x2", "msr_small_x4", "msr_small_x8",
    "msr_medium_x2", "msr_medium_x4", "msr_medium_x8",
)
# The fixed degradations of ``msrnet benchmark --condition`` and ``evaluate(condition=)``,
# applied after the protocol's bicubic down-scaling. Each name is its recipe: ``noise<sigma>``
# (Gaussian, 0-255 scale), then ``jpeg<quality>``, joined by '-'; ``clean`` is the protocol
# itself (`msrnet.data.degradations.Condition.from_name` reads them).
BENCHMARK_CONDITION_NAMES = ("clean", "jpeg90", "jpeg75", "jpeg50", "noise5", "noise10", "noise5-jpeg75")
# Seeds of the conditions: up to 2**32 - 1, so that ``seed * 1_000_003 + crc32(name)`` fits the
# generator's 64 bits for every image.
MAX_SEED = 2**32 - 1
# The per-pixel losses of a training config's loss spec (`msrnet.train.losses.LOSSES`).
LOSS_NAMES = ("l1", "charbonnier", "mse", "dssim")
# The degradation presets a training config may name instead of a .json file
# (`msrnet.data.degradations.PRESETS`).
DEGRADATION_PRESETS = ("bicubic", "web", "real")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# '<arch>.<tag>' -> sha256 of the shipped safetensors file. An entry is added with each file.
PRETRAINED_SHA256: dict[str, str] = {
    "msr_x2.t291": "c7fdcb2d67038bf25db790c3df82a4bb48cd2256f55c265c37bb8219c668aa0a",
    "msr_x4.t291": "0e125ae048064065ce84c7510e2a4fa87c72a4d8de1d4a8ed1a7da02fa857acf",
    "msr_x8.t291": "be5db13bf37ec72b828de99ef1b144e67d9ea3d5a08f86d7c9f07c382779cfb0",
    "msr_small_x2.t291": "b6920e7fa5359802591763e08d2ecb79737946b4bc5c7b3207cfa63b388b874a",
    "msr_small_x4.t291": "6633f94454c869b15deb82ecbe977e5663aad40164b0d71980af70fe6635cef5",
    "msr_small_x8.t291": "1e8ffa7ac47bd6c90ad53b6681e5e3d937e7644463d8b10f84423a71e0bd3923",
    "msr_small_x2.real": "16e57f2b7b1bceed5c5b8fc299fb0fac9230effcb61230c66b66bd6ee44ca7cd",
    "msr_small_x4.real": "8010e13786f14718c5ac7869e32654f54fa80b8db6d62dbc209d1ca941a06a45",
    "msr_small_x8.real": "e48feedb492de1e99a474e9904f851bcbce60d33cdee42db83877b80190bd185",
    "msr_medium_x2.t291": "1fc4b098cea92e0f00af53bc0986c08e8318a9e4666a9b8a7fb3d1ba8c13c337",
    "msr_medium_x4.t291": "6ccda9b783f11041e48df65715cd335d18be90f87e334581bffa1b5658fcf52a",
    "msr_medium_x8.t291": "41bb39638349033cf688707606dfb51c38eb821a67cfff631412ad4cf4c3ded3",
}

SUFFIX = ".safetensors"


def shipped_tags(arch: str) -> list[str]:
    """The tags of the weights that ship for ``arch`` (``'msr_small_x4'`` -> ``['real', 't291']``)."""
    return sorted(name.split(".", 1)[1] for name in PRETRAINED_SHA256 if name.split(".", 1)[0] == arch)


def resolve_names(names: list[str]) -> list[str]:
    """The shipped ``'<arch>.<tag>'`` entries that ``names`` ask for, in the table's sorted order.

    Each of ``names`` is an architecture (all its tags), an ``arch.tag`` or a file name
    ``arch.tag.safetensors``; none asks for all of them.

    Raises:
        ValueError: a name that matches no shipped file (the message lists the shipped ones).
    """
    chosen: set[str] = set()
    for name in names:
        entry = name.removesuffix(SUFFIX)
        found = [s for s in PRETRAINED_SHA256 if entry in (s, s.split(".", 1)[0])]
        if not found:
            raise ValueError(f"no shipped weights named {name!r}; shipped: {', '.join(sorted(PRETRAINED_SHA256))}")
        chosen.update(found)
    return sorted(chosen if names else PRETRAINED_SHA256)
