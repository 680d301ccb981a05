"""msrnet's face of timm's registry: `create_model`, `list_models`, offline pretrained weights.

Pretrained weights ship inside the package (``msrnet/weights/<arch>.<tag>.safetensors``) and are
checked against the sha256 recorded here before they are loaded, so a corrupted or swapped file
never yields a silently wrong model. Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import timm
from torch import nn

from msrnet._utils import sha256sum

if TYPE_CHECKING:  # msr.py registers its models through this module
    from .msr import MultiScaleSRNet

__all__ = ["create_model", "list_models", "pretrained_file", "load_pretrained_weights"]

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

# '<arch>.<tag>' -> sha256 of the shipped safetensors file. An entry is added with each file.
PRETRAINED_SHA256: dict[str, str] = {
    "msr_x2.t291": "c9c01706dc02b32e075ace0ba9d026874831533f5fb27898bc0029d5fed29bdb",
    "msr_x4.t291": "fa4bea8d3e16fa10b58ed58e0756bb167b3aea68262ac676e810fc20c5f4d22f",
    "msr_x8.t291": "e17baeaba8a911300d6e008268cf240fb98f6a73c453a7783c41106dc917f252",
    "msr_small_x2.t291": "b6920e7fa5359802591763e08d2ecb79737946b4bc5c7b3207cfa63b388b874a",
    "msr_small_x4.t291": "6633f94454c869b15deb82ecbe977e5663aad40164b0d71980af70fe6635cef5",
    "msr_small_x8.t291": "1e8ffa7ac47bd6c90ad53b6681e5e3d937e7644463d8b10f84423a71e0bd3923",
    "msr_small_x2.real": "16e57f2b7b1bceed5c5b8fc299fb0fac9230effcb61230c66b66bd6ee44ca7cd",
    "msr_small_x4.real": "06cb5c55c2cb759c37dc80ebb0a5b5dd916303ec4f12a8121ecbdf4030ff0992",
    "msr_small_x8.real": "e48feedb492de1e99a474e9904f851bcbce60d33cdee42db83877b80190bd185",
}

# timm's list_models(module=...) matches the last part of the module name: msrnet.models.msr.
_TIMM_MODULE = "msr"


def pretrained_file(name: str) -> Path | None:
    """Where the weights of ``'<arch>.<tag>'`` live in the package, or None if none ship."""
    return WEIGHTS_DIR / f"{name}.safetensors" if name in PRETRAINED_SHA256 else None


def load_pretrained_weights(model: nn.Module, pretrained_cfg: dict[str, Any]) -> None:
    """Load the packaged weights named by a timm pretrained cfg into ``model`` (in place).

    Raises:
        RuntimeError: no weights ship for this model/tag, the file is missing, or its sha256
            does not match the one recorded for it.
    """
    name = f"{pretrained_cfg['architecture']}.{pretrained_cfg['tag']}"
    file = pretrained_cfg.get("file")
    if not file or name not in PRETRAINED_SHA256:
        available = ", ".join(list_models(pretrained=True)) or "none yet"
        raise RuntimeError(
            f"no pretrained weights ship for {name!r} in this msrnet version "
            f"(models with weights: {available}); use pretrained=False or train one with `msrnet train`"
        )
    path = Path(file)
    if not path.is_file():
        raise RuntimeError(f"pretrained weights for {name!r} are missing: {path} (reinstall msrnet)")
    actual = sha256sum(path)
    if actual != PRETRAINED_SHA256[name]:
        raise RuntimeError(
            f"pretrained weights for {name!r} are corrupted: sha256 of {path} is {actual}, "
            f"expected {PRETRAINED_SHA256[name]} (reinstall msrnet)"
        )
    # Imported here: weights builds models through this module.
    from .weights import read_weights

    # load_state_dict casts the fp16 file to the model's dtype.
    model.load_state_dict(read_weights(path)[0])


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """msrnet's registered models matching a glob ``pattern`` (with their tags if ``pretrained``)."""
    return timm.list_models(pattern, module=_TIMM_MODULE, pretrained=pretrained)


def create_model(model_name: str, pretrained: bool = False, **kwargs: Any) -> MultiScaleSRNet:
    """Build a registered msrnet model, e.g. ``create_model('msr_x4', pretrained=True)``.

    ``model_name`` may carry a pretrained tag (``'msr_x4.t291'``). Keyword arguments go to the
    model constructor (`MultiScaleSRNet`), as with ``timm.create_model``.
    """
    arch = model_name.split(".", 1)[0]
    if arch not in list_models():
        raise ValueError(
            f"unknown msrnet model {model_name!r}; valid models: {', '.join(list_models())}"
        )
    # Every registered entry point builds a MultiScaleSRNet; timm types it as nn.Module.
    return cast("MultiScaleSRNet", timm.create_model(model_name, pretrained=pretrained, **kwargs))
