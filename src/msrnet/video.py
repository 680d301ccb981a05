"""Upscale videos frame by frame through PyAV (``pip install "msrnet[video]"``; its wheels bring FFmpeg).

`upscale_video` decodes the first video stream, upscales frames in batches with
`msrnet.inference.upscale` (tiling, dtypes and devices as for images) and encodes them with the
input frames' own timestamps, so the frame count, frame rate and timing (variable frame rates
included) are kept. Audio streams are copied packet by packet (remuxed, not re-encoded). The
output is written to a temporary file next to the target and renamed when complete, so a
corrupt input or an interrupted run leaves no half-written video behind.

``msrnet upscale clip.mp4 -o clip_x4.mp4`` is this module's command line.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the CLI imports this module to build its parser: no torch at import time
    import torch
    from torch import nn

__all__ = ["VIDEO_EXTENSIONS", "VideoError", "default_codec", "upscale_video"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm")
# Codecs whose encoders take a constant-rate-factor quality (lower is better).
_CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
# Encoders tried in order when no codec is given: H.264 (x264) plays everywhere; MPEG-4 part 2
# is in every FFmpeg build.
_DEFAULT_CODECS = ("libx264", "mpeg4")


class VideoError(RuntimeError):
    """The input cannot be read as a video (missing, corrupt or without a video stream)."""


def _av() -> Any:
    try:
        import av
    except ImportError as e:
        raise ImportError('video upscaling needs PyAV: pip install "msrnet[video]"') from e
    return av


def _has_encoder(name: str) -> bool:
    av = _av()
    try:
        av.Codec(name, "w")
    except Exception:  # PyAV raises UnknownCodecError or ValueError depending on version
        return False
    return True


def default_codec() -> str:
    """libx264 if PyAV's FFmpeg has it, else mpeg4."""
    return next((c for c in _DEFAULT_CODECS if _has_encoder(c)), _DEFAULT_CODECS[-1])


def _frames_to_tensor(frames: Sequence[Any]) -> torch.Tensor:
    """Decoded frames -> (B, 3, H, W) float32 RGB in [0, 1]."""
    import numpy as np
    import torch

    arr = np.stack([f.to_ndarray(format="rgb24") for f in frames])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255)


def upscale_video(
    model: nn.Module,
    src: str | Path,
    dst: str | Path,
    *,
    codec: str | None = None,
    crf: int = 18,
    batch_size: int = 4,
    tile: int | Literal["auto"] | None = "auto",
    tile_overlap: int = 32,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    progress: bool = True,
) -> int:
    """Upscale every frame of ``src`` by ``model.scale`` into ``dst``; returns the frame count.

    Args:
        model: as for `msrnet.upscale` (RGB in, RGB out).
        src: a video file FFmpeg can read.
        dst: the output file; its extension picks the container (``.mp4``, ``.mkv``, ...).
        codec: FFmpeg encoder name (default: `default_codec`). Its pixel format is yuv420p where
            the encoder supports it (what players expect).
        crf: constant rate factor for x264 / x265 / VP9 / AV1 encoders (0-51, lower is better;
            18 looks lossless to most eyes); other encoders get a bit rate of 0.3 bits per pixel.
        batch_size: frames upscaled together (B of the model's input).
        tile, tile_overlap, device, dtype: as for `msrnet.upscale`, per batch of frames.
        progress: show a progress bar in frames (stderr).

    Raises:
        VideoError: ``src`` cannot be opened or decoded, or has no video stream.
        ValueError: an unknown ``codec``, or one the container cannot hold.
    """
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from msrnet.inference import upscale

    av = _av()
    src, dst = Path(src), Path(dst)
    scale = int(getattr(model, "scale"))
    codec = codec or default_codec()
    if not _has_encoder(codec):
        raise ValueError(f"PyAV's FFmpeg has no {codec!r} encoder; try {', '.join(_DEFAULT_CODECS)}")
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open {src}: {e}") from e
    tmp = dst.with_name(f".{dst.stem}.part{dst.suffix}")
    count = 0
    try:
        if not inp.streams.video:
            raise VideoError(f"{src} has no video stream")
        vin = inp.streams.video[0]
        audio = list(inp.streams.audio)
        out = av.open(str(tmp), "w")  # the container follows the extension
        try:
            rate = vin.average_rate or vin.guessed_rate or 30
            try:
                vout = out.add_stream(codec, rate=rate)
            except ValueError as e:
                raise ValueError(f"cannot write {codec} into {dst.suffix}: {e}") from e
            vout.width = vin.codec_context.width * scale
            vout.height = vin.codec_context.height * scale
            formats = [f.name for f in (vout.codec_context.codec.video_formats or [])]
            vout.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
            # The input's time base, so every frame keeps its own timestamp exactly.
            vout.codec_context.time_base = vin.time_base
            vout.time_base = vin.time_base
            if codec in _CRF_CODECS:
                vout.options = {"crf": str(crf)}
            else:
                vout.bit_rate = int(0.3 * vout.width * vout.height * float(rate))
            aout = {a.index: out.add_stream_from_template(a) for a in audio}

            bar = tqdm(total=vin.frames or None, desc="upscale", unit="frame", disable=not progress)
            pending: list[Any] = []

            def flush() -> None:
                nonlocal count
                if not pending:
                    return
                y = upscale(model, _frames_to_tensor(pending), tile=tile, tile_overlap=tile_overlap,
                            device=device, dtype=dtype)
                assert isinstance(y, torch.Tensor)
                levels = torch.floor(y * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                for frame, arr in zip(pending, levels):
                    new = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                    new.pts, new.time_base = frame.pts, frame.time_base
                    out.mux(vout.encode(new.reformat(format=vout.pix_fmt)))
                count += len(pending)
                bar.update(len(pending))
                pending.clear()

            try:
                # Each stream ends with an empty packet, whose decode() flushes the decoder.
                for packet in inp.demux(vin, *audio):
                    if packet.stream.type == "audio":
                        if packet.dts is None:  # demuxers end each stream with an empty packet
                            continue
                        packet.stream = aout[packet.stream.index]
                        out.mux(packet)
                        continue
                    for frame in packet.decode():
                        pending.append(frame)
                        if len(pending) >= batch_size:
                            flush()
                flush()
                out.mux(vout.encode(None))
            except av.FFmpegError as e:
                raise VideoError(f"{src} is corrupt after {count} frames: {e}") from e
            finally:
                bar.close()
        finally:
            out.close()
        if count == 0:
            raise VideoError(f"{src}: no frame could be decoded")
        os.replace(tmp, dst)
    finally:
        inp.close()
        tmp.unlink(missing_ok=True)
    return count


# --- command line (`msrnet upscale clip.mp4 -o out.mp4`) ----------------------------------------
def add_video_args(p: argparse.ArgumentParser) -> None:
    """The video options of ``msrnet upscale``."""
    g = p.add_argument_group('video (INPUT ending in .mp4, .mkv, .mov, ...; needs "msrnet[video]")')
    g.add_argument("--codec", default=None, help="FFmpeg encoder (default: libx264 if available, else mpeg4)")
    g.add_argument("--crf", type=int, default=18, help="x264/x265/VP9/AV1 quality, lower is better (default: 18)")
    g.add_argument("--batch-size", type=int, default=4, help="video frames upscaled together (default: 4)")


def run_video(args: argparse.Namespace, model: nn.Module, device: torch.device) -> int:
    """``msrnet upscale VIDEO -o OUT``: 0 on success, 1 if the video failed, 2 on bad arguments."""
    def error(message: str, code: int = 2) -> int:
        print(f"msrnet upscale: error: {message}", file=sys.stderr)
        return code

    src = Path(args.inputs[0])
    if args.output is None:
        return error("-o/--output is required")
    dst = Path(args.output)
    if dst.is_dir():
        dst = dst / src.name
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        return error(f"-o {dst} must be a video file ({', '.join(VIDEO_EXTENSIONS)}) or a folder")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        return error(f"refusing to overwrite the input {src}: pick another -o")
    if args.batch_size < 1:
        return error(f"--batch-size must be positive, got {args.batch_size}")
    try:
        _av()
    except ImportError as e:
        return error(str(e))
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        frames = upscale_video(
            model, src, dst, codec=args.codec, crf=args.crf, batch_size=args.batch_size,
            tile=args.tile, tile_overlap=args.tile_overlap, device=device, dtype=args.dtype,
        )
    except ValueError as e:
        return error(str(e))
    except (VideoError, OSError) as e:
        return error(str(e), 1)
    print(f"msrnet upscale: {frames} frames of {src} upscaled x{model.scale} -> {dst}", file=sys.stderr)
    return 0
