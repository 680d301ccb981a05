"""The images of one ``msrnet upscale``: where each one's outputs go, and how it is upscaled.

`msrnet.cli.upscale` decides the job (an `UpscaleRun`); this module reads each image, runs it
through `msrnet.upscale` (every frame of an animation, every page of a TIFF, 16-bit at full
depth) and writes its outputs.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msrnet._utils import file_identities
from msrnet.cli._common import UsageError, say_warning

if TYPE_CHECKING:  # torch and PIL are imported inside the functions, so that --help is instant
    import torch
    from PIL import Image
    from torch import nn

    from msrnet.data.deep import DeepImage

__all__ = ["UpscaleRun", "output_paths", "refuse_overwrites", "targets", "upscale_image"]


@dataclass(frozen=True)
class UpscaleRun:
    """What every image of one ``msrnet upscale`` gets: the model, where it runs, the levels written."""

    args: argparse.Namespace
    model: nn.Module
    device: torch.device
    dtype: torch.dtype  # of 8-bit images; `--dtype auto` gives 16-bit ones fp32 (`upscale` decides)
    scale: int  # the model's
    level_scales: list[int]  # of the model's pyramid, coarse first
    level: int  # the level written: the model's scale, or the one --outscale picks
    slow_work: float  # work (parameters x LR pixels) above which an image is announced (`SLOW_WORK`)
    compile: bool = False  # a torch.compile copy of the network serves every image


def targets(args: argparse.Namespace, sources: list[Path], scale: int) -> tuple[list[Path], Path]:
    """The output file of each source, and what the summary names as the destination.

    -o names a file when it has an image extension and is not a folder; then it takes the one
    source. Otherwise it is a folder, where each output keeps its input's name (the demo's:
    ``astronaut_x4.png``, in the current folder without -o).
    """
    from msrnet.data.io import IMAGE_EXTENSIONS

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir():
        if len(sources) != 1:
            raise UsageError(f"-o {out} is a file, but {len(sources)} images were given: pass a folder")
        return [out], out
    if args.demo:
        target = (out or Path(".")) / f"astronaut_x{scale}.png"
        return [target], target
    assert out is not None  # -o is required without --demo
    targets = [out / src.name for src in sources]
    clashes = sorted({t.name for t in targets if targets.count(t) > 1})
    if clashes:
        raise UsageError(
            f"several inputs would write {out}/{clashes[0]}: upscale them into separate folders"
        )
    return targets, out


def output_paths(run: UpscaleRun, dst: Path) -> list[Path]:
    """Every file the output for ``dst`` goes to: ``dst``, or NAME_x2.png, NAME_x4.png, ... with --pyramid."""
    if not run.args.pyramid:
        return [dst]
    stem = "astronaut" if run.args.demo else dst.stem
    return [dst.with_name(f"{stem}_x{s}{dst.suffix}") for s in run.level_scales]


def refuse_overwrites(sources: list[Path], writes: list[Path]) -> None:
    """Refuse an output that is an input of the same command, or that two outputs share.

    Files are compared by identity, so no name, link or pyramid level leads an output onto an
    input.
    """
    inputs = file_identities(sources)
    for path in writes:
        clobbered = next((inputs[key] for key in file_identities([path]) if key in inputs), None)
        if clobbered is not None:
            raise UsageError(
                f"refusing to overwrite the input {clobbered} (an output of this command): pick another -o"
            )
    if len(set(writes)) < len(writes):
        twice = next(path for path in writes if writes.count(path) > 1)
        raise UsageError(
            f"several outputs would be written to {twice}: upscale those inputs into separate folders"
        )


def upscale_image(run: UpscaleRun, src: Path, dst: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """Upscale ``src`` into ``dst`` (or its pyramid files); returns the input's and the last output's size.

    Every frame of an animation is upscaled when the output format holds one; otherwise
    `msrnet.upscale` warns that it takes the current frame. Every page of a multi-page TIFF is
    upscaled into a TIFF, one page in memory at a time (another output is refused). A 16-bit
    colour PNG or TIFF is read at full depth (`msrnet.data.deep`). Warnings are printed one
    line each, naming the file.
    """
    import warnings

    from PIL import Image, ImageSequence
    from tqdm.auto import tqdm

    from msrnet.data.deep import DeepImage, deep_rawmode, read_deep
    from msrnet.data.io import ANIMATED_EXTENSIONS, save_image

    with Image.open(src) as img, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        in_size, count = img.size, getattr(img, "n_frames", 1)
        _say_if_slow(run, src, in_size, count)
        if img.format == "TIFF" and count > 1:
            if dst.suffix.lower() not in (".tif", ".tiff") or run.args.pyramid:
                raise ValueError(
                    f"a TIFF of {count} pages: only a TIFF output holds them all (-o NAME.tif, no --pyramid)"
                )
            sizes: list[tuple[int, int]] = []

            def pages() -> Iterator[Image.Image | DeepImage]:
                for i in range(count):
                    img.seek(i)
                    with warnings.catch_warnings():  # "only frame i is upscaled": each one is, in turn
                        warnings.filterwarnings("ignore", "animated image with")
                        result = _upscale_frame(run, read_deep(src, i) if deep_rawmode(img) else img)
                    page = _frame_outputs(run, result, dst)
                    sizes.append(page[dst].size)
                    yield page[dst]

            dst.parent.mkdir(parents=True, exist_ok=True)
            save_image(pages(), dst)
        else:
            animated = count > 1 and dst.suffix.lower() in ANIMATED_EXTENSIONS
            frames = [frame.copy() for frame in ImageSequence.Iterator(img)] if animated else [img]
            durations = [int(frame.info.get("duration", 100)) for frame in frames]
            if not animated and deep_rawmode(img) is not None:
                frames = [read_deep(src)]
            outputs: dict[Path, list[Image.Image | DeepImage]] = {}  # path -> its frames
            for frame in tqdm(frames, desc=src.name, unit="frame", leave=False, disable=not animated):
                result = _upscale_frame(run, frame, progress=not animated)
                for path, image in _frame_outputs(run, result, dst).items():
                    outputs.setdefault(path, []).append(image)
            dst.parent.mkdir(parents=True, exist_ok=True)
            for path, images in outputs.items():
                # A temporary file renamed into place: a failed write never leaves a truncated file at
                # path, and a symlink planted at path is replaced, not written through.
                save_image(images, path, duration=durations, loop=img.info.get("loop", 0))
            sizes = [images[0].size]
    for warning in caught:
        say_warning("upscale", f"{src}: {warning.message}")
    return in_size, sizes[-1]


def _upscale_frame(run: UpscaleRun, image: Image.Image | DeepImage, progress: bool = False) -> Any:
    """One image (a frame, a page) through `msrnet.upscale` with the run's settings."""
    from msrnet.inference import upscale

    args = run.args
    # `auto` goes through as such: `upscale` weighs each image's bits per sample.
    dtype = "auto" if args.dtype == "auto" else run.dtype
    return upscale(
        run.model, image, tile=args.tile, tile_overlap=args.tile_overlap, self_ensemble=args.self_ensemble,
        device=run.device, dtype=dtype, progress=progress, levels=args.pyramid or run.level != run.scale,
        compile=run.compile,
    )


def _say_if_slow(run: UpscaleRun, src: Path, size: tuple[int, int], frames: int) -> None:
    """Announce an image that takes long (``run.slow_work``) before the wait, with its size."""
    from tqdm.auto import tqdm

    n_params = sum(p.numel() for p in run.model.parameters())
    work = n_params * size[0] * size[1] * frames * (8 if run.args.self_ensemble else 1)
    if work > run.slow_work:
        tqdm.write(
            f"msrnet upscale: {src.name}: {size[0]}x{size[1]} -> {size[0] * run.scale}x{size[1] * run.scale} "
            f"on {run.device.type}, this takes a while ...",
            file=sys.stderr,
        )


def _frame_outputs(run: UpscaleRun, result: Any, dst: Path) -> dict[Path, Any]:
    """Where one upscaled frame goes: each level to its own file with --pyramid, else one level to ``dst``.

    ``result`` is `_upscale_frame`'s (a PIL image or `DeepImage`, or a list of them, one per
    level). With --outscale F the level is resized to F times the input's size (Lanczos),
    keeping its ``info`` (ICC profile, EXIF, DPI).
    """
    from PIL import Image

    if run.args.pyramid:
        assert isinstance(result, list)
        return dict(zip(output_paths(run, dst), result))
    if isinstance(result, list):  # the level --outscale picked
        result = result[run.level_scales.index(run.level)]
    outscale = run.args.outscale
    # The input's size from the level's: EXIF orientation may have swapped width and height.
    size = tuple(round(side / run.level * outscale) for side in result.size) if outscale is not None else result.size
    if result.size != size:
        info = result.info
        result = result.resize(size, Image.Resampling.LANCZOS)
        result.info.update(info)  # the ICC profile
    return {dst: result}
