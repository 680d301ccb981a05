"""Save msrnet models as timm / Hugging Face folders: config.json, model.safetensors, README.md.

`save_pretrained` writes the folder layout that ``timm.models.save_for_hf`` writes (and that
``timm.models.push_to_hub`` uploads), plus a model card. After ``import msrnet``,
``timm.create_model("local-dir:FOLDER", pretrained=True)`` rebuilds the network from
``config.json`` and loads ``model.safetensors``; an ``hf-hub:`` repo holding the same files
loads the same way.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from timm.models import save_for_hf
from torch import nn

from msrnet._utils import atomic_copy, atomic_write
from msrnet.models._pretrained import PRETRAINED_SHA256, read_pretrained

__all__ = ["KNOWN_RESULTS", "save_pretrained", "model_card"]

# Y-PSNR (dB) of the shipped weights on the benchmark sets, by the project's protocol
# (docs/evaluation.md), from the run that trained them (docs/runs/gpu-2026-11-27-*.json).
KNOWN_RESULTS: dict[str, dict[str, float]] = {
    "msr_x2.t291": {"Set5": 37.71, "Set14": 33.27},
    "msr_x4.t291": {"Set5": 31.80, "Set14": 28.32},
    "msr_x8.t291": {"Set5": 26.25, "Set14": 24.22},
}
_TRAINING_DATA = {"t291": "the 291 images (T91 + BSD200), bicubic (MATLAB imresize) degradation"}


def _is_shipped(model: nn.Module, name: str) -> bool:
    """The model holds exactly the shipped weights of ``name`` (``'<arch>.<tag>'``), as stored.

    Raises:
        RuntimeError: the shipped file is missing or corrupted (its sha256 is checked).
    """
    if name not in PRETRAINED_SHA256:
        return False
    shipped = read_pretrained(name)
    own = model.state_dict()
    return all(
        k in own and own[k].shape == v.shape and torch.equal(own[k].detach().cpu().to(v.dtype), v)
        for k, v in shipped.items()
    )


def model_card(
    name: str,
    scale: int,
    *,
    license: str = "mit",
    training_data: str | None = None,
    results: dict[str, float] | None = None,
) -> str:
    """A Hugging Face model card (YAML front matter + Markdown) for a model named ``name``.

    Args:
        name: the model's name on the card, e.g. ``'msr_x4.t291'``.
        scale: its up-sampling factor.
        license: an SPDX-like license id for the card's metadata.
        training_data: what it was trained on (omitted from the card when unknown).
        results: Y-PSNR in dB per benchmark set, e.g. ``{'Set5': 31.80}``; becomes a
            ``model-index`` entry.
    """
    arch = name.split(".", 1)[0]
    lines = ["---", "tags:", "- image-to-image", "- super-resolution", "- timm", "- msrnet",
             "library_name: timm", "pipeline_tag: image-to-image", f"license: {license}"]
    if results:
        lines += ["model-index:", f"- name: {name}", "  results:"]
        for dataset, value in results.items():
            lines += [
                "  - task:",
                "      type: image-to-image",
                f"      name: {scale}x super-resolution",
                "    dataset:",
                f"      name: {dataset}",
                f"      type: {dataset.lower()}",
                "    metrics:",
                "    - type: psnr",
                f"      name: PSNR (Y channel, {scale}-pixel border cropped)",
                f"      value: {value:.2f}",
            ]
    lines += ["---", "", f"# {name}", "",
              f"An x{scale} single-image super-resolution network of msrnet "
              "(multi-scale pyramid residual blocks; one forward pass gives every 2x level of the pyramid).",
              ""]
    if training_data:
        lines += ["## Training data", "", f"Trained on {training_data}.", ""]
    if results:
        lines += ["## Results", "", "Y-channel PSNR of RGB input in [0, 1], MATLAB-bicubic LR, "
                  f"{scale} border pixels cropped (the field's protocol):", "",
                  "| dataset | PSNR (dB) |", "| --- | --- |"]
        lines += [f"| {dataset} | {value:.2f} |" for dataset, value in results.items()] + [""]
    lines += [
        "## Use", "",
        "```python",
        "import msrnet, timm  # importing msrnet registers the architecture with timm",
        "",
        'model = timm.create_model("hf-hub:OWNER/REPO", pretrained=True).eval()  # or "local-dir:FOLDER"',
        "sr = msrnet.upscale(model, image)  # PIL image, numpy array or tensor in [0, 1]",
        "```",
        "",
        "ComfyUI, chaiNNer and other spandrel-based tools open `model.safetensors` once "
        "`msrnet.integrations.spandrel.install()` has run (see msrnet's docs).",
        "",
        f"Architecture: `{arch}`; the constructor arguments are in `config.json` (`model_args`).",
        "",
    ]
    return "\n".join(lines)


def save_pretrained(
    model: nn.Module,
    folder: str | Path,
    *,
    license: str = "mit",
    training_data: str | None = None,
    results: dict[str, float] | None = None,
) -> Path:
    """Write ``model`` as a timm / Hugging Face folder and return the folder.

    The folder holds ``config.json`` (``architecture``, ``model_args``, ``pretrained_cfg``, as
    ``timm.models.save_for_hf`` writes it), ``model.safetensors`` (the state dict, float32 as
    the model holds it) and ``README.md`` (a model card with ``pipeline_tag: image-to-image``,
    ``library_name: timm``, the license, training data and a ``model-index``).

    For the shipped weights (``msrnet.create_model('msr_x4', pretrained=True)``, unchanged) the
    card gets the training data and the measured Set5 / Set14 PSNR by itself; for other weights
    pass ``training_data`` and ``results`` to state them, and nothing is claimed otherwise.

    Args:
        model: a model made by ``msrnet.create_model`` / ``timm.create_model`` (it carries
            ``pretrained_cfg`` and its constructor arguments).
        folder: created if missing; existing files of these names are replaced, each by a
            complete new file (a symlink planted at one is replaced, never written through).
        license: the license of the weights.
        training_data: what the weights were trained on.
        results: Y-PSNR (dB) per benchmark set, e.g. ``{'Set5': 31.9, 'Set14': 28.4}``.
    """
    folder = Path(folder)
    cfg = dict(getattr(model, "pretrained_cfg", None) or {})
    if "architecture" not in cfg:
        raise ValueError("save_pretrained needs a model built by msrnet.create_model or timm.create_model")
    name = f"{cfg['architecture']}.{cfg['tag']}" if cfg.get("tag") else cfg["architecture"]
    shipped = _is_shipped(model, name)
    if not shipped:
        name = cfg["architecture"]  # the tag names the shipped weights, not these
    else:
        results = results or KNOWN_RESULTS.get(name)
        training_data = training_data or _TRAINING_DATA.get(cfg["tag"])
    overrides: dict[str, Any] = {"license": license}
    if not shipped:
        # The default cfg's notes and description describe the shipped weights, not these.
        overrides["notes"] = (f"trained on {training_data}",) if training_data else ()
        overrides["description"] = f"x{model.scale} super-resolution"
    folder.mkdir(parents=True, exist_ok=True)
    # timm writes by name, which follows a symlink planted at config.json or model.safetensors:
    # it writes into a new private folder instead, and each file moves into place through the
    # atomic writer, which replaces a link rather than writing through it.
    staging = Path(tempfile.mkdtemp(prefix=".save_pretrained.", dir=folder))
    try:
        save_for_hf(model, str(staging), model_config={"pretrained_cfg": overrides}, safe_serialization=True)
        for written in sorted(staging.iterdir()):
            atomic_copy(written, folder / written.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    card = model_card(name, int(getattr(model, "scale")), license=license, training_data=training_data, results=results)
    with atomic_write(folder / "README.md") as f:
        f.write(card.encode())
    return folder

