"""``msrnet upscale``: images, folders, globs or a video, by the model's scale (`msrnet.inference`).

This module decides the job (arguments, device, model, outputs, whether compiling pays); the
images are upscaled one by one in `msrnet.cli._images`, a video in `msrnet.cli.video`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msrnet._utils import first_line
from msrnet.cli import video
from msrnet.cli._common import UsageError, add_model_args, cli_model, model_label, raise_on_sigterm, user_errors
from msrnet.cli._images import UpscaleRun, output_paths, refuse_overwrites, targets, upscale_image

if TYPE_CHECKING:  # torch is imported inside the command, so that --help is instant
    import torch
    from torch import nn

__all__ = ["SLOW_WORK", "COMPILE_WORK", "COMPILE_WORK_WITHOUT_BF16", "HELP", "DESCRIPTION", "add_arguments", "run", "saved"]

# Work (parameters x LR pixels, about the multiply-adds of a convolutional network) above which
# `msrnet upscale` announces an image before upscaling it: about 4 s for msr_x4 on 2 CPU cores
# (docs/inference.md#the-first-call), a hundred times more on a GPU.
SLOW_WORK = {"cpu": 3e11, "cuda": 3e13, "mps": 3e12}
# `--compile auto` compiles a job of at least this much work (same units) on a CPU that can
# compile: on one with native bf16, where the compiled network ran about twice as fast as the
# eager one, from sixteen 480x320 images of msr_small_x4 on; elsewhere (AVX2), where it ran
# 1.12 to 1.14 times as fast and its compile was won back after 15 (msr_small_x4) to 75
# (msr_medium_x4) such images, only for jobs the size of a video (docs/inference.md#speed).
COMPILE_WORK = 1e12
COMPILE_WORK_WITHOUT_BF16 = 2e13


HELP = "upscale images, folders or globs"
DESCRIPTION = (
    "Upscale images by the model's scale. Grayscale stays grayscale, alpha is kept, "
    "16-bit (gray and colour) stays 16-bit, every page of a TIFF is upscaled, EXIF orientation is "
    "applied, and EXIF, XMP, ICC profiles and DPI are kept; what cannot be kept is named in a warning. "
    "Large images run in blended tiles. See docs/inference.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    def tile(value: str) -> int | str | None:
        if value in ("auto", "none"):
            return None if value == "none" else value
        if not value.isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError(f"expected 'auto', 'none' or a positive integer, got {value!r}")
        return int(value)

    def non_negative(value: str) -> int:
        if not value.isdigit():
            raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value!r}")
        return int(value)

    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders (not recursive) or globs")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="output file (one input; its extension picks the format) or folder (files keep their names); "
        "existing outputs are replaced, each by a complete new file (written beside it, then renamed)",
    )
    add_model_args(p)
    p.add_argument(
        "--tile",
        type=tile,
        default="auto",
        help="LR tile side, 'auto' (fit the device's memory; the default) or 'none' (whole image)",
    )
    p.add_argument("--tile-overlap", type=non_negative, default=32, help="LR pixels neighbouring tiles share")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument(
        "--dtype",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="compute dtype; auto: bf16 on CUDA and on a CPU with native bf16 (AMX / AVX-512 BF16), "
        "else fp32; fp32 for 16-bit images and 10-bit video everywhere",
    )
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the network once for the whole job; auto: on a CPU, for jobs large "
        "enough to win the one-time compile back",
    )
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (8x slower)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="upscale the sample image shipped with msrnet (NASA's astronaut portrait) into the current folder",
    )
    p.add_argument(
        "--pyramid",
        action="store_true",
        help="write every level of the one pass as NAME_x2.png, NAME_x4.png, ... (msr_x4, msr_x8)",
    )
    p.add_argument(
        "--outscale",
        type=float,
        default=None,
        metavar="F",
        help="output scale up to the model's: the smallest pyramid level >= F, resized to F (Lanczos)",
    )
    video.add_args(p)


def run(args: argparse.Namespace) -> int:
    """``msrnet upscale``: check the arguments, load the model once, upscale each input, sum up.

    Arguments the command refuses raise `UsageError` before any image is read; an image that
    fails is skipped, listed at the end, and makes the exit status 1. Every output is written
    through the atomic writer, whose temporary file is removed as Ctrl-C or SIGTERM unwinds,
    so an interrupted run leaves no partial output and no temporary file.
    """
    from tqdm.auto import tqdm

    from msrnet.inference import resolve_dtype
    from msrnet.video import RAW_VIDEO_EXTENSIONS, VIDEO_EXTENSIONS

    if args.demo == bool(args.inputs):
        raise UsageError("give INPUT files, folders or globs, or --demo (not both)")
    if not args.demo and args.output is None:
        raise UsageError("-o/--output is required")
    device = _upscale_device(args.device)
    sources, failures = _find_images(args)

    model = cli_model(args, "upscale")
    model.to(device)  # once: upscale hands the model back where it found it
    scale: int = model.scale
    level_scales = list(getattr(model, "level_scales", [scale]))
    level = _output_level(args, scale, level_scales)

    if any(Path(spec).suffix.lower() in VIDEO_EXTENSIONS + RAW_VIDEO_EXTENSIONS for spec in args.inputs):
        if len(args.inputs) != 1 or args.pyramid or args.outscale is not None:
            raise UsageError("a video is upscaled on its own, without --pyramid or --outscale")
        with raise_on_sigterm():
            return video.run(args, model, device)

    dtype = resolve_dtype(args.dtype, device)
    compiled = _compile_pays(args, model, device, dtype, sources)
    slow_work = SLOW_WORK.get(device.type, SLOW_WORK["cpu"])
    job = UpscaleRun(args, model, device, dtype, scale, level_scales, level, slow_work, compiled)
    outputs, where = targets(args, sources, scale)
    refuse_overwrites(sources, [path for dst in outputs for path in output_paths(job, dst)])

    what = _what_runs(job, model.pretrained_cfg)
    start = time.perf_counter()
    done, sizes = 0, None
    with raise_on_sigterm():
        for src, dst in tqdm(list(zip(sources, outputs)), desc="upscale", unit="image", disable=len(sources) < 2):
            try:
                sizes = upscale_image(job, src, dst)
                done += 1
            except user_errors() as e:
                failures.append(f"{src}: {first_line(e)}")
                tqdm.write(f"msrnet upscale: skipped {failures[-1]}", file=sys.stderr)
    seconds = time.perf_counter() - start

    if args.demo and sizes is not None:
        (width, height), (out_width, out_height) = sizes
        print(
            f"upscaled {sources[0].name} ({width}x{height}) {what} in {seconds:.1f} s "
            f"-> {outputs[0]} ({out_width}x{out_height})"
        )
    elif not args.demo:
        print(
            f"msrnet upscale: {done} of {done + len(failures)} images upscaled {what} in {seconds:.1f} s -> {where}",
            file=sys.stderr,
        )
    for failure in failures:
        print(f"msrnet upscale: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def saved(args: argparse.Namespace) -> str:
    """What an interrupted upscale leaves: the outputs written before, none in part."""
    return "the output being written was discarded"


def _upscale_device(name: str | None) -> torch.device:
    """The --device to run on (default: cuda if available, else cpu), refused if it cannot be used."""
    import torch

    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        raise UsageError(f"bad --device: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but CUDA is not available")
    return device


def _find_images(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """The images INPUT names (or the demo's), each once, and a failure for each INPUT that names none.

    A folder gives the images directly inside it, a glob the files it matches that have an image
    extension, anything else itself: a file that is not an image fails when it is opened.
    """
    import glob
    from importlib.resources import files

    from msrnet.data.io import IMAGE_EXTENSIONS, list_images

    failures: list[str] = []
    sources: list[Path] = []
    if args.demo:
        sources.append(Path(str(files("msrnet") / "assets" / "astronaut.png")))
    for spec in args.inputs:
        if Path(spec).is_dir():
            found = list_images(spec)
        elif glob.has_magic(spec):
            matches = map(Path, glob.glob(spec, recursive=True))
            found = sorted(f for f in matches if f.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            found = [Path(spec)]
        if not found:
            failures.append(f"{spec}: no images found")
        sources += found
    return list(dict.fromkeys(sources)), failures


def _output_level(args: argparse.Namespace, scale: int, level_scales: list[int]) -> int:
    """The pyramid level written: the model's ``scale``, or with --outscale F the smallest level >= F.

    All levels come from the one pass either way; --outscale resizes the level it picks to F.
    """
    if args.pyramid and args.outscale is not None:
        raise UsageError("--pyramid and --outscale exclude each other")
    if args.outscale is None:
        return scale
    if not 0 < args.outscale <= scale:
        raise UsageError(f"--outscale must be in (0, {scale}] for a x{scale} model, got {args.outscale:g}")
    return min(s for s in level_scales if s >= args.outscale)


def _what_runs(run: UpscaleRun, pretrained_cfg: dict[str, Any]) -> str:
    """The summary's account of the run: 'x4 with msr_x4.t291 (packaged weights) on cpu (float32)'."""
    args = run.args
    factor = f"x{args.outscale:g}" if args.outscale is not None else f"x{run.scale}"
    dtype = str(run.dtype).removeprefix("torch.")
    if args.dtype == "auto":
        from msrnet.device import bf16_reason

        deep = "; 16-bit images in float32" if dtype != "float32" else ""
        dtype = f"{dtype}, auto: {bf16_reason(run.device)}{deep}"
    compiled = ", compiled" if run.compile else ""
    return f"{factor} with {model_label(args, pretrained_cfg)} on {run.device} ({dtype}{compiled})"


def _compile_pays(
    args: argparse.Namespace, model: nn.Module, device: torch.device, dtype: torch.dtype, sources: list[Path]
) -> bool:
    """Whether ``--compile`` (``auto``: a CPU that can compile and a job of `COMPILE_WORK`) compiles."""
    if args.compile != "auto":
        return bool(args.compile == "on")
    from PIL import Image

    from msrnet import device as hardware

    if device.type != "cpu" or not hardware.cpu_can_compile():
        return False
    threshold = COMPILE_WORK if hardware.cpu_has_native_bf16() else COMPILE_WORK_WITHOUT_BF16
    pixels = 0
    for src in sources:
        try:
            with Image.open(src) as img:  # the header only
                pixels += img.size[0] * img.size[1] * getattr(img, "n_frames", 1)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # reported when the image itself is upscaled
    n_params = sum(p.numel() for p in model.parameters())
    return n_params * pixels * (8 if args.self_ensemble else 1) >= threshold
