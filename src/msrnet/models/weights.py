"""Weights files: `save_weights` and `load_weights`, with one metadata schema.

A weights file is a safetensors file of a model's state dict whose string metadata says how to
rebuild the model::

    arch          registered architecture, e.g. "msr_x4"
    scale         the model's scale, e.g. "4"
    model_kwargs  JSON of the constructor arguments given beyond the architecture's defaults
    ...           whatever else the writer records (the trainer: "step", "psnr")

Every msrnet state dict holds the ``msrnet_config`` buffer (`msr.CONFIG_BUFFER`), the
network's settings that leave no tensor behind; a file without it is refused, with a message
that names it. `load_weights` also reads ``.pth`` / ``.pt`` state dicts (no metadata: the caller
names the architecture, or the buffer's scale names ``msr_x<scale>``). Every check happens
before the model is allocated: the architecture that the metadata (or the caller) names is
built on the meta device, which costs no memory, and its tensor names and shapes must equal
those in the file. So metadata can never make msrnet allocate more than the file itself holds,
and a file that is not a state dict fails with a `WeightsError` that names it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import Tensor, nn

from msrnet._utils import atomic_write, first_line, parse_json

from ._limits import check_buildable
from ._registry import create_model
from .msr import CONFIG_BUFFER, MAX_CONFIG_BYTES, MultiScaleSRNet, read_config
from .widen import widen_state_dict

__all__ = [
    "WEIGHT_SUFFIXES",
    "WeightsError",
    "WeightsMetadata",
    "save_weights",
    "load_weights",
    "read_weights",
    "read_metadata",
    "load_matching_weights",
    "count_non_finite",
    "shape_mismatch",
]

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")


def count_non_finite(tensors: Iterable[Tensor]) -> int:
    """How many NaN/inf values the floating-point ``tensors`` hold: broken weights, which no
    input turns into a finite image (`msrnet.upscale` names them when its output is NaN;
    spandrel's loader refuses them)."""
    return sum(int((~torch.isfinite(t)).sum()) for t in tensors if t.is_floating_point())


class WeightsError(ValueError):
    """A weights file that cannot be read, or that does not fit the model it names."""


@dataclass(frozen=True)
class WeightsMetadata:
    """The schema of a weights file's metadata (all optional in ``.pth`` files: they have none).

    Attributes:
        arch: registered architecture (``"msr_x4"``).
        scale: the model's scale.
        model_kwargs: constructor arguments beyond the architecture's defaults.
        extra: any other entries, as stored (strings).
    """

    arch: str | None = None
    scale: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_strings(cls, raw: Mapping[str, str], path: Path) -> WeightsMetadata:
        """Parse safetensors metadata; a malformed entry is a `WeightsError` naming ``path``."""
        try:
            kwargs = parse_json(raw.get("model_kwargs") or "{}", "metadata model_kwargs")
            scale = int(raw["scale"]) if raw.get("scale") else None
        except ValueError as e:
            raise WeightsError(f"{path}: malformed metadata ({e})") from None
        if not isinstance(kwargs, dict):
            raise WeightsError(f"{path}: metadata model_kwargs is not a JSON object: {kwargs!r}")
        extra = {k: v for k, v in raw.items() if k not in ("arch", "scale", "model_kwargs")}
        return cls(raw.get("arch") or None, scale, kwargs, extra)

    def to_strings(self) -> dict[str, str]:
        meta = {**self.extra, "model_kwargs": json.dumps(self.model_kwargs)}
        if self.arch is not None:
            meta["arch"] = self.arch
        if self.scale is not None:
            meta["scale"] = str(self.scale)
        return meta


def save_weights(
    model: nn.Module,
    path: str | Path,
    *,
    arch: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    dtype: torch.dtype | None = torch.float16,
    **extra: Any,
) -> Path:
    """Write ``model``'s state dict as safetensors with the metadata `load_weights` reads.

    Args:
        model: the network; its ``scale`` is recorded.
        path: the ``.safetensors`` file, written atomically (temporary file, then rename).
        arch: registered architecture (default: ``model.pretrained_cfg["architecture"]``).
        model_kwargs: the constructor arguments the model was built with beyond its defaults.
        dtype: dtype of the stored floating-point tensors (None keeps the model's).
        extra: further metadata (``step=...``, ``psnr=...``); non-strings are stored as JSON.
    """
    path = Path(path)
    if arch is None:
        arch = getattr(model, "pretrained_cfg", {}).get("architecture")
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        .detach()
        .to("cpu")
        .contiguous()
        for k, v in model.state_dict().items()
    }
    scale = getattr(model, "scale", None)
    metadata = WeightsMetadata(
        arch,
        int(scale) if scale is not None else None,
        dict(model_kwargs or {}),
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()},
    )
    blob = save(state, metadata=metadata.to_strings())
    with atomic_write(path) as f:
        f.write(blob)
    return path


def _safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], WeightsMetadata]:
    """Tensor shapes and metadata from the header alone (no tensor is read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except OSError:
        raise
    except Exception as e:  # safetensors raises its own SafetensorError for any malformed file
        raise WeightsError(f"{path}: not a readable safetensors file ({first_line(e)})") from None
    return shapes, WeightsMetadata.from_strings(raw, path)


def _torch_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as e:  # a pickle that is not a tensor file, or a truncated zip
        raise WeightsError(f"{path}: not a PyTorch weights file ({type(e).__name__}: {first_line(e)})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise WeightsError(
            f"{path}: holds a {type(state).__name__}, not a state dict (a mapping of names to tensors)"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(f"{path}: not a state dict: entry {bad[0]!r} is not a named tensor")
    return state


def read_metadata(path: str | Path) -> WeightsMetadata:
    """The metadata of a weights file (empty for ``.pth`` / ``.pt``); reads no tensor."""
    path = _existing(path)
    return _safetensors_header(path)[1] if path.suffix == ".safetensors" else WeightsMetadata()


def read_weights(path: str | Path) -> tuple[dict[str, Tensor], WeightsMetadata]:
    """A weights file's state dict (on the CPU) and metadata, checked to be a state dict."""
    path = _existing(path)
    if path.suffix != ".safetensors":
        return _torch_state_dict(path), WeightsMetadata()
    _, metadata = _safetensors_header(path)
    try:
        return load_file(str(path)), metadata
    except Exception as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({first_line(e)})") from None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path


def _check_buildable(arch: str, kwargs: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], path: Path) -> None:
    """``arch`` with ``kwargs``, built on the meta device (no memory), has the file's tensor
    names and shapes, and is within msrnet's limits (`~msrnet.models.check_buildable`).

    Raises:
        WeightsError: naming the file, the tensor that does not fit or the limit.
    """
    what = arch + (f" with model_kwargs {dict(kwargs)}" if kwargs else "")

    def fits(model: MultiScaleSRNet) -> None:
        mismatch = shape_mismatch({k: tuple(v.shape) for k, v in model.state_dict().items()}, shapes)
        if mismatch is not None:
            raise WeightsError(f"{path}: does not fit {what}: {mismatch}")

    try:
        check_buildable(lambda: create_model(arch, **kwargs), verify=fits)
    except WeightsError:
        raise
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: cannot build {what}: {e}") from None


def shape_mismatch(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], network: str = "the model"
) -> str | None:
    """Why a file's tensors do not fit a network, in words; None when they do.

    Args:
        expected: the network's state dict, as names and shapes (of its meta-device build).
        found: the file's tensors, as names and shapes.
        network: how the message names the network.
    """
    if dict(expected) == dict(found):
        return None
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if wrong:
        k = wrong[0]
        return f"{k} is {found[k]} in the file, {expected[k]} in {network}"
    if CONFIG_BUFFER in missing:
        return (
            f"the file lacks the {CONFIG_BUFFER} buffer, the network settings every msrnet model "
            "saves with its weights (level scales, activation, ...)"
        )
    if missing:
        return f"the file lacks {len(missing)} of its tensors, e.g. {missing[0]}"
    return f"the file has {len(unexpected)} tensors {network} lacks, e.g. {unexpected[0]}"


def _stored_scale(path: Path, shapes: Mapping[str, tuple[int, ...]], state: Mapping[str, Tensor] | None) -> int:
    """The scale the file's config buffer records (its last level scale), read alone.

    Raises:
        WeightsError: the file has no config buffer, or not one msrnet writes.
    """
    name_it = f"cannot tell the architecture of {path}: name it (--model NAME, arch=...)"
    shape = shapes.get(CONFIG_BUFFER)
    # Read only when its shape is that of msrnet's buffer: a longer one is not read at all.
    if shape is None or len(shape) != 1 or shape[0] > MAX_CONFIG_BYTES:
        raise WeightsError(f"{name_it}; it has no arch metadata and no {CONFIG_BUFFER} buffer")
    try:
        if state is not None:
            buffer = state[CONFIG_BUFFER]
        else:
            with safe_open(str(path), framework="pt") as f:
                buffer = f.get_tensor(CONFIG_BUFFER)
        scale: int = read_config(buffer)["level_scales"][-1]
    except Exception as e:  # garbage bytes, JSON of another shape: the file is not msrnet's
        raise WeightsError(f"{name_it}; its {CONFIG_BUFFER} buffer is unreadable ({first_line(e)})") from None
    return scale


def load_weights(
    path: str | Path,
    arch: str | None = None,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
) -> MultiScaleSRNet:
    """Build the model a weights file was saved from and load it (float32, CPU, eval mode).

    Args:
        path: a ``.safetensors`` file (see the module's metadata schema), or a ``.pth`` / ``.pt``
            state dict (possibly under a ``"state_dict"`` or ``"model"`` key).
        arch: the registered architecture; default the file's ``arch`` metadata, else
            ``msr_x<scale>`` with the scale its config buffer records.
        model_kwargs: constructor arguments; default the file's ``model_kwargs`` metadata.

    Raises:
        FileNotFoundError: no such file.
        WeightsError: not a weights file, malformed metadata, no config buffer, or its
            tensors do not fit the architecture (checked before any tensor is allocated).
    """
    path = _existing(path)
    if path.suffix == ".safetensors":
        shapes, metadata = _safetensors_header(path)
        state = None
    else:
        state, metadata = _torch_state_dict(path), WeightsMetadata()
        shapes = {k: tuple(v.shape) for k, v in state.items()}
    arch = arch or metadata.arch or f"msr_x{_stored_scale(path, shapes, state)}"
    kwargs = dict(metadata.model_kwargs if model_kwargs is None else model_kwargs)
    _check_buildable(arch, kwargs, shapes, path)
    if state is None:
        state = read_weights(path)[0]
    model = create_model(arch, **kwargs)
    model.load_state_dict(state)  # casts a float16 file to the model's float32
    return model.eval()


def load_matching_weights(model: nn.Module, path: str | Path) -> tuple[int, list[str]]:
    """Copy into ``model`` every tensor of a weights file whose name and shape match.

    The same architecture loads whole (fine-tuning); a larger scale takes a smaller one's trunk
    (stem, the blocks of the shared levels), as EDSR warm-starts x4 from x2, and the rest keeps
    its initialization. A narrower variant at the same scale (``msr_small_x4`` into
    ``msr_medium_x4``: the same tensor names) grows into the model whole, computing what it
    computed (`~msrnet.models.widen.widen_state_dict`).

    The config buffer is the model's own settings, so it is neither copied from the file nor
    counted among the tensors left as they were.

    Returns:
        How many tensors were loaded, and the names of the model's tensors left as they were.

    Raises:
        WeightsError: not a ``.safetensors`` file, no weight (beyond biases) of it fits, or
            it has the model's tensors but does not widen into it (wider somewhere).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"init weights must be a .safetensors file, got {path}")
    shapes, _ = _safetensors_header(_existing(path))
    # The config buffer describes the model's own structure, so it is never copied from another.
    own = {k: v for k, v in model.state_dict().items() if k.rpartition(".")[2] != CONFIG_BUFFER}
    if isinstance(model, MultiScaleSRNet) and set(shapes) - {CONFIG_BUFFER} == set(own) and any(
        tuple(own[k].shape) != shapes[k] for k in own
    ):
        try:
            # Settings stay the model's own here too: the buffer is left out of the widening.
            state = {k: v for k, v in load_file(str(path)).items() if k != CONFIG_BUFFER}
            model.load_state_dict(widen_state_dict(state, model))
        except ValueError as e:
            raise WeightsError(f"{path} has the tensors of {type(model).__name__} but {e}") from None
        return len(own), []
    names = [k for k, shape in shapes.items() if k in own and tuple(own[k].shape) == shape]
    # Biases of the 3-channel image heads fit any model: only a matching weight means a trunk.
    if not any(len(shapes[k]) > 1 for k in names):
        raise WeightsError(f"no weight of {path} fits {type(model).__name__}: wrong architecture?")
    with safe_open(str(path), framework="pt") as f:
        model.load_state_dict({k: f.get_tensor(k) for k in names}, strict=False)
    return len(names), sorted(set(own) - set(names))
