"""The msrnet command line: ``msrnet upscale | benchmark | train | export | weights`` (or ``python -m msrnet``).

Each subcommand is a pair of functions, ``_add_<name>_parser`` and ``_run_<name>``; the work
itself lives in the library (`msrnet.inference`, `msrnet.evaluate`, `msrnet.train`,
`msrnet.export`, `msrnet.video`) so that everything the CLI does is also one Python call away.
A command stops on a user's input by raising `_CommandError`, which `main` prints as one line,
``msrnet COMMAND: error: ...``, with the command's exit status.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msrnet import __version__
from msrnet._utils import file_identities, first_line, missing_extra, same_file

if TYPE_CHECKING:  # torch and PIL are imported inside the commands, so that --help is instant
    import torch
    from PIL import Image
    from torch import nn

    from msrnet.data.deep import DeepImage


class _CommandError(Exception):
    """What stops a command on a user's input: `main` prints it as ``msrnet COMMAND: error: MESSAGE``.

    Raised where a command finds the problem, so that every command's errors are one line in one
    format, and its steps need not hand exit codes back up. ``code`` is the exit status: 2 for
    arguments the command refuses (as argparse's own errors), 1 for work that failed.
    """

    def __init__(self, message: str, code: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint  # a second line: what to do about it

if TYPE_CHECKING:  # msrnet.models imports torch, which `msrnet --help` does without
    from msrnet.models import MultiScaleSRNet


# --- upscale ---------------------------------------------------------------------------------
PRETRAINED_HELP = (
    "load the weights that ship with msrnet for --model (the default); --no-pretrained: random "
    "weights, to try the pipeline. Ignored for a weights file."
)


def _add_pretrained_arg(p: argparse.ArgumentParser) -> None:
    """--pretrained/--no-pretrained: one flag, one meaning and one default in every command."""
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True, help=PRETRAINED_HELP)


# The registered models, for --help without importing torch or timm (which takes seconds);
# tests/test_cli_hints.py checks that this is exactly `msrnet.list_models()`.
MODEL_NAMES = (
    "msr_x2", "msr_x4", "msr_x8", "msr_small_x2", "msr_small_x4", "msr_small_x8",
    "msr_medium_x2", "msr_medium_x4", "msr_medium_x8",
)
# What `upscale` and `export` run without --model: the weights trained for JPEG and noisy inputs,
# since photos are what people upscale (docs/real-photos.md has the numbers behind the choice).
DEFAULT_MODEL = "msr_small_x4.real"


def _models_help() -> str:
    """'msr_x2, msr_x4 (tags: t291), ...': the models and the tags of their shipped weights."""
    from importlib.resources import files

    shipped = [f.name.removesuffix(".safetensors") for f in (files("msrnet") / "weights").iterdir()
               if f.name.endswith(".safetensors")]
    parts = []
    for name in MODEL_NAMES:
        tags = sorted(w.split(".", 1)[1] for w in shipped if w.split(".", 1)[0] == name)
        parts.append(f"{name} (weights: {', '.join(tags)})" if tags else name)
    return ", ".join(parts)


def _add_model_args(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL, also: str = "") -> None:
    """--model, --pretrained/--no-pretrained and --weights: the same flags in every command that
    runs a model (`msrnet.models.build_model` takes the same three)."""
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help=f"a registered model, NAME or NAME.TAG: {_models_help()}{also}; default: "
        f"{f'{default}, or ' if default else ''}the architecture recorded in --weights. "
        "`msrnet weights` shows the files.",
    )
    _add_pretrained_arg(p)
    p.add_argument(
        "--weights",
        metavar="FILE",
        default=None,
        help="a .safetensors/.pth state dict (e.g. best.safetensors from `msrnet train`), in the "
        "architecture --model names if the file records none; overrides --pretrained",
    )


def _random_weights_note(command: str, name: str) -> None:
    print(
        f"msrnet {command}: note: {name} has random weights (--no-pretrained); "
        "its output shows the pipeline working, not a useful result",
        file=sys.stderr,
    )


def _cli_model(
    args: argparse.Namespace, command: str, default: str | None = DEFAULT_MODEL, code: int = 2
) -> MultiScaleSRNet:
    """`msrnet.models.build_model` of --model/--weights/--pretrained (``default`` without either).

    Raises:
        _CommandError: exit status ``code``, the reason in one line (naming the file), and a
            hint where the shipped weights of a known model are missing.
    """
    import pickle

    from safetensors import SafetensorError

    from msrnet.models import build_model

    name = args.model or (None if args.weights else default)
    try:
        model = build_model(name, args.weights, pretrained=args.pretrained)
    except (
        OSError, ValueError, RuntimeError, TypeError, LookupError, EOFError, AttributeError,
        pickle.UnpicklingError, SafetensorError,
    ) as e:
        # What a user's name or file can make fail (a pickle that is no state dict raises
        # anything); the first line, naming the file when the message does not.
        message = first_line(e)
        if args.weights and str(args.weights) not in message:
            message = f"{args.weights}: {message}"
        # The --weights / --no-pretrained hint helps when weights are missing, not when the
        # name is wrong (the error lists the valid names then).
        hint = None
        if not args.weights and args.pretrained and name and name.split(".", 1)[0] in MODEL_NAMES:
            hint = (
                "pass --weights FILE (a state dict, e.g. best.safetensors from `msrnet train`), or "
                "--no-pretrained to run with random weights"
            )
        raise _CommandError(message, code, hint) from None
    if not args.pretrained and not args.weights:
        _random_weights_note(command, str(name))
    return model


def _model_label(args: argparse.Namespace, pretrained_cfg: dict[str, Any]) -> str:
    """What `_cli_model` built, as commands print it: 'msr_x4.t291 (packaged weights)'."""
    weights = args.weights or ("packaged weights" if args.pretrained else "random weights")
    arch = pretrained_cfg["architecture"]
    if args.pretrained and not args.weights and pretrained_cfg.get("tag"):
        arch = f"{arch}.{pretrained_cfg['tag']}"
    return f"{arch} ({weights})"


# Work (parameters x LR pixels, about the multiply-adds of a convolutional network) above which
# `msrnet upscale` announces an image before upscaling it: about 4 s for msr_x4 on 2 CPU cores
# (docs/inference.md#the-first-call), a hundred times more on a GPU.
SLOW_WORK = {"cpu": 3e11, "cuda": 3e13, "mps": 3e12}
# `--compile auto` compiles a job of at least this much work (same units) on a CPU with native
# bf16, where the compiled network runs about twice as fast as the eager one and inductor's
# one-time compile (tens of seconds) is then paid back (docs/inference.md#speed). Where bf16 is
# emulated (AVX2) compiling gained 1.1x and auto leaves it off.
COMPILE_WORK = 1e12


def _add_upscale_parser(subparsers: argparse._SubParsersAction) -> None:
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

    p = subparsers.add_parser(
        "upscale",
        help="upscale images, folders or globs",
        description="Upscale images by the model's scale. Grayscale stays grayscale, alpha is kept, "
        "16-bit (gray and colour) stays 16-bit, every page of a TIFF is upscaled, EXIF orientation is "
        "applied, and EXIF, XMP, ICC profiles and DPI are kept; what cannot be kept is named in a warning. "
        "Large images run in blended tiles. See docs/inference.md.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders (not recursive) or globs")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="output file (one input; its extension picks the format) or folder (files keep their names); "
        "existing outputs are replaced, each by a complete new file (written beside it, then renamed)",
    )
    _add_model_args(p)
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
        help="compute dtype; auto: bf16 on CUDA and on a CPU with native bf16 (AMX / AVX-512 BF16), else fp32",
    )
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the network once for the whole job; auto: on a CPU with native bf16 "
        "for jobs large enough to pay the one-time compile back",
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
    _add_video_args(p)
    p.set_defaults(func=_run_upscale)


class _Terminated(BaseException):
    """SIGTERM, raised where the process is, so that the atomic writers remove their temporary files."""


def _run_upscale(args: argparse.Namespace) -> int:
    """``msrnet upscale``: Ctrl-C (exit 130) and SIGTERM (exit 143) end it with one line, no traceback.

    Every output is written through the atomic writer, whose temporary file is removed as the
    interrupt unwinds, so an interrupted run leaves no partial output and no temporary file.
    """
    import signal

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, terminate)
        installed = True
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        installed = False
    try:
        return _upscale(args)  # Ctrl-C: `main` prints the line
    except _Terminated:
        print("msrnet upscale: terminated (SIGTERM); the output being written was discarded", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


def _upscale(args: argparse.Namespace) -> int:
    """``msrnet upscale`` itself: check the arguments, load the model once, upscale each input, sum up.

    Arguments the command refuses raise `_CommandError` before any image is read; an image that
    fails is skipped, listed at the end, and makes the exit status 1.
    """
    import time

    from PIL import Image
    from tqdm.auto import tqdm

    from msrnet.inference import resolve_dtype
    from msrnet.video import RAW_VIDEO_EXTENSIONS, VIDEO_EXTENSIONS

    if args.demo == bool(args.inputs):
        raise _CommandError("give INPUT files, folders or globs, or --demo (not both)", 2)
    if not args.demo and args.output is None:
        raise _CommandError("-o/--output is required", 2)
    device = _upscale_device(args.device)
    sources, failures = _find_images(args)

    model = _cli_model(args, "upscale")
    model.to(device)  # once: upscale hands the model back where it found it
    scale: int = model.scale
    level_scales = list(getattr(model, "level_scales", [scale]))
    level = _output_level(args, scale, level_scales)

    if any(Path(spec).suffix.lower() in VIDEO_EXTENSIONS + RAW_VIDEO_EXTENSIONS for spec in args.inputs):
        if len(args.inputs) != 1 or args.pyramid or args.outscale is not None:
            raise _CommandError("a video is upscaled on its own, without --pyramid or --outscale", 2)
        return _run_video(args, model, device)

    dtype = resolve_dtype(args.dtype, device)
    compiled = _compile_pays(args, model, device, dtype, sources)
    run = _UpscaleRun(args, model, device, dtype, scale, level_scales, level, compiled)
    targets, where = _targets(args, sources, scale)
    _refuse_overwrites(sources, [path for dst in targets for path in _output_paths(run, dst)])

    what = _what_runs(run, model.pretrained_cfg)
    start = time.perf_counter()
    done, sizes = 0, None
    for src, dst in tqdm(list(zip(sources, targets)), desc="upscale", unit="image", disable=len(sources) < 2):
        try:
            sizes = _upscale_image(run, src, dst)
            done += 1
        except (
            OSError, ValueError, TypeError, RuntimeError, ArithmeticError, MemoryError,
            Image.DecompressionBombError,
        ) as e:
            failures.append(f"{src}: {first_line(e)}")
            tqdm.write(f"msrnet upscale: skipped {failures[-1]}", file=sys.stderr)
    seconds = time.perf_counter() - start

    if args.demo and sizes is not None:
        (width, height), (out_width, out_height) = sizes
        print(
            f"upscaled {sources[0].name} ({width}x{height}) {what} in {seconds:.1f} s "
            f"-> {targets[0]} ({out_width}x{out_height})"
        )
    elif not args.demo:
        print(
            f"msrnet upscale: {done} of {done + len(failures)} images upscaled {what} in {seconds:.1f} s -> {where}",
            file=sys.stderr,
        )
    for failure in failures:
        print(f"msrnet upscale: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


@dataclass(frozen=True)
class _UpscaleRun:
    """What every image of one ``msrnet upscale`` gets: the model, where it runs, the levels written."""

    args: argparse.Namespace
    model: nn.Module
    device: torch.device
    dtype: torch.dtype
    scale: int  # the model's
    level_scales: list[int]  # of the model's pyramid, coarse first
    level: int  # the level written: the model's scale, or the one --outscale picks
    compile: bool = False  # a torch.compile copy of the network serves every image


def _upscale_device(name: str | None) -> torch.device:
    """The --device to run on (default: cuda if available, else cpu), refused if it cannot be used."""
    import torch

    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        raise _CommandError(f"bad --device: {e}", 2)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _CommandError("--device cuda asked for, but CUDA is not available", 2)
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
        raise _CommandError("--pyramid and --outscale exclude each other", 2)
    if args.outscale is None:
        return scale
    if not 0 < args.outscale <= scale:
        raise _CommandError(f"--outscale must be in (0, {scale}] for a x{scale} model, got {args.outscale:g}", 2)
    return min(s for s in level_scales if s >= args.outscale)


def _targets(args: argparse.Namespace, sources: list[Path], scale: int) -> tuple[list[Path], Path]:
    """The output file of each source, and what the summary names as the destination.

    -o names a file when it has an image extension and is not a folder; then it takes the one
    source. Otherwise it is a folder, where each output keeps its input's name (the demo's:
    ``astronaut_x4.png``, in the current folder without -o).
    """
    from msrnet.data.io import IMAGE_EXTENSIONS

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir():
        if len(sources) != 1:
            raise _CommandError(f"-o {out} is a file, but {len(sources)} images were given: pass a folder", 2)
        return [out], out
    if args.demo:
        target = (out or Path(".")) / f"astronaut_x{scale}.png"
        return [target], target
    assert out is not None  # -o is required without --demo
    targets = [out / src.name for src in sources]
    clashes = sorted({t.name for t in targets if targets.count(t) > 1})
    if clashes:
        raise _CommandError(
            f"several inputs would write {out}/{clashes[0]}: upscale them into separate folders", 2
        )
    return targets, out


def _output_paths(run: _UpscaleRun, dst: Path) -> list[Path]:
    """Every file the output for ``dst`` goes to: ``dst``, or NAME_x2.png, NAME_x4.png, ... with --pyramid."""
    if not run.args.pyramid:
        return [dst]
    stem = "astronaut" if run.args.demo else dst.stem
    return [dst.with_name(f"{stem}_x{s}{dst.suffix}") for s in run.level_scales]


def _refuse_overwrites(sources: list[Path], writes: list[Path]) -> None:
    """Refuse an output that is an input of the same command, or that two outputs share.

    Files are compared by identity, so no name, link or pyramid level leads an output onto an
    input.
    """
    inputs = file_identities(sources)
    for path in writes:
        clobbered = next((inputs[key] for key in file_identities([path]) if key in inputs), None)
        if clobbered is not None:
            raise _CommandError(
                f"refusing to overwrite the input {clobbered} (an output of this command): pick another -o", 2
            )
    if len(set(writes)) < len(writes):
        twice = next(path for path in writes if writes.count(path) > 1)
        raise _CommandError(
            f"several outputs would be written to {twice}: upscale those inputs into separate folders", 2
        )


def _what_runs(run: _UpscaleRun, pretrained_cfg: dict[str, Any]) -> str:
    """The summary's account of the run: 'x4 with msr_x4.t291 (packaged weights) on cpu (float32)'."""
    args = run.args
    factor = f"x{args.outscale:g}" if args.outscale is not None else f"x{run.scale}"
    dtype = str(run.dtype).removeprefix("torch.")
    if args.dtype == "auto":
        from msrnet.device import bf16_reason

        dtype = f"{dtype}, auto: {bf16_reason(run.device)}"
    compiled = ", compiled" if run.compile else ""
    return f"{factor} with {_model_label(args, pretrained_cfg)} on {run.device} ({dtype}{compiled})"


def _upscale_image(run: _UpscaleRun, src: Path, dst: Path) -> tuple[tuple[int, int], tuple[int, int]]:
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
        _say_warning("upscale", f"{src}: {warning.message}")
    return in_size, sizes[-1]


def _upscale_frame(run: _UpscaleRun, image: Image.Image | DeepImage, progress: bool = False) -> Any:
    """One image (a frame, a page) through `msrnet.upscale` with the run's settings."""
    from msrnet.inference import upscale

    args = run.args
    return upscale(
        run.model, image, tile=args.tile, tile_overlap=args.tile_overlap, self_ensemble=args.self_ensemble,
        device=run.device, dtype=run.dtype, progress=progress, levels=args.pyramid or run.level != run.scale,
        compile=run.compile,
    )


def _compile_pays(
    args: argparse.Namespace, model: nn.Module, device: torch.device, dtype: torch.dtype, sources: list[Path]
) -> bool:
    """Whether ``--compile`` (``auto``: a CPU with native bf16 and a job of `COMPILE_WORK`) compiles."""
    if args.compile != "auto":
        return bool(args.compile == "on")
    import torch
    from PIL import Image

    from msrnet.device import cpu_has_native_bf16

    if device.type != "cpu" or dtype != torch.bfloat16 or not cpu_has_native_bf16():
        return False
    pixels = 0
    for src in sources:
        try:
            with Image.open(src) as img:  # the header only
                pixels += img.size[0] * img.size[1] * getattr(img, "n_frames", 1)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # reported when the image itself is upscaled
    n_params = sum(p.numel() for p in model.parameters())
    return n_params * pixels * (8 if args.self_ensemble else 1) >= COMPILE_WORK


def _say_if_slow(run: _UpscaleRun, src: Path, size: tuple[int, int], frames: int) -> None:
    """Announce an image that takes long (`SLOW_WORK`) before the wait, with its size."""
    from tqdm.auto import tqdm

    n_params = sum(p.numel() for p in run.model.parameters())
    work = n_params * size[0] * size[1] * frames * (8 if run.args.self_ensemble else 1)
    if work > SLOW_WORK.get(run.device.type, SLOW_WORK["cpu"]):
        tqdm.write(
            f"msrnet upscale: {src.name}: {size[0]}x{size[1]} -> {size[0] * run.scale}x{size[1] * run.scale} "
            f"on {run.device.type}, this takes a while ...",
            file=sys.stderr,
        )


def _frame_outputs(run: _UpscaleRun, result: Any, dst: Path) -> dict[Path, Any]:
    """Where one upscaled frame goes: each level to its own file with --pyramid, else one level to ``dst``.

    ``result`` is `_upscale_frame`'s (a PIL image or `DeepImage`, or a list of them, one per
    level). With --outscale F the level is resized to F times the input's size (Lanczos),
    keeping its ``info`` (ICC profile, EXIF, DPI).
    """
    from PIL import Image

    if run.args.pyramid:
        assert isinstance(result, list)
        return dict(zip(_output_paths(run, dst), result))
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


def _add_video_args(p: argparse.ArgumentParser) -> None:
    """The video options of ``msrnet upscale``."""
    g = p.add_argument_group('video (INPUT ending in .mp4, .mkv, .mov, ...; needs "msrnet[video]")')
    g.add_argument("--codec", default=None, help="FFmpeg encoder (default: libx264 if available, else mpeg4)")
    g.add_argument("--crf", type=int, default=18, help="x264/x265/VP9/AV1 quality, lower is better (default: 18)")
    g.add_argument("--batch-size", type=int, default=4, help="video frames upscaled together (default: 4)")
    g.add_argument(
        "--fps", type=float, default=None,
        help="frame rate of a stream without timestamps or a rate of its own (a raw .h264); "
        "default 25, with a warning",
    )


def _run_video(args: argparse.Namespace, model: nn.Module, device: torch.device) -> int:
    """``msrnet upscale VIDEO -o OUT``: 0, or 1 when the stream ended early (what was decoded is written).

    Refuses bad arguments or encoder settings with exit status 2, and a video that cannot be
    read or written with 1.
    """
    import warnings

    from msrnet.video import VIDEO_EXTENSIONS, FidelityWarning, VideoError, VideoWarning, _av, upscale_video

    src = Path(args.inputs[0])
    dst = Path(args.output)  # -o is required with an INPUT
    if dst.is_dir():  # a raw stream (.h264) becomes an MP4: raw streams are read, not written
        dst = dst / (src.name if src.suffix.lower() in VIDEO_EXTENSIONS else f"{src.stem}.mp4")
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise _CommandError(f"-o {dst} must be a video file ({', '.join(VIDEO_EXTENSIONS)}) or a folder", 2)
    if same_file(src, dst):
        raise _CommandError(f"refusing to overwrite the input {src}: pick another -o", 2)
    if args.batch_size < 1:
        raise _CommandError(f"--batch-size must be positive, got {args.batch_size}", 2)
    try:
        _av()  # before the output's folder is made: a missing extra leaves nothing behind
    except ImportError as e:
        raise _CommandError(str(e), 2)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VideoWarning)
            warnings.simplefilter("always", FidelityWarning)
            frames = upscale_video(
                model, src, dst, codec=args.codec, crf=args.crf, batch_size=args.batch_size,
                tile=args.tile, tile_overlap=args.tile_overlap, device=device, dtype=args.dtype, fps=args.fps,
            )
    except ValueError as e:
        raise _CommandError(str(e), 2)
    except (VideoError, OSError) as e:
        raise _CommandError(str(e), 1)
    ours = [w for w in caught if issubclass(w.category, (VideoWarning, FidelityWarning))]
    for w in caught:
        if w not in ours:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for w in ours:
        _say_warning("upscale", w.message)
    early = [w for w in ours if issubclass(w.category, VideoWarning)]
    print(f"msrnet upscale: {frames} frames of {src} upscaled x{model.scale} -> {dst}", file=sys.stderr)
    # A shortened video is written, but a script must not take it for the whole one.
    return 1 if early else 0


# --- benchmark -------------------------------------------------------------------------------
# msrnet.data.degradations.BENCHMARK_CONDITIONS, named here so that --help needs no torch
# (a test keeps the two equal).
BENCHMARK_CONDITION_NAMES = ("clean", "jpeg90", "jpeg75", "jpeg50", "noise5", "noise10", "noise5-jpeg75")
BENCHMARK_MAX_SEED = 2**32 - 1


def _add_benchmark_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="Y-PSNR/SSIM on benchmark sets, as the field's tables",
        description="Score a model (or the bicubic baseline) on folders of HR images: LR made by "
        "MATLAB-exact bicubic down-scaling, output rounded to uint8, PSNR/SSIM on Y (BT.601) with "
        "`scale` pixels shaved. One row per (dataset, scale).",
    )
    _add_model_args(p, default=None, also="; or 'bicubic', the baseline (needs --scale)")
    p.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="DIR",
        help="folder of HR images, named by the folder (repeatable)",
    )
    p.add_argument(
        "--scale",
        action="append",
        type=int,
        metavar="S",
        help="super-resolution factor (repeatable; default: the model's)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--self-ensemble", action="store_true", help="average over the 8 flips/rotations")
    p.add_argument(
        "--save-images", metavar="DIR", default=None, help="write SR images to DIR/<dataset>/x<scale>/"
    )
    p.add_argument(
        "--degradation",
        action="append",
        metavar="NAME",
        choices=BENCHMARK_CONDITION_NAMES,
        help="score on LR images degraded after the bicubic down-scaling, by a fixed, seeded "
        f"condition: {', '.join(BENCHMARK_CONDITION_NAMES)} (repeatable; 'clean' is the protocol "
        "itself; default: clean). See docs/real-photos.md",
    )
    def seed(value: str) -> int:
        # msrnet.data.degradations.MAX_SEED, named here so that --help needs no torch (a test
        # keeps the two equal).
        if not (value.isascii() and value.isdigit()) or len(value) > 12 or int(value) > BENCHMARK_MAX_SEED:
            raise argparse.ArgumentTypeError(f"expected an integer from 0 to {BENCHMARK_MAX_SEED}, got {value!r}")
        return int(value)

    p.add_argument("--seed", type=seed, default=0, help="seed of the degradation's noise (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON list of result objects")
    p.set_defaults(func=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    import pickle

    import torch
    from safetensors import SafetensorError

    from msrnet.evaluate import evaluate

    # What a user's files or arguments can make fail; anything else is a bug and keeps its traceback.
    user_errors = (
        OSError, ValueError, RuntimeError, TypeError, LookupError, EOFError, AttributeError,
        ArithmeticError, MemoryError, pickle.UnpicklingError, SafetensorError,
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    # The model is resolved once, for every dataset and scale.
    if args.model == "bicubic":
        if args.weights:
            raise _CommandError("the bicubic baseline takes no --weights", 1)
        if not args.scale:
            raise _CommandError("the bicubic baseline needs --scale", 1)
        model: Any = "bicubic"
        name, scales = "bicubic", args.scale
    else:
        if not args.model and not args.weights:
            raise _CommandError("name a model: --model NAME, --model bicubic or --weights FILE", 1)
        model = _cli_model(args, "benchmark", default=None, code=1)
        name = Path(args.weights).name if args.weights else args.model
        scales = args.scale or [model.scale]
        if not args.pretrained and not args.weights:
            name += " (random)"
    conditions = args.degradation or ["clean"]
    for dataset in args.dataset:
        for scale in scales:
            for condition in conditions:
                degradation = None if condition == "clean" else condition
                save_dir = None
                if args.save_images:
                    save_dir = Path(args.save_images) / Path(dataset).name / f"x{scale}"
                    if len(conditions) > 1:
                        save_dir = save_dir / condition
                try:
                    row = evaluate(
                        model, dataset, scale, device=device, self_ensemble=args.self_ensemble,
                        save_dir=save_dir, degradation=degradation, seed=args.seed,
                    )
                except user_errors as e:
                    raise _CommandError(first_line(e), 1) from None
                rows.append({**row, "model": name})
                for skip in row["skipped"]:
                    print(f"msrnet benchmark: skipped {row['dataset']}/{skip['name']}: {skip['reason']}", file=sys.stderr)
    skipped = sum(len(r["skipped"]) for r in rows)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        header = (
            f"{'model':<20} {'dataset':<12} {'scale':>5} {'input':<14} {'PSNR (dB)':>10} {'SSIM':>7} "
            f"{'images':>6} {'skipped':>7}"
        )
        print(header)
        print("-" * len(header))
        for r in rows:
            print(
                f"{r['model']:<20} {r['dataset']:<12} {'x' + str(r['scale']):>5} "
                f"{r.get('degradation', 'clean'):<14} "
                f"{r['psnr']:>10.2f} {r['ssim']:>7.4f} {r['images']:>6} {len(r['skipped']):>7}"
            )
    if skipped:
        print(f"msrnet benchmark: {skipped} images skipped (listed above); the scores leave them out", file=sys.stderr)
        return 1
    return 0


# --- train -----------------------------------------------------------------------------------
def _json_object(value: str) -> dict[str, Any]:
    from msrnet._utils import parse_json

    try:
        parsed = parse_json(value, "the option's value")
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}: {value[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return parsed


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """``msrnet train``: one option per `TrainConfig` field, generated from the dataclass."""
    from dataclasses import fields

    from msrnet.train.config import TrainConfig, field_defaults, field_help, float_list

    p = subparsers.add_parser(
        "train",
        help="train a model on a folder of HR images",
        description="Train (or fine-tune) a model on random patches of a folder of HR images, LR made "
        "by MATLAB-exact bicubic down-scaling; Y-PSNR on --val-dir. Run under torchrun for several "
        "GPUs/processes. Writes config.json, log.jsonl, checkpoint.pt and best.safetensors to "
        "--output-dir. Options left out take their values from --config, else the defaults shown. "
        "See docs/training.md.",
    )
    p.add_argument(
        "--config",
        metavar="JSON",
        default=None,
        help="a TrainConfig as JSON, e.g. a run's config.json (reproduces the run; its resume and "
        "overwrite are ignored); options given here override it",
    )
    p.add_argument("--scale", type=int, default=None, help="super-resolution factor (default: 4, or the model's)")
    helps = field_help()
    defaults = field_defaults()
    hints = typing.get_type_hints(TrainConfig)
    special = {
        "train_dir": "(required, here or in --config)",
        "model": "(default: msr_x<scale>)",
        "output_dir": "(default: runs/<model>)",
        "resume": "(--resume alone: the checkpoint in --output-dir)",
        "compile": "",  # the docstring says what None means
    }
    for f in fields(TrainConfig):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))  # X | None -> X
        base = kind
        origin = typing.get_origin(base) or base
        default = defaults[f.name]
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else json.dumps(default) if isinstance(default, dict) else default
        note = special.get(f.name, f"(default: {shown})" if default is not None else "")
        # Docstring markup reads as plain text; argparse formats help with %.
        text = re.sub(r"``([^`]*)``|`~?(?:[\w.]*\.)?([^`]*)`", lambda m: m[1] or m[2], helps.get(f.name, ""))
        text = f"{text} {note}".replace("%", "%%")
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text}
        if f.name == "resume":
            options.update(nargs="?", const="", metavar="CKPT")
        elif base is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin is dict:
            options.update(type=_json_object, metavar="JSON")
        elif origin is tuple:
            options.update(type=float_list, metavar="X,Y,..")
        else:
            options.update(type=base, metavar=f.name.split("_")[-1].upper())
        p.add_argument("--" + f.name.replace("_", "-"), **options)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import os
    from dataclasses import fields

    from msrnet._utils import read_json
    from msrnet.train.config import TrainConfig, config_from_dict

    values: dict[str, Any] = {}
    if args.config:
        try:
            # A file from anyone: a regular file, bounded in size, depth and digits.
            values = read_json(args.config, "training config (JSON)")
        except ValueError as e:
            raise _CommandError(f"--config {e}", 2)
        if not isinstance(values, dict):
            raise _CommandError(f"--config {args.config}: expected a JSON object", 2)
        # How a run starts is decided on the command line, not by the file that reproduces it.
        values.pop("resume", None)
        values.pop("overwrite", None)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(given)
    if "train_dir" not in values:
        raise _CommandError("--train-dir is required (or a --config that names train_dir)", 2)
    if values.get("model") is None:
        values["model"] = f"msr_x{args.scale or 4}"
    values.setdefault("output_dir", f"runs/{values['model']}")
    if values.get("resume") == "":
        values["resume"] = values["output_dir"]
    try:
        # Every value, from the file or the options, is checked here, once (TrainConfig does it).
        config = config_from_dict(values, args.config or "arguments")
    except ValueError as e:
        raise _CommandError(str(e), 2)
    arch_scale = config.model.split(".", 1)[0].removeprefix("msr_x")
    if args.scale is not None and arch_scale.isdigit() and int(arch_scale) != args.scale:
        raise _CommandError(f"--model {config.model} is x{arch_scale}, but --scale {args.scale} was given", 1)

    from msrnet.train import CheckpointError, train

    args.run_dir = config.output_dir  # for the line an interrupt prints (`_interrupted`)
    try:
        summary = train(config)
    except (OSError, ValueError, CheckpointError) as e:
        raise _CommandError(str(e), 1)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun
        print(json.dumps(summary))
    return 0


# --- export ----------------------------------------------------------------------------------
def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX or a torch.export program",
        description="Export a model (float32) with dynamic batch, height and width, as ONNX "
        "(needs `pip install \"msrnet[onnx]\"`) or as a torch.export program (.pt2, load with "
        "torch.export.load(path).module()).",
    )
    _add_model_args(p)
    p.add_argument(
        "-o", "--output", required=True, help="output file (.onnx or .pt2), in a folder that exists"
    )
    p.add_argument(
        "--format",
        choices=("onnx", "exported-program"),
        default=None,
        help="default: from the extension of -o (.onnx, .pt2)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: torch's)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the exported file at two new sizes (onnxruntime for ONNX) and compare with PyTorch",
    )
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from msrnet.export import check_output_path, export_model, format_from_path, verify_export

    try:
        # Before the model is loaded and traced: a bad -o costs nothing.
        check_output_path(args.output)
        format = args.format or format_from_path(args.output)
    except OSError as e:
        raise _CommandError(f"-o {e}", 2)
    except ValueError as e:
        raise _CommandError(str(e), 2)
    model = _cli_model(args, "export", code=2)
    try:
        path = export_model(model, args.output, format, opset_version=args.opset)
        print(f"exported {_model_label(args, model.pretrained_cfg)} as {format} -> {path}")
        if args.verify:
            error = verify_export(path, model, format)
            print(f"max abs difference to PyTorch over two new input sizes: {error:.3g}")
            if error > 1e-4:
                raise _CommandError("the exported model disagrees with PyTorch", 1)
    except ImportError as e:
        raise _CommandError(missing_extra(e) or str(e), 1)
    return 0


# --- weights ---------------------------------------------------------------------------------
def _add_weights_parser(subparsers: argparse._SubParsersAction) -> None:
    def folder(value: str) -> str:
        if not value:  # "" would quietly mean the current folder
            raise argparse.ArgumentTypeError("an empty folder name (write . for the current folder)")
        return value

    p = subparsers.add_parser(
        "weights",
        help="list the weights files that ship with msrnet, or copy them (e.g. into ComfyUI)",
        description="List the pretrained weights files inside the installed package (name, scale, "
        "size, path), or copy them into a folder with --copy-to, e.g. ComfyUI/models/upscale_models "
        "(each file's sha256 is checked first). See docs/integrations.md.",
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="only these models or files (msr_x4, msr_x4.t291, msr_x4.t291.safetensors); default: all",
    )
    p.add_argument("--copy-to", metavar="DIR", type=folder, default=None, help="copy the files into DIR (created if missing)")
    p.add_argument(
        "--force",
        action="store_true",
        help="with --copy-to: replace a file of the same name in DIR that is not the shipped one "
        "(refused without it)",
    )
    p.set_defaults(func=_run_weights)


def _run_weights(args: argparse.Namespace) -> int:
    # The catalogue is torch-free: listing and copying answer at once (tests/test_cli_weights.py).
    from msrnet._catalogue import SUFFIX, WEIGHTS_DIR, resolve_names

    try:
        chosen = resolve_names(args.names)
    except ValueError as e:
        raise _CommandError(str(e), 2)
    if args.copy_to is None:
        for name in chosen:
            path = WEIGHTS_DIR / f"{name}{SUFFIX}"
            scale = name.split(".", 1)[0].rsplit("_x", 1)[-1]
            size = f"{path.stat().st_size / 1e6:6.1f} MB" if path.is_file() else "missing (reinstall msrnet)"
            print(f"{name:<20} x{scale:<3} {size}  {path}")
        return 0
    return _copy_weights(chosen, Path(args.copy_to), args.force)


def _copy_weights(chosen: list[str], dest: Path, force: bool) -> int:
    """`msrnet weights --copy-to`: every file checked and every target decided before any write."""
    import os
    import signal
    import threading

    from msrnet._catalogue import PRETRAINED_SHA256, SUFFIX, WEIGHTS_DIR
    from msrnet._utils import atomic_write, remove_temp_files, sha256sum

    if dest.is_symlink() and not dest.exists():
        raise _CommandError(f"--copy-to {dest} is a symbolic link to {os.readlink(dest)}, which does not exist", 2)
    if dest.exists() and not dest.is_dir():
        raise _CommandError(f"--copy-to {dest} is a file, not a folder", 2)
    todo: list[tuple[str, Path, Path]] = []
    try:
        for name in chosen:
            path, digest = WEIGHTS_DIR / f"{name}{SUFFIX}", PRETRAINED_SHA256[name]
            target = dest / path.name
            # A target with the recorded sha256 is the shipped file, whatever the source's state:
            # only a file to copy has its source hashed (half the reading when all are there).
            if target.is_file() and target.stat().st_size == path.stat().st_size and sha256sum(target) == digest:
                print(f"{name}: already in {dest}")
            elif os.path.lexists(target) and not force:
                # Someone's file of that name (an older copy, their own training): never replaced
                # unasked, and refused before anything is written.
                raise _CommandError(
                    f"{target} exists and is not the shipped {name}; pass --force to replace it", 1
                )
            elif sha256sum(path) != digest:
                raise _CommandError(f"{path} does not match its recorded sha256 (reinstall msrnet)", 1)
            else:
                todo.append((name, path, target))
        # What a copy killed outright (SIGKILL, power loss) left beside any of these targets:
        # atomic_write's own naming only, never another file.
        for name in chosen if dest.is_dir() else []:
            for stale in remove_temp_files(dest, f"{name}{SUFFIX}"):
                print(f"{name}: removed {stale.name}, left by an interrupted copy")
        if not todo:
            return 0
        dest.mkdir(parents=True, exist_ok=True)
        # SIGTERM raised as _Terminated (as in upscale), so that atomic_write removes the partial
        # copy as it unwinds; signal.signal works in the main thread only.
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
        try:
            for name, path, target in todo:
                # Written beside the target, then renamed: a half-copied file never sits where a
                # host (ComfyUI) would list it, and SIGTERM/SIGINT remove it (atomic_write).
                with open(path, "rb") as src, atomic_write(target) as out:
                    _copy_chunks(src, out)
                print(f"{name}: copied -> {target}")
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    except _Terminated:
        raise _CommandError(f"stopped by SIGTERM; no partial file is left in {dest}", 128 + signal.SIGTERM) from None
    except OSError as e:
        raise _CommandError(str(e), 1)
    return 0


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _copy_chunks(src: typing.BinaryIO, out: typing.BinaryIO) -> None:
    while chunk := src.read(1 << 20):
        out.write(chunk)


# --- entry point -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msrnet", description="Multi-scale pyramid super-resolution networks."
    )
    parser.add_argument("--version", action="version", version=f"msrnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_upscale_parser, _add_benchmark_parser, _add_train_parser, _add_export_parser, _add_weights_parser
    ):
        add(subparsers)
    return parser


def _say_warning(command: str, text: object) -> None:
    """The one form of a warning on the command line: ``msrnet COMMAND: warning: TEXT``, on one
    line (printed above any progress bar)."""
    from tqdm.auto import tqdm

    tqdm.write(f"msrnet {command}: warning: {' '.join(str(text).split())}", file=sys.stderr)


def _interrupted(args: argparse.Namespace) -> str:
    """What a command interrupted by Ctrl-C leaves behind, for its one line."""
    if args.command == "train":
        if getattr(args, "run_dir", None) is None:  # stopped before the run began
            return "nothing was written"
        # Set once msrnet.train (and torch) is imported: this import costs nothing then.
        from msrnet.train.checkpoint import CHECKPOINT_NAME
        from msrnet.train.outputs import CONFIG_NAME

        run_dir = Path(args.run_dir)
        if (run_dir / CHECKPOINT_NAME).is_file():
            return f"{run_dir} keeps its last checkpoint: continue with --resume"
        if (run_dir / CONFIG_NAME).is_file():
            return f"{run_dir} holds no checkpoint yet: start again with --overwrite"
        return "nothing was written"
    if args.command == "benchmark":
        saved = f"; the images saved so far are in {args.save_images}" if args.save_images else ""
        return f"no scores were printed{saved}"
    if args.command == "weights":
        return "the file being copied was discarded; files copied before it are complete"
    return "the output being written was discarded"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status.

    Every command's errors and warnings are printed here, one line each: an error as
    ``msrnet COMMAND: error: ...`` (`_CommandError`, exit 1 or 2), a warning from anywhere
    (msrnet, torch, a worker thread) as ``msrnet COMMAND: warning: ...`` instead of Python's
    two lines of file name and source, and Ctrl-C as ``msrnet COMMAND: interrupted (Ctrl-C);``
    with what was saved (exit 130).
    """
    import warnings

    args = build_parser().parse_args(argv)
    previous = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        _say_warning(args.command, message)

    warnings.showwarning = show
    try:
        return _main(args)
    finally:
        warnings.showwarning = previous


def _main(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"msrnet {args.command}: interrupted (Ctrl-C); {_interrupted(args)}", file=sys.stderr)
        return 130
    except _CommandError as e:
        message, code = str(e), e.code
        if e.hint:
            message += f"\nmsrnet {args.command}: {e.hint}"
    except ImportError as e:
        # An optional extra that is not installed (onnx, video, spandrel, docs) is one line that
        # says what to install, not a traceback; any other import error is a bug and keeps it.
        hint = missing_extra(e)
        if hint is None:
            raise
        message, code = hint, 1
    print(f"msrnet {args.command}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
