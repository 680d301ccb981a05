"""Multi-scale pyramid super-resolution networks (msr_x2, msr_x4, msr_x8).

The model family in one file, timm style: the building blocks (`FeatureExtractor`,
`PyramidResidualBlock`, `PyramidLevel`), the network (`MultiScaleSRNet`), the pretrained
configs (`default_cfgs`) and the `@register_model` entry points. How large a network a
description from a file may ask for is `_limits`'s rule, which the entry points apply.

The network (docs/architecture.md has the diagram): a stem maps the image to LR-space
features; a chain of blocks, grouped into pyramid levels (2x, 4x, 8x), each up-projects the
features to its level's resolution and passes a residual on; each level concatenates and
compresses its blocks' up-projected maps (plus the previous level's features), predicts a
residual image and adds it to the up-sampled image of the level before.

Every block has its own weights and reads the LR-space features left by the block before
(docs/architecture.md compares it with the seed), up-projects them to its level's scale
and passes on the back-projection residual ``r - down(up(r))``, refined and re-weighted by
squeeze-and-excitation. Levels run coarse to fine (LapSRN), so one pass gives the whole
pyramid; feature widths shrink as resolution grows so every level costs about the same.
"""
from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.layers import SEModule, create_act_layer, get_act_layer
from timm.models import build_model_with_cfg, generate_default_cfgs, load_pretrained, register_model
from torch import nn

from msrnet._catalogue import MODEL_NAMES
from msrnet._utils import parse_json

from ._limits import bounded_build, check_buildable
from ._pretrained import WEIGHTS_DIR, pretrained_file, read_pretrained

__all__ = [
    "FeatureExtractor",
    "PyramidResidualBlock",
    "PyramidLevel",
    "MultiScaleSRNet",
    "default_level_scales",
    "default_blocks_per_level",
    "CONFIG_BUFFER",
    "MAX_CONFIG_BYTES",
    "decode_config",
    "read_config",
]

ActLayer = str | type[nn.Module]


def _conv(in_chans: int, out_chans: int, kernel_size: int = 3) -> nn.Conv2d:
    """'Same' convolution (odd kernel), so any H, W >= 1 keeps its size."""
    return nn.Conv2d(in_chans, out_chans, kernel_size, padding=kernel_size // 2)


class FeatureExtractor(nn.Module):
    """The seed's stem: a stack of convolutions, each followed by the activation.

    Args:
        in_chans: input image channels.
        widths: output channels of each convolution (seed: 512 -> 128 -> 128).
        kernel_size: odd kernel size of every convolution.
        act_layer: activation (name known to timm, e.g. ``"relu"``, ``"silu"``, or a class).

    Shapes:
        (B, in_chans, H, W) -> (B, widths[-1], H, W)
    """

    def __init__(
        self,
        in_chans: int = 3,
        widths: Sequence[int] = (512, 128, 128),
        kernel_size: int = 3,
        act_layer: ActLayer = "relu",
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("FeatureExtractor needs at least one width")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep H and W, got {kernel_size}")
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_chans, *widths[:-1]), widths):
            layers += [_conv(c_in, c_out, kernel_size), create_act_layer(act_layer, inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.out_chans = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PyramidResidualBlock(nn.Module):
    """Up-projection with a back-projection residual, the seed's residual block.

    ``up = act(up_proj(r))`` maps LR-space features to ``scale`` x the resolution;
    ``e = r - down_proj(up)`` is what the up-projection failed to explain; the block returns
    ``up`` and ``r_next = e + se(refine(e))`` for the next block.

    Args:
        channels: channels C of the LR-space features ``r``.
        scale: integer up-sampling factor s of ``up``.
        up_chans: channels of ``up`` (default: ``channels``); fewer at higher scales keeps the
            cost of a pyramid level flat.
        projection_kernel: kernel of the strided (transposed) projection convs; ``None`` means
            ``scale`` (non-overlapping, the cheapest; a sub-pixel conv). Must be >= scale with
            ``kernel - scale`` even so that ``down(up(r))`` has the shape of ``r``.
        refine_convs: number of 3x3 convs refining ``e`` (seed: 3, with the activation between).
        kernel_size: kernel of the refinement convs.
        act_layer: activation.
        se_ratio: squeeze-excitation reduction ratio (timm's ``SEModule``); 0 disables it.
        back_project: compute ``r_next``. The last block of a network has no reader for it, so
            it is built without the down-projection, refinement and attention (no dead
            weights) and returns ``r`` unchanged as ``r_next``.

    Shapes:
        r: (B, C, H, W) -> up: (B, up_chans, s*H, s*W), r_next: (B, C, H, W)
    """

    def __init__(
        self,
        channels: int,
        scale: int,
        up_chans: int | None = None,
        projection_kernel: int | None = None,
        refine_convs: int = 3,
        kernel_size: int = 3,
        act_layer: ActLayer = "relu",
        se_ratio: float = 1.0 / 16,
        back_project: bool = True,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        up_chans = up_chans or channels
        k = projection_kernel or scale
        if k < scale or (k - scale) % 2:
            raise ValueError(
                f"projection_kernel must be >= scale ({scale}) with an even difference, got {k}"
            )
        pad = (k - scale) // 2
        self.scale = scale
        self.up_proj = nn.ConvTranspose2d(channels, up_chans, k, stride=scale, padding=pad)
        self.up_act = create_act_layer(act_layer, inplace=True)
        self.back_project = back_project
        if not back_project:
            return
        self.down_proj = nn.Conv2d(up_chans, channels, k, stride=scale, padding=pad)
        refine: list[nn.Module] = []
        for i in range(refine_convs):
            if i:
                refine.append(create_act_layer(act_layer, inplace=True))
            refine.append(_conv(channels, channels, kernel_size))
        self.refine = nn.Sequential(*refine)
        self.attn = (
            SEModule(channels, rd_ratio=se_ratio, act_layer=get_act_layer(act_layer))
            if se_ratio > 0
            else nn.Identity()
        )

    def forward(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        up = self.up_act(self.up_proj(r))
        if not self.back_project:
            return up, r
        e = r - self.down_proj(up)
        return up, e + self.attn(self.refine(e))


class PyramidLevel(nn.Module):
    """One level of the pyramid: its blocks, concatenate-and-compress and the image head.

    Args:
        channels: channels of the LR-space residual flow.
        scale: total up-sampling factor of this level relative to the LR input.
        num_blocks: `PyramidResidualBlock`s in this level.
        level_chans: feature channels at this level's resolution.
        prev_chans: feature channels of the previous level (``None`` for the first level).
        prev_scale: up-sampling factor from the previous level to this one.
        out_chans: image channels of the predicted residual.
        last: this is the network's last level (its last block need not back-project).
        block_kwargs: further `PyramidResidualBlock` arguments.

    Shapes:
        r: (B, C, H, W), prev: (B, prev_chans, H*scale/prev_scale, ...) or None
        -> r_next: (B, C, H, W), features: (B, level_chans, s*H, s*W),
           residual image: (B, out_chans, s*H, s*W)
    """

    def __init__(
        self,
        channels: int,
        scale: int,
        num_blocks: int,
        level_chans: int,
        prev_chans: int | None,
        prev_scale: int,
        out_chans: int,
        act_layer: ActLayer = "relu",
        last: bool = False,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"a pyramid level needs at least one block, got {num_blocks}")
        self.blocks = nn.ModuleList(
            PyramidResidualBlock(
                channels,
                scale,
                level_chans,
                act_layer=act_layer,
                back_project=not (last and i == num_blocks - 1),
                **block_kwargs,
            )
            for i in range(num_blocks)
        )
        self.compress = nn.Sequential(
            _conv(num_blocks * level_chans, level_chans), create_act_layer(act_layer, inplace=True)
        )
        # The previous level's features reach this level through a learned up-sampling, so
        # detail recovered at a coarse level is not lost at the next one.
        self.skip = (
            nn.ConvTranspose2d(prev_chans, level_chans, prev_scale, stride=prev_scale)
            if prev_chans is not None
            else None
        )
        self.to_residual = _conv(level_chans, out_chans)

    def forward(
        self, r: torch.Tensor, prev: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ups = []
        for block in self.blocks:
            up, r = block(r)
            ups.append(up)
        features = self.compress(torch.cat(ups, dim=1))
        if self.skip is not None and prev is not None:
            features = features + self.skip(prev)
        return r, features, self.to_residual(features)


def default_level_scales(scale: int) -> tuple[int, ...]:
    """Scales of the pyramid levels: 2, 4, ..., scale for powers of two, else one level."""
    if scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale}")
    if scale & (scale - 1) == 0:
        return tuple(2**i for i in range(1, int(math.log2(scale)) + 1))
    return (scale,)


def default_blocks_per_level(num_levels: int, num_blocks: int = 12) -> tuple[int, ...]:
    """Spread ``num_blocks`` over levels, coarse levels first and largest.

    Every block costs about the same wherever it sits (its refinement runs at LR), but blocks
    at coarse levels feed every later level, so they get more: 12 -> (12,), (8, 4), (6, 4, 2)
    (the seed's 6/4/2 split, now coarse to fine). docs/design-choices.md has the measurements.
    """
    if num_blocks < num_levels:
        raise ValueError(f"{num_blocks} blocks cannot fill {num_levels} levels")
    # One block per level, the rest in proportion to n, n-1, ..., 1 (largest remainder,
    # ties to the coarser level), which keeps the counts non-increasing.
    weights = range(num_levels, 0, -1)
    shares = [(num_blocks - num_levels) * w / sum(weights) for w in weights]
    counts = [1 + int(share) for share in shares]
    by_remainder = sorted(range(num_levels), key=lambda i: (int(shares[i]) - shares[i], i))
    for i in by_remainder[: num_blocks - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


class MultiScaleSRNet(nn.Module):
    """Stem, pyramid levels of residual blocks, and a Laplacian image pyramid.

    Args:
        scale: total up-sampling factor (2, 4, 8, ...; a power of two gives one level per 2x).
        in_chans: input image channels (3 for RGB, 1 for grayscale).
        out_chans: output image channels (default: ``in_chans``).
        stem_widths: `FeatureExtractor` widths; the last is the channel count C of the
            LR-space residual flow.
        num_blocks: total residual blocks (seed: 12).
        blocks_per_level: blocks of each level, coarse first (default: `default_blocks_per_level`).
        level_chans: feature channels of each level, coarse first (default: 64, 32, 16, ...:
            halving as resolution doubles keeps the cost of every level about equal).
        level_scales: scale of each level (default: `default_level_scales`).
        projection_kernel, refine_convs, kernel_size, se_ratio: `PyramidResidualBlock` args.
        act_layer: activation everywhere.
        image_upsample: interpolation of the image pyramid ("bicubic", "bilinear", "nearest").
        num_classes: accepted for timm compatibility; must be 0 (there is no classifier).

    Shapes:
        x: (B, in_chans, H, W) RGB in [0, 1], any B >= 1, H, W >= 1
        forward(x) -> (B, out_chans, scale*H, scale*W)
        forward_pyramid(x) -> [(B, out_chans, s_1*H, s_1*W), ..., (B, out_chans, scale*H, ...)]
    """

    # Set by timm's build_model_with_cfg: architecture, tag, mean/std, the weights' source.
    pretrained_cfg: dict[str, Any]

    def __init__(
        self,
        scale: int = 4,
        in_chans: int = 3,
        out_chans: int | None = None,
        stem_widths: Sequence[int] = (512, 128, 128),
        num_blocks: int = 12,
        blocks_per_level: Sequence[int] | None = None,
        level_chans: Sequence[int] | None = None,
        level_scales: Sequence[int] | None = None,
        projection_kernel: int | None = None,
        refine_convs: int = 3,
        kernel_size: int = 3,
        se_ratio: float = 1.0 / 16,
        act_layer: ActLayer = "relu",
        image_upsample: str = "bicubic",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if num_classes:
            raise ValueError(
                f"msrnet models map images to images and have no classifier; got num_classes={num_classes}"
            )
        # Descriptions may come from files (config.json, weights metadata, spandrel): every
        # number is checked for its type before anything is built. Their size is the loaders'
        # to bound (`_limits.check_buildable`).
        _integer("scale", scale)
        _integer("in_chans", in_chans)
        if out_chans is not None:
            _integer("out_chans", out_chans)
        stem_widths = _integers("stem_widths", stem_widths)
        _integer("num_blocks", num_blocks)
        if blocks_per_level is not None:
            blocks_per_level = _integers("blocks_per_level", blocks_per_level)
        if level_chans is not None:
            level_chans = _integers("level_chans", level_chans)
        if level_scales is not None:
            level_scales = _integers("level_scales", level_scales)
        if projection_kernel is not None:
            _integer("projection_kernel", projection_kernel)
        _integer("refine_convs", refine_convs, 0)
        _integer("kernel_size", kernel_size)
        if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float)) or not 0 <= se_ratio <= 1:
            raise ValueError(f"se_ratio must be a number in [0, 1], got {se_ratio!r}")
        level_scales = tuple(level_scales or default_level_scales(scale))
        if level_scales[-1] != scale or any(b % a for a, b in zip(level_scales, level_scales[1:])):
            raise ValueError(
                f"level_scales {level_scales} must increase by integer factors up to scale={scale}"
            )
        n = len(level_scales)
        blocks_per_level = tuple(blocks_per_level or default_blocks_per_level(n, num_blocks))
        level_chans = tuple(level_chans or (max(8, 128 // s) for s in level_scales))
        if len(blocks_per_level) != n or len(level_chans) != n:
            raise ValueError(
                f"blocks_per_level {blocks_per_level} and level_chans {level_chans} need one entry "
                f"per level {level_scales}"
            )
        if image_upsample not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"image_upsample must be bicubic, bilinear or nearest, got {image_upsample!r}")

        self.scale = scale
        self.in_chans = in_chans
        self.out_chans = out_chans or in_chans
        self.level_scales = level_scales
        self.blocks_per_level = blocks_per_level
        self.level_chans = level_chans
        self.image_upsample = image_upsample
        # timm reads these (save_for_hf, feature info); there is no classifier head.
        self.num_classes = 0
        self.num_features = level_chans[-1]

        self.stem = FeatureExtractor(in_chans, stem_widths, kernel_size, act_layer)
        # A learned 1x1 map lets the image pyramid start from the input when channels differ.
        self.image_in = (
            nn.Conv2d(in_chans, self.out_chans, 1) if self.out_chans != in_chans else nn.Identity()
        )
        self.levels = nn.ModuleList()
        prev_chans, prev_scale = None, 1
        for i, (s, blocks, chans) in enumerate(zip(level_scales, blocks_per_level, level_chans)):
            self.levels.append(
                PyramidLevel(
                    channels=stem_widths[-1],
                    scale=s,
                    num_blocks=blocks,
                    level_chans=chans,
                    prev_chans=prev_chans,
                    prev_scale=s // prev_scale,
                    out_chans=self.out_chans,
                    act_layer=act_layer,
                    last=i == n - 1,
                    projection_kernel=projection_kernel,
                    refine_convs=refine_convs,
                    kernel_size=kernel_size,
                    se_ratio=se_ratio,
                )
            )
            prev_chans, prev_scale = chans, s

        act_name = act_layer if isinstance(act_layer, str) else act_layer.__name__.lower()
        config = {
            "level_scales": list(level_scales),
            "projection_kernel": projection_kernel,
            "act_layer": act_name,
            "image_upsample": image_upsample,
        }
        self.register_buffer(
            CONFIG_BUFFER, torch.tensor(list(json.dumps(config, sort_keys=True).encode()), dtype=torch.float32)
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # A state dict without the buffer is reported missing by torch (when the load is strict).
        key = prefix + CONFIG_BUFFER
        own = getattr(self, CONFIG_BUFFER)
        theirs = state_dict.get(key)
        if theirs is not None and (theirs.shape != own.shape or not bool((theirs.float() == own.float()).all())):
            # Like a size mismatch (which torch reports whether or not the load is strict):
            # these weights belong to a differently built network. `load_state_dict` hands this
            # method a copy, so replacing the entry changes no caller's dict.
            error_msgs.append(
                f"{key}: the weights were saved from a network with {decode_config(theirs)}, "
                f"this one has {decode_config(own)}"
            )
            state_dict[key] = own.clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _upsample_image(self, image: torch.Tensor, size: torch.Size) -> torch.Tensor:
        # An explicit size (not scale_factor) keeps H and W symbolic under torch.export.
        if self.image_upsample == "nearest":
            return F.interpolate(image, size=size, mode="nearest")
        return F.interpolate(image, size=size, mode=self.image_upsample, align_corners=False)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images of every level, coarse first: [(B, out, s_1*H, s_1*W), ..., (B, out, scale*H, scale*W)]."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected input of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}"
            )
        r = self.stem(x)
        image = self.image_in(x)
        features: torch.Tensor | None = None
        images = []
        for level in self.levels:
            r, features, residual = level(r, features)
            image = self._upsample_image(image, residual.shape[-2:]) + residual
            images.append(image)
        return images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) in [0, 1] -> (B, out_chans, scale*H, scale*W)."""
        return self.forward_pyramid(x)[-1]


# --- the settings buffer and the constructor's argument checks ------------------------------
# Name of the buffer holding the settings that leave no tensor behind (level scales, projection
# kernel, activation, image interpolation), as UTF-8 JSON bytes. Loaders that see only a state
# dict (spandrel, hence ComfyUI and chaiNNer) read the network from tensor shapes plus this.
# The bytes are stored as float32: every integer up to 256 is exact in fp16 and bf16 too, so the
# buffer survives ``model.half()``, fp16 weight files and ``model.to(dtype)`` unchanged.
CONFIG_BUFFER = "msrnet_config"


# A settings buffer is a few hundred JSON bytes; a longer one is not msrnet's, and is not read.
MAX_CONFIG_BYTES = 4096


def decode_config(buffer: torch.Tensor) -> dict[str, Any]:
    """The settings stored in a `CONFIG_BUFFER` tensor (any dtype holding byte values), as a dict."""
    text = bytes(buffer.detach().to("cpu").round().to(torch.uint8).tolist()).decode("utf-8")
    return cast(dict[str, Any], parse_json(text, CONFIG_BUFFER))  # bounded: files carry it


def read_config(buffer: Any) -> dict[str, Any]:
    """The settings of a `CONFIG_BUFFER` from a file, each checked for the type msrnet writes.

    Args:
        buffer: the file's entry: a 1-d tensor of at most `MAX_CONFIG_BYTES` byte values.

    Returns:
        ``{"level_scales": [int, ...], "projection_kernel": int | None, "act_layer": str,
        "image_upsample": str}`` (and whatever else the JSON holds).

    Raises:
        ValueError: anything else, in one line.
    """
    if not isinstance(buffer, torch.Tensor) or buffer.ndim != 1 or buffer.numel() > MAX_CONFIG_BYTES:
        raise ValueError(f"{CONFIG_BUFFER} is not the 1-d byte buffer msrnet writes")
    try:
        config = decode_config(buffer)
    except (ValueError, RuntimeError) as e:  # bytes that are not UTF-8 JSON, values out of byte range
        raise ValueError(f"{CONFIG_BUFFER} is not the JSON msrnet writes: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{CONFIG_BUFFER} holds {type(config).__name__}, not a JSON object")
    scales, kernel = config.get("level_scales"), config.get("projection_kernel")
    if not isinstance(scales, list) or not scales or not all(type(v) is int and v >= 1 for v in scales):
        raise ValueError(f"{CONFIG_BUFFER}: level_scales must be a list of positive integers, got {scales!r}")
    if kernel is not None and not (type(kernel) is int and kernel >= 1):
        raise ValueError(f"{CONFIG_BUFFER}: projection_kernel must be a positive integer or null, got {kernel!r}")
    for key in ("act_layer", "image_upsample"):
        if not isinstance(config.get(key), str):
            raise ValueError(f"{CONFIG_BUFFER}: {key} must be a string, got {config.get(key)!r}")
    return config


def _integer(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _integers(name: str, values: Any, low: int = 1) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of integers, got {values!r}")
    return tuple(_integer(f"{name}[{i}]", v, low) for i, v in enumerate(values))


def _cfg(arch: str, scale: int, tag: str, **kwargs: Any) -> dict[str, Any]:
    file = pretrained_file(f"{arch}.{tag}")
    return {
        # timm prefers `file` over url/hf_hub_id; it is set only when the weights ship.
        "file": str(file) if file is not None else None,
        "num_classes": 0,
        "input_size": (3, 64, 64),
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "interpolation": "bicubic",
        "license": "mit",
        "description": f"x{scale} super-resolution, {tag}",
        **kwargs,
    }


_T291 = ("trained on the 291 images (T91 + BSD200), clean bicubic LR (the benchmark protocol)",)
_REAL = (
    "fine-tuned from .t291 on the 291 images with LR patches degraded on the fly (noise, JPEG; "
    "msrnet.data.degradations), for photos and web images",
)
# The first tag of an architecture is its default (timm's rule): .t291, the benchmark tables'.
default_cfgs = generate_default_cfgs(
    {
        **{
            f"{arch}_x{scale}.t291": _cfg(f"{arch}_x{scale}", scale, "t291", notes=_T291)
            for arch in ("msr", "msr_small", "msr_medium")
            for scale in (2, 4, 8)
        },
        **{f"msr_small_x{scale}.real": _cfg(f"msr_small_x{scale}", scale, "real", notes=_REAL) for scale in (2, 4, 8)},
    }
)

# The small variants: the same structure, narrow. Widths chosen by the sweep in
# docs/design-choices.md, within 0.8 M multiply-adds per LR pixel at every scale.
SMALL_STEM_WIDTHS = (64, 32)
SMALL_LEVEL_WIDTH = 16


# The medium variants: at most four times msr_small's cost (2.0 M multiply-adds per LR pixel at
# x4; the chosen widths cost 1.74 M), trained on the CPU; widths chosen by the sweep in
# docs/design-choices.md.
MEDIUM_STEM_WIDTHS = (128, 64)
MEDIUM_LEVEL_WIDTH = 24


def _narrow_widths(scale: int, stem_widths: tuple[int, ...], level_width: int) -> dict[str, Any]:
    """Widths of a narrow variant: its stem, and level widths halving from ``level_width``."""
    levels = len(default_level_scales(scale))
    return {
        "stem_widths": stem_widths,
        "level_chans": tuple(max(4, level_width >> i) for i in range(levels)),
    }


def _small_widths(scale: int) -> dict[str, Any]:
    return _narrow_widths(scale, SMALL_STEM_WIDTHS, SMALL_LEVEL_WIDTH)


def _medium_widths(scale: int) -> dict[str, Any]:
    return _narrow_widths(scale, MEDIUM_STEM_WIDTHS, MEDIUM_LEVEL_WIDTH)


def _user_weights(pretrained_cfg: dict[str, Any]) -> bool:
    """The cfg names weights of the user's: a folder, a hub repo or a file outside msrnet's package."""
    if pretrained_cfg.get("source") in ("local-dir", "hf-hub"):
        return True
    file = pretrained_cfg.get("file")
    return bool(file) and Path(str(file)).resolve().parent != WEIGHTS_DIR.resolve()


# What timm's `create_model` passes to an entry point beside the constructor's arguments.
_TIMM_ARGS = frozenset(inspect.signature(build_model_with_cfg).parameters)


def _create_msr(
    variant: str, scale: int, pretrained: bool = False, widths: dict[str, Any] | None = None, **kwargs: Any
) -> MultiScaleSRNet:
    """Build a registered variant (``widths``: its own, which ``kwargs`` may override)."""

    def build() -> MultiScaleSRNet:
        args = {**(widths or {}), **kwargs}
        return build_model_with_cfg(MultiScaleSRNet, variant, pretrained=False, scale=scale, **args)

    if not set(kwargs) - _TIMM_ARGS:
        model = build()
    elif torch.get_default_device().type == "meta":
        # A probe already (a loader's `check_buildable`, which measures it): only bounded.
        model = bounded_build(build)
    else:
        # Constructor arguments describe another network than the registered one, maybe from a
        # stranger's file (a `local-dir:` / `hf-hub:` config.json, a weights file's metadata):
        # it is built on the meta device and held to msrnet's limits before it is built for real.
        check_buildable(build)
        model = build()
    if pretrained:
        cfg = model.pretrained_cfg
        if not _user_weights(cfg):
            # msrnet's own files: the sha256 is checked before loading (a tag without a file
            # gets msrnet's error). load_state_dict casts the fp16 file to the model's dtype.
            model.load_state_dict(read_pretrained(f"{cfg['architecture']}.{cfg['tag']}"))
        else:
            # A user's weights: a `local-dir:` / `hf-hub:` folder written by `save_pretrained` or
            # timm's `save_for_hf`, or `pretrained_cfg_overlay=dict(file=...)`. timm reads them
            # (safetensors or a torch checkpoint) and loads them strictly.
            load_pretrained(model, pretrained_cfg=cfg, num_classes=0, in_chans=model.in_chans)
    return model


# The structure of each variant: its widths at a scale (msr: the network's defaults), and the
# sentence its entry points' docstrings open with.
_VARIANTS: dict[str, tuple[Callable[[int], dict[str, Any]], str]] = {
    "msr": (lambda scale: {}, "full size (blocks per level: `default_blocks_per_level`)"),
    "msr_small": (_small_widths, "the msr structure with a narrow stem and levels"),
    "msr_medium": (_medium_widths, "the msr structure at 3.5 times msr_small's cost"),
}


def _entry_point(name: str) -> Callable[..., MultiScaleSRNet]:
    """The ``@register_model`` function of a name of `MODEL_NAMES`: ``msr_small_x4`` is
    msr_small's widths at x4. timm registers a function by its ``__name__``."""
    variant, scale = name.rsplit("_x", 1)
    widths, about = _VARIANTS[variant]

    def create(pretrained: bool = False, **kwargs: Any) -> MultiScaleSRNet:
        return _create_msr(name, int(scale), pretrained, widths(int(scale)), **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__doc__ = f"x{scale} model, {about}; ``kwargs`` override `MultiScaleSRNet`'s arguments."
    return create


# One entry point per registered name (`msrnet._catalogue.MODEL_NAMES`, torch-free, so that
# ``msrnet --help`` lists them at once): msrnet.models.msr.msr_x4 is timm.create_model's "msr_x4".
for _name in MODEL_NAMES:
    globals()[_name] = register_model(_entry_point(_name))
