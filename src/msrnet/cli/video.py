"""The video options of ``msrnet upscale`` and the run of one video (`msrnet.video.upscale_video`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from msrnet._utils import first_line, missing_extra, same_file
from msrnet.cli._common import CommandError, UsageError, say_warning

if TYPE_CHECKING:  # torch is imported by the command, so that --help is instant
    import torch
    from torch import nn

__all__ = ["add_args", "run"]


def add_args(p: argparse.ArgumentParser) -> None:
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


def run(args: argparse.Namespace, model: nn.Module, device: torch.device) -> int:
    """``msrnet upscale VIDEO -o OUT``: 0, or 1 when the stream ended early (what was decoded is written).

    Refuses bad arguments or encoder settings with exit status 2, and a video that cannot be
    read or written with 1.
    """
    import warnings

    from msrnet.video import VIDEO_EXTENSIONS, FidelityWarning, VideoError, VideoWarning, upscale_video

    src = Path(args.inputs[0])
    dst = Path(args.output)  # -o is required with an INPUT
    if dst.is_dir():  # a raw stream (.h264) becomes an MP4: raw streams are read, not written
        dst = dst / (src.name if src.suffix.lower() in VIDEO_EXTENSIONS else f"{src.stem}.mp4")
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise UsageError(f"-o {dst} must be a video file ({', '.join(VIDEO_EXTENSIONS)}) or a folder")
    if same_file(src, dst):
        raise UsageError(f"refusing to overwrite the input {src}: pick another -o")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    try:
        import av  # noqa: F401  (before the output's folder is made: a missing extra leaves nothing behind)
    except ImportError as e:
        raise CommandError(missing_extra(e) or first_line(e)) from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VideoWarning)
            warnings.simplefilter("always", FidelityWarning)
            frames = upscale_video(
                model, src, dst, codec=args.codec, crf=args.crf, batch_size=args.batch_size,
                tile=args.tile, tile_overlap=args.tile_overlap, device=device, dtype=args.dtype, fps=args.fps,
            )
    except ValueError as e:  # the encoder's settings (--codec, --crf)
        raise UsageError(str(e)) from None
    except (VideoError, OSError) as e:
        raise CommandError(str(e)) from None
    ours = [w for w in caught if issubclass(w.category, (VideoWarning, FidelityWarning))]
    for w in caught:
        if w not in ours:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    for w in ours:
        say_warning("upscale", w.message)
    early = [w for w in ours if issubclass(w.category, VideoWarning)]
    print(f"msrnet upscale: {frames} frames of {src} upscaled x{model.scale} -> {dst}", file=sys.stderr)
    # A shortened video is written, but a script must not take it for the whole one.
    return 1 if early else 0
