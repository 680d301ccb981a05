"""Upscale videos frame by frame through PyAV (``pip install "msrnet[video]"``; its wheels bring FFmpeg).

`upscale_video` decodes the first video stream, upscales frames in batches with
`msrnet.inference.upscale` (tiling, dtypes and devices as for images) and encodes them with what
players rely on kept: each frame's timestamp (frame count, rate and variable rates), the display
rotation (matrix), the colour description (primaries, transfer, matrix, range) and the pixel
format (10-bit stays 10-bit where the encoder can write it). Audio and subtitle tracks are copied
packet by packet (remuxed, not re-encoded), with chapters and container and stream tags, where the
output container can hold them; whatever is not kept is named in one `FidelityWarning`. A stream
without timestamps (a raw ``.h264``) gets them from its frame rate. docs/inference.md has the table.

The input is opened as a file in Python and handed to FFmpeg as a file object, so its name is
never parsed as an FFmpeg protocol or option (``concat:a.mp4|b.mp4`` is one file of that name).
The output is written through msrnet's atomic writer (a new temporary file beside the target,
renamed when complete), so a corrupt input, an encoder error or an interrupted run leaves no
half-written video behind, and a symlink at the target is replaced, never written through.
Frames over Pillow's decompression-bomb limit are refused as images are.

``msrnet upscale clip.mp4 -o clip_x4.mp4`` runs it from the command line (`msrnet.cli`).
"""
from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from msrnet._utils import FidelityWarning

if TYPE_CHECKING:  # torch is imported where it is used: importing this module stays cheap
    import numpy as np
    import torch
    from torch import nn

__all__ = [
    "RAW_VIDEO_EXTENSIONS", "VIDEO_EXTENSIONS", "FidelityWarning", "VideoError", "VideoWarning", "default_codec",
    "upscale_video",
]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm")
# Raw elementary streams, read (their frames get timestamps from the stream's rate) but not written.
RAW_VIDEO_EXTENSIONS = (".h264", ".264", ".h265", ".265", ".hevc", ".mjpeg")
# Codecs whose encoders take a constant-rate-factor quality (lower is better).
_CRF_CODECS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1")
# Encoders tried in order when no codec is given: H.264 (x264) plays everywhere; MPEG-4 part 2
# is in every FFmpeg build.
_DEFAULT_CODECS = ("libx264", "mpeg4")
# The frame rate a raw stream's demuxer assumes when neither the stream nor --fps gives one.
_ASSUMED_FPS = 25
# FFmpeg's flag of a container format without timestamps of its own (libavformat/avformat.h).
_AVFMT_NOTIMESTAMPS = 0x0080
# Tags the muxer or encoder writes itself: copying the input's would be stale.
_OWN_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands", "duration"})


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


def _pixel_limit() -> int | None:
    """Most pixels a frame may have: Pillow's decompression-bomb limit, as for images."""
    from PIL import Image

    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS is not None else None


def _check_frame_size(src: Path, width: int, height: int) -> None:
    """`msrnet.data.io.check_pixels` for a frame of ``src``, as a `VideoError`."""
    from PIL import Image

    from msrnet.data.io import check_pixels

    try:
        check_pixels(width, height, src)
    except Image.DecompressionBombError as e:
        raise VideoError(str(e)) from None


# --- opening ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _opened(src: Path) -> Iterator[Any]:
    """The input container, behind the image decoders' bomb guard; closed (with its file) on exit.

    ``src`` is opened here, as a file, and FFmpeg reads it through that file object: a name such
    as ``concat:a.mp4|b.mp4``, ``pipe:0`` or ``http://x`` is a file name, never a protocol.
    FFmpeg decodes a frame while it probes, before the size can be read, so the pixel limit goes
    to FFmpeg itself (``max_pixels``); a still image under a video name (a PNG called ``.mp4``)
    meets Pillow's own check first, with the message it gets as ``.png``.
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
        file: IO[bytes] = open(src, "rb")  # noqa: SIM115 (closed below, after the container)
    except OSError as e:
        raise VideoError(f"cannot open {src}: {e.strerror or e}") from e
    with file:
        try:
            inp = av.open(file, options=options)
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
            yield inp
        finally:
            inp.close()


@dataclass(frozen=True)
class _Probe:
    """What the first decoded frame and the stream say about the whole video."""

    width: int
    height: int
    pix_fmt: str
    bits: int  # per sample: 8, 10, 12, ...
    colour: dict[str, int]  # color_primaries, color_trc, colorspace, color_range (FFmpeg's enums)
    matrix: tuple[int, ...] | None  # the display matrix (9 int32, 16.16 fixed point), if any
    rate: Fraction  # frames per second: the encoder's nominal rate
    untimed: bool  # the frames carry no timestamps (a raw elementary stream)
    time_base: Fraction  # of the output: the input stream's, or one frame for an untimed stream


def _probe(src: Path, fps: float | None, not_kept: list[str]) -> _Probe:
    """Decode the first frame of ``src`` for the properties the output is set up with."""
    av = _av()
    with _opened(src) as inp:
        vin = inp.streams.video[0]
        try:
            first = next(iter(inp.decode(vin)), None)
        except av.FFmpegError as e:
            raise VideoError(f"{src} is corrupt: {e}") from e
        if first is None:
            raise VideoError(f"{src}: no frame could be decoded")
        # A raw elementary stream (.h264, .mjpeg): its demuxer makes timestamps up at 25 fps, or none.
        untimed = first.pts is None or bool(inp.format.flags & _AVFMT_NOTIMESTAMPS)
        if untimed:
            # The bitstream's own rate (H.264 VUI timing); the demuxer's average is its default guess.
            rate = Fraction(vin.codec_context.framerate) if vin.codec_context.framerate else None
            if rate is None and fps is None:
                not_kept.append(
                    f"timing: the stream has no timestamps and no frame rate; {_ASSUMED_FPS} fps "
                    "assumed (give the rate with --fps)"
                )
            rate = rate or Fraction(fps or _ASSUMED_FPS).limit_denominator(1001)
        else:
            rate = Fraction(vin.average_rate or vin.guessed_rate or 30)
            if fps is not None:
                not_kept.append("--fps: ignored, the stream has its own timestamps (kept)")
        matrix = None
        kinds = av.sidedata.sidedata.Type
        for data in first.side_data:
            if data.type == kinds.DISPLAYMATRIX:
                matrix = struct.unpack("=9i", bytes(data))
            elif data.type != kinds.SEI_UNREGISTERED:  # an encoder's own notes (x264's settings)
                not_kept.append(f"frame side data {data.type.name} (HDR metadata, captions, ...): not copied")
        if any(c.is_alpha for c in first.format.components):
            not_kept.append(f"alpha ({first.format.name}): not upscaled, the output is opaque")
        if first.interlaced_frame:
            not_kept.append("interlacing: the frames are upscaled whole, as progressive frames")
        return _Probe(
            width=first.width, height=first.height, pix_fmt=first.format.name,
            bits=max(c.bits for c in first.format.components),
            colour={k: int(getattr(first, k)) for k in ("color_primaries", "color_trc", "colorspace", "color_range")},
            matrix=matrix, rate=rate, untimed=untimed, time_base=1 / rate if untimed else vin.time_base,
        )


# --- decoding ---------------------------------------------------------------------------------
@dataclass
class _Reader:
    """Demuxes ``inp``, hands packets of copied streams to ``copy``, and yields decoded frames in batches."""

    inp: Any
    src: Path
    probe: _Probe
    copied: Sequence[Any]  # input streams whose packets are remuxed
    decoded: int = 0
    stream_end: float = 0.0  # seconds: the furthest any demuxed packet reached
    _clock: int = field(default=0, repr=False)  # the next frame number (untimed streams)

    def batches(self, size: int, copy: Callable[[Any], None]) -> Iterator[list[Any]]:
        av = _av()
        vin = self.inp.streams.video[0]
        pending: list[Any] = []
        # Each stream ends with an empty packet, whose decode() flushes the decoder.
        for packet in self.inp.demux(vin, *self.copied):
            if packet.pts is not None and packet.time_base is not None:
                end = packet.pts + (packet.duration or 0)
                self.stream_end = max(self.stream_end, float(end * packet.time_base))
            if packet.stream.type != "video":
                if packet.dts is not None:  # demuxers end each stream with an empty packet
                    copy(packet)
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                raise VideoError(f"{self.src} is corrupt after {self.decoded} frames: {e}") from e
            for frame in frames:
                self._check(frame)
                if self.probe.untimed:  # numbered at the stream's rate, so the duration is kept
                    frame.pts, frame.time_base = self._clock, self.probe.time_base
                    self._clock += 1
                self.decoded += 1
                pending.append(frame)
                if len(pending) >= size:
                    yield pending
                    pending = []
        if pending:
            yield pending

    def _check(self, frame: Any) -> None:
        width, height = self.probe.width, self.probe.height
        if (frame.width, frame.height) != (width, height):
            _check_frame_size(self.src, frame.width, frame.height)
            raise VideoError(
                f"{self.src}: frame {self.decoded} is {frame.width}x{frame.height}, the frames before it "
                f"{width}x{height}: a video that changes its frame size mid-stream is not supported"
            )


def _frames_to_tensor(frames: Sequence[Any], probe: _Probe) -> torch.Tensor:
    """Decoded frames -> (B, 3, H, W) float32 RGB in [0, 1], 16 bits per sample for deep video."""
    import numpy as np
    import torch

    rgb, peak = ("rgb48le", 65535) if probe.bits > 8 else ("rgb24", 255)
    # The source range is the frame's: PyAV's default (unspecified) would read full range as limited.
    arr = np.stack([f.to_ndarray(format=rgb, src_color_range=f.color_range) for f in frames])
    return torch.from_numpy(arr.astype(np.float32)).permute(0, 3, 1, 2).div_(peak)


def _levels(y: torch.Tensor, bits: int) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 (8-bit video) or uint16, rounded half up."""
    import torch

    from msrnet.ops.quantize import quantize

    dtype, peak = (torch.uint8, 255) if bits <= 8 else (torch.int32, 65535)
    levels = quantize(y, peak).to(dtype).permute(0, 2, 3, 1).cpu().numpy()
    return levels if bits <= 8 else levels.astype("uint16")


# --- encoding ---------------------------------------------------------------------------------
class _Writer:
    """The output container: the upscaled video stream, the copied tracks, chapters and tags."""

    def __init__(
        self, file: IO[bytes], dst: Path, inp: Any, probe: _Probe, scale: int,
        codec: str, crf: int, not_kept: list[str],
    ) -> None:
        av = _av()
        self.probe = probe
        self.settings = f"--codec {codec}" + (f" --crf {crf}" if codec in _CRF_CODECS else "") + f" into {dst.suffix}"
        self.out = av.open(file, "w", format=_MUXERS[dst.suffix.lower()])
        try:
            self.vout = self._video_stream(inp.streams.video[0], scale, codec, crf, dst, not_kept)
            self.copies = self._copied_streams(inp, dst, not_kept)
            self._chapters_and_tags(inp, dst, not_kept)
        except BaseException:
            self.out.close()
            raise

    def _video_stream(self, vin: Any, scale: int, codec: str, crf: int, dst: Path, not_kept: list[str]) -> Any:
        p = self.probe
        try:
            vout = self.out.add_stream(codec, rate=p.rate)
        except ValueError as e:
            raise ValueError(f"cannot write {codec} into {dst.suffix}: {e}") from e
        vout.width, vout.height = p.width * scale, p.height * scale
        # The input's pixel format where the encoder writes it; else one of the same depth in 4:2:0;
        # else the 8-bit 4:2:0 every player reads.
        formats = [fmt.name for fmt in (vout.codec_context.codec.video_formats or [])]
        wanted = [p.pix_fmt, *(["yuv420p10le"] if p.bits > 8 else []), "yuv420p"]
        vout.pix_fmt = next((f for f in wanted if f in formats), formats[0] if formats else "yuv420p")
        if vout.pix_fmt != p.pix_fmt:
            not_kept.append(
                f"pixel format: {p.pix_fmt} written as {vout.pix_fmt} (the {codec} encoder has no {p.pix_fmt})"
            )
        # The input's time base, so every frame keeps its own timestamp exactly.
        vout.codec_context.time_base = vout.time_base = p.time_base
        for key, value in p.colour.items():
            setattr(vout.codec_context, key, value)
        if codec in _CRF_CODECS:
            vout.options = {"crf": str(crf)}
        else:
            vout.bit_rate = int(0.3 * vout.width * vout.height * float(p.rate))
        sar = vin.codec_context.sample_aspect_ratio or vin.sample_aspect_ratio
        if sar and sar != 1:  # anamorphic pixels stay as wide
            vout.codec_context.sample_aspect_ratio = sar
        if p.matrix is not None:
            # The translation (elements 6, 7) is in pixels, which the upscale multiplies.
            vout.set_display_matrix([v * scale if i in (6, 7) else v for i, v in enumerate(p.matrix)])
        vout.metadata.update(_tags(vin.metadata))
        return vout

    def _copied_streams(self, inp: Any, dst: Path, not_kept: list[str]) -> dict[int, Any]:
        """Audio and subtitle tracks the container holds, by input index; the others are named in ``not_kept``."""
        supported = self.out.supported_codecs
        copies = {}
        for stream in inp.streams:
            if stream.index == inp.streams.video[0].index:
                continue
            name = stream.codec_context.name if stream.codec_context else stream.type
            what = f"{stream.type} track {stream.index} ({name})"
            if stream.type == "video":
                not_kept.append(f"{what}: only the first video track is upscaled")
            elif stream.type not in ("audio", "subtitle"):
                not_kept.append(f"{what}: {stream.type} tracks are not copied")
            elif name not in supported:
                not_kept.append(f"{what}: {dst.suffix} cannot hold {name}")
            else:
                copies[stream.index] = copy = self.out.add_stream_from_template(stream)
                copy.metadata.update(_tags(stream.metadata))
                copy.disposition = stream.disposition  # default, forced, hearing impaired, ...
        return copies

    def _chapters_and_tags(self, inp: Any, dst: Path, not_kept: list[str]) -> None:
        self.out.metadata.update(_tags(inp.metadata))
        chapters = inp.chapters()
        if chapters:
            if dst.suffix.lower() == ".avi":  # its muxer writes none
                not_kept.append(f"chapters: {dst.suffix} holds none ({len(chapters)} in the input)")
            else:
                self.out.set_chapters(chapters)

    def copy(self, packet: Any) -> None:
        packet.stream = self.copies[packet.stream.index]
        self._mux(packet)

    def encode(self, frames: Sequence[Any], levels: np.ndarray | None) -> None:
        """Encode ``levels`` (B, H, W, 3) with the timestamps of ``frames``; None flushes the encoder."""
        av = _av()
        if levels is None:
            self._mux(self._encode(None))
            return
        rgb = "rgb24" if levels.dtype.itemsize == 1 else "rgb48le"
        c = self.probe.colour
        for frame, arr in zip(frames, levels):
            new = av.VideoFrame.from_ndarray(arr, format=rgb)
            new.pts, new.time_base = frame.pts, frame.time_base
            new = new.reformat(
                format=self.vout.pix_fmt, dst_colorspace=c["colorspace"], dst_color_range=c["color_range"]
            )
            # Tags only: asking reformat for them runs a colour-managed conversion (0.8 s a frame).
            new.color_trc, new.color_primaries = c["color_trc"], c["color_primaries"]
            self._mux(self._encode(new))

    def close(self) -> None:
        av = _av()
        try:
            self.out.close()
        except av.FFmpegError as e:  # writing the trailer: the container's settings again
            raise ValueError(f"the encoder refused {self.settings}: {e}") from e

    def _encode(self, frame: Any) -> Any:
        av = _av()
        try:
            return self.vout.encode(frame)
        except av.FFmpegError as e:
            raise ValueError(f"the encoder refused {self.settings}: {e}") from e

    def _mux(self, packets: Any) -> None:
        av = _av()
        try:  # what fails here is the output's settings, not the input
            self.out.mux(packets)
        except av.FFmpegError as e:
            raise ValueError(f"the encoder refused {self.settings}: {e}") from e


def _tags(metadata: dict[str, str]) -> dict[str, str]:
    """The tags of an input container or stream worth copying: not those muxers write themselves."""
    return {k: v for k, v in metadata.items() if k.lower() not in _OWN_TAGS}


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
    fps: float | None = None,
    progress: bool = True,
) -> int:
    """Upscale every frame of ``src`` by ``model.scale`` into ``dst``; returns the frame count.

    ``dst`` is written through `msrnet._utils.atomic_write`: a new temporary file beside it,
    renamed onto it once complete, removed on any error or interrupt (a symlink at ``dst`` is
    replaced, never written through).

    Args:
        model: as for `msrnet.upscale` (RGB in, RGB out).
        src: a video file FFmpeg can read, opened as a file (its name is never an FFmpeg
            protocol). Frames over Pillow's decompression-bomb limit (twice
            ``PIL.Image.MAX_IMAGE_PIXELS``) are refused, as for images.
        dst: the output file; its extension picks the container (``.mp4``, ``.mkv``, ...).
        codec: FFmpeg encoder name (default: `default_codec`). The input's pixel format is kept
            where the encoder writes it; else one of the same depth in 4:2:0, else yuv420p.
        crf: constant rate factor for x264 / x265 / VP9 / AV1 encoders (0-51, lower is better;
            18 looks lossless to most eyes); other encoders get a bit rate of 0.3 bits per pixel.
        batch_size: frames upscaled together (B of the model's input).
        tile, tile_overlap, device, dtype: as for `msrnet.upscale`, per batch of frames;
            ``dtype="auto"`` (None) weighs the video's bits per sample, as for images: a 10-bit
            video computes in fp32 where bf16 (8 bits) would be the default.
        fps: frame rate for a stream with no timestamps and no rate of its own (a raw ``.h264``
            without timing); otherwise ignored, with a warning.
        progress: show a progress bar in frames (stderr).

    Warns:
        FidelityWarning: one, naming every property of the input the output does not keep
            (a track the container cannot hold, a pixel format the encoder cannot write, ...).
        VideoWarning: the stream ended before the frames its header announced (a truncated
            file); what was decoded is written, and the message gives both counts.

    Raises:
        VideoError: ``src`` cannot be opened or decoded, has no video stream, changes its frame
            size mid-stream, or has frames over the pixel limit.
        ValueError: an unknown ``codec``, an ``fps`` outside (0, 1000], or encoder settings
            (codec, crf, container) that the encoder or the container refuses.
    """
    import warnings

    import torch
    from tqdm.auto import tqdm

    from msrnet._utils import atomic_write
    from msrnet.device import run_device
    from msrnet.inference import resolve_dtype, upscale

    src, dst = Path(src), Path(dst)
    scale = int(getattr(model, "scale"))
    codec = codec or default_codec()
    if not _has_encoder(codec):
        raise ValueError(f"PyAV's FFmpeg has no {codec!r} encoder; try {', '.join(_DEFAULT_CODECS)}")
    if dst.suffix.lower() not in _MUXERS:
        raise ValueError(f"{dst}: not a video extension ({', '.join(VIDEO_EXTENSIONS)})")
    if fps is not None and not 0 < fps <= 1000:
        raise ValueError(f"fps must be in (0, 1000], got {fps:g}")
    not_kept: list[str] = []
    probe = _probe(src, fps, not_kept)
    # Frames reach `upscale` as float32 tensors, which say nothing of the video's depth.
    dtype = resolve_dtype(dtype, run_device(model, device), probe.bits)
    with _opened(src) as inp, atomic_write(dst) as f:
        writer = _Writer(f, dst, inp, probe, scale, codec, crf, not_kept)
        reader = _Reader(inp, src, probe, [inp.streams[i] for i in writer.copies])
        try:
            with tqdm(total=inp.streams.video[0].frames or None, desc="upscale", unit="frame",
                      disable=not progress) as bar:
                for frames in reader.batches(batch_size, writer.copy):
                    y = upscale(model, _frames_to_tensor(frames, probe), tile=tile, tile_overlap=tile_overlap,
                                device=device, dtype=dtype)
                    writer.encode(frames, _levels(y, probe.bits))
                    bar.update(len(frames))
            writer.encode([], None)
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                writer.out.close()
            raise
        writer.close()
        if reader.decoded == 0:
            raise VideoError(f"{src}: no frame could be decoded")
        expected = _ended_early(inp, inp.streams.video[0], reader.decoded, reader.stream_end)
    if not_kept:
        warnings.warn(f"{src}: not kept in {dst}: " + "; ".join(not_kept), FidelityWarning, stacklevel=2)
    if expected is not None:
        warnings.warn(
            f"{src}: the stream ended early: {reader.decoded} frames decoded of the {expected} its header "
            f"announces (truncated or damaged); {dst} holds those {reader.decoded}",
            VideoWarning, stacklevel=2,
        )
    return reader.decoded
