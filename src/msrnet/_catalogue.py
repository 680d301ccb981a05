"""The catalogue of the weights that ship inside msrnet: their names, folder and sha256.

Each shipped file is ``msrnet/weights/<arch>.<tag>.safetensors``. This module is the one owner
of the table and of what a name of a shipped file may look like; it imports neither torch nor
anything else of msrnet, so that ``msrnet weights`` (listing, ``--copy-to``) answers at once.
`msrnet.models._pretrained` reads the files through it.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["WEIGHTS_DIR", "PRETRAINED_SHA256", "shipped_tags", "resolve_names"]

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
