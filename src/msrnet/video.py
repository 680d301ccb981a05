"""Upscale videos frame by frame through PyAV (``pip install "msrnet[video]"``; its wheels bring FFmpeg).

`upscale_video` decodes the first video stream, upscales frames in batches with
`msrnet.inference.upscale` (tiling, dtypes and devices as for images) and encodes them with the
input frames' own timestamps, so the frame count, frame rate and timing (variable frame rates
included) are kept. Audio streams are copied packet by packet (remuxed, not re-encoded). The
output is written through msrnet's atomic writer (a new temporary file beside the target,
renamed when complete), so a corrupt input, an encoder error or an interrupted run leaves no
half-written video behind, and a symlink at the target is replaced, never written through.
Frames over Pillow's decompression-bomb limit are refused as images are.

``msrnet upscale clip.mp4 -o clip_x4.mp4`` runs it from the command line (`msrnet.cli`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch is imported where it is used: importing this module stays cheap
    import torch
    from torch import nn

__all__ = ["VIDEO_EXTENSIONS", "VideoError", "VideoWarning", "default_codec", "upscale_video"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm")
# Codecs whose encoders take a constant-rate-factor quality (lower is better).
_CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
# Encoders tried in order when no codec is given: H.264 (x264) plays everywhere; MPEG-4 part 2
# is in every FFmpeg build.
_DEFAULT_CODECS = ("libx264", "mpeg4")


class VideoError(RuntimeError):
    """The input cannot be read as a video (missing, corrupt, without a video stream, too large)."""


class VideoWarning(UserWarning):
    """The input was read only in part: its stream ended before the frames its header announced."""


# FFmpeg muxer of each output extension: the output is written through a file object (the
# atomic writer's), which carries no name for FFmpeg to guess the container from.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi", ".webm": "webm"}


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


def _pixel_limit() -> int | None:
    """Most pixels a frame may have: Pillow's decompression-bomb limit, as for images."""
    from PIL import Image

    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS is not None else None


def _open_input(src: Path) -> Any:
    """``av.open(src)`` behind the image decoders' bomb guard: no frame over `_pixel_limit` is decoded.

    FFmpeg decodes a frame while it probes a file, before its size can be read, so the limit
    goes to FFmpeg itself (``max_pixels``), and a still image under a video name (a PNG called
    ``.mp4``) meets Pillow's own check first, with the message it gets as ``.png``.
    """
    from PIL import Image, UnidentifiedImageError

    av = _av()
    try:
        with Image.open(src):
            pass
    except Image.DecompressionBombError as e:
        raise VideoError(str(e) if str(src) in str(e) else f"{src}: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError):
        pass  # not an image Pillow knows: FFmpeg decides
    limit = _pixel_limit()
    options = {"max_pixels": str(limit)} if limit is not None else {}
    try:
        inp = av.open(str(src), options=options)
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open {src}: {e}") from e
    try:
        if not inp.streams.video:
            raise VideoError(f"{src} has no video stream")
        ctx = inp.streams.video[0].codec_context
        if ctx.width <= 0 or ctx.height <= 0:
            raise VideoError(
                f"{src}: no frame size could be read (frames over {limit} pixels, the limit of "
                "PIL.Image.MAX_IMAGE_PIXELS, are not decoded)"
            )
        _check_frame_size(src, ctx.width, ctx.height)
        ctx.options = options  # the decoder refuses larger frames later in the stream too
    except BaseException:
        inp.close()
        raise
    return inp


def _check_frame_size(src: Path, width: int, height: int) -> None:
    """`msrnet.data.io.check_pixels` for a frame of ``src``, as a `VideoError`."""
    from PIL import Image

    from msrnet.data.io import check_pixels

    try:
        check_pixels(width, height, src)
    except Image.DecompressionBombError as e:
        raise VideoError(str(e)) from None


def _ended_early(inp: Any, vin: Any, count: int, stream_end: float) -> int | None:
    """The frame count the header announces, if the stream stopped short of it; else None.

    With a frame count in the header (MP4, MOV) the decoded count must reach it. Without one
    (Matroska, WebM) only the container's duration is known, which is that of its longest
    stream, so the stream ended early when no packet of any stream (``stream_end``, seconds)
    reached within two frames of it: a video that is merely shorter than its audio is not.
    """
    if vin.frames:
        return int(vin.frames) if count < vin.frames else None
    rate = float(vin.average_rate or vin.guessed_rate or 0)
    if not inp.duration or not rate:
        return None
    duration = inp.duration / 1_000_000  # microseconds
    return int(duration * rate) if stream_end < duration - 2 / rate else None


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

    ``dst`` is written through `msrnet._utils.atomic_write`: a new temporary file beside it,
    renamed onto it once complete, removed on any error or interrupt (a symlink at ``dst`` is
    replaced, never written through).

    Args:
        model: as for `msrnet.upscale` (RGB in, RGB out).
        src: a video file FFmpeg can read. Frames over Pillow's decompression-bomb limit (twice
            ``PIL.Image.MAX_IMAGE_PIXELS``) are refused, as for images.
        dst: the output file; its extension picks the container (``.mp4``, ``.mkv``, ...).
        codec: FFmpeg encoder name (default: `default_codec`). Its pixel format is yuv420p where
            the encoder supports it (what players expect).
        crf: constant rate factor for x264 / x265 / VP9 / AV1 encoders (0-51, lower is better;
            18 looks lossless to most eyes); other encoders get a bit rate of 0.3 bits per pixel.
        batch_size: frames upscaled together (B of the model's input).
        tile, tile_overlap, device, dtype: as for `msrnet.upscale`, per batch of frames.
        progress: show a progress bar in frames (stderr).

    Warns:
        VideoWarning: the stream ended before the frames its header announced (a truncated
            file); what was decoded is written, and the message gives both counts.

    Raises:
        VideoError: ``src`` cannot be opened or decoded, has no video stream, changes its frame
            size mid-stream, or has frames over the pixel limit.
        ValueError: an unknown ``codec``, or encoder settings (codec, crf, container) that the
            encoder or the container refuses.
    """
    import warnings

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from msrnet._utils import atomic_write
    from msrnet.inference import upscale

    av = _av()
    src, dst = Path(src), Path(dst)
    scale = int(getattr(model, "scale"))
    codec = codec or default_codec()
    if not _has_encoder(codec):
        raise ValueError(f"PyAV's FFmpeg has no {codec!r} encoder; try {', '.join(_DEFAULT_CODECS)}")
    muxer = _MUXERS.get(dst.suffix.lower())
    if muxer is None:
        raise ValueError(f"{dst}: not a video extension ({', '.join(VIDEO_EXTENSIONS)})")
    settings = f"--codec {codec}" + (f" --crf {crf}" if codec in _CRF_CODECS else "") + f" into {dst.suffix}"
    inp = _open_input(src)
    count = 0
    try:
        vin = inp.streams.video[0]
        width, height = vin.codec_context.width, vin.codec_context.height
        audio = list(inp.streams.audio)
        with atomic_write(dst) as f:
            out = av.open(f, "w", format=muxer)
            try:
                rate = vin.average_rate or vin.guessed_rate or 30
                try:
                    vout = out.add_stream(codec, rate=rate)
                except ValueError as e:
                    raise ValueError(f"cannot write {codec} into {dst.suffix}: {e}") from e
                vout.width = width * scale
                vout.height = height * scale
                formats = [fmt.name for fmt in (vout.codec_context.codec.video_formats or [])]
                vout.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
                # The input's time base, so every frame keeps its own timestamp exactly.
                vout.codec_context.time_base = vin.time_base
                vout.time_base = vin.time_base
                if codec in _CRF_CODECS:
                    vout.options = {"crf": str(crf)}
                else:
                    vout.bit_rate = int(0.3 * vout.width * vout.height * float(rate))
                aout = {a.index: out.add_stream_from_template(a) for a in audio}

                def write(packets: Any) -> None:
                    # What fails here is the output's settings, not the input.
                    try:
                        out.mux(packets)
                    except av.FFmpegError as e:
                        raise ValueError(f"the encoder refused {settings}: {e}") from e

                def encode(frame: Any) -> None:
                    try:
                        packets = vout.encode(frame)
                    except av.FFmpegError as e:
                        raise ValueError(f"the encoder refused {settings}: {e}") from e
                    write(packets)

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
                        encode(new.reformat(format=vout.pix_fmt))
                    count += len(pending)
                    bar.update(len(pending))
                    pending.clear()

                decoded = 0
                stream_end = 0.0  # seconds: the furthest any demuxed packet reached
                try:
                    # Each stream ends with an empty packet, whose decode() flushes the decoder.
                    for packet in inp.demux(vin, *audio):
                        if packet.pts is not None and packet.time_base is not None:
                            end = packet.pts + (packet.duration or 0)
                            stream_end = max(stream_end, float(end * packet.time_base))
                        if packet.stream.type == "audio":
                            if packet.dts is None:  # demuxers end each stream with an empty packet
                                continue
                            packet.stream = aout[packet.stream.index]
                            write(packet)
                            continue
                        try:
                            frames = packet.decode()
                        except av.FFmpegError as e:
                            raise VideoError(f"{src} is corrupt after {decoded} frames: {e}") from e
                        for frame in frames:
                            if (frame.width, frame.height) != (width, height):
                                _check_frame_size(src, frame.width, frame.height)
                                raise VideoError(
                                    f"{src}: frame {decoded} is {frame.width}x{frame.height}, the frames "
                                    f"before it {width}x{height}: a video that changes its frame size "
                                    "mid-stream is not supported"
                                )
                            decoded += 1
                            pending.append(frame)
                            if len(pending) >= batch_size:
                                flush()
                    flush()
                    encode(None)
                finally:
                    bar.close()
            except BaseException:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    out.close()
                raise
            try:
                out.close()
            except av.FFmpegError as e:  # writing the trailer: the container's settings again
                raise ValueError(f"the encoder refused {settings}: {e}") from e
            if count == 0:
                raise VideoError(f"{src}: no frame could be decoded")
        expected = _ended_early(inp, vin, count, stream_end)
        if expected is not None:
            warnings.warn(
                f"{src}: the stream ended early: {count} frames decoded of the {expected} its header "
                f"announces (truncated or damaged); {dst} holds those {count}",
                VideoWarning, stacklevel=2,
            )
    finally:
        inp.close()
    return count
