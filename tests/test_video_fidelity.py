"""What goes in comes out (issue 36), for video: names are files, and the properties players use survive.

Each test builds its input with PyAV (rotation side data, raw .h264, 10-bit, colour tags, tracks,
chapters) and checks the output's property, not only that the run ended well. docs/inference.md
has the table these rows hold.
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import msrnet.models
from msrnet.cli import main

av = pytest.importorskip("av")

from msrnet.video import FidelityWarning, VideoError, upscale_video  # noqa: E402

TINY = {"stem_widths": (8, 8), "num_blocks": 2, "se_ratio": 0}
RANDOM = ["--model", "msr_x2", "--no-pretrained", "--tile", "none"]


@pytest.fixture(autouse=True)
def tiny_models(use_tiny_models: Callable[..., None]) -> None:
    use_tiny_models(**TINY)


def model() -> Any:
    return msrnet.models.create_model("msr_x2", **TINY).eval()


def has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:
        return False
    return True


def clip(
    path: Path, frames: int = 3, *, codec: str = "mpeg4", pix_fmt: str = "yuv420p", fmt: str | None = None,
    setup: Callable[[Any, Any], None] | None = None, side: int = 16, fill: int = 0,
) -> Path:
    """A small clip at 10 fps; ``setup(container, stream)`` adds what a test needs before frame 0."""
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(codec, rate=10)
        v.width = v.height = side
        v.pix_fmt = pix_fmt
        if setup is not None:
            setup(out, v)
        for i in range(frames):
            arr = np.full((side, side, 3), (40 * i + fill) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def frames_of(path: Path) -> list[Any]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def frame_count(path: Path) -> int:
    return len(frames_of(path))


# --- names are files ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "concat:a.mp4|b.mp4",
    "subfile,,start,0,end,0,,:a.mp4",
    "pipe:0",
    "file:a.mp4",
    "-i",
    "100%d|x\nnewline.mp4",
])
def test_an_input_name_is_a_file_never_a_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # a.mp4 and b.mp4 (5 frames each) are what the protocols would read; the named file has 2.
    monkeypatch.chdir(tmp_path)
    clip(tmp_path / "a.mp4", 5)
    clip(tmp_path / "b.mp4", 5)
    clip(tmp_path / "named.mp4", 2)
    (tmp_path / name).write_bytes((tmp_path / "named.mp4").read_bytes())
    assert upscale_video(model(), name, "out.mp4", codec="mpeg4", tile=None, progress=False) == 2
    assert frame_count(tmp_path / "out.mp4") == 2


def test_a_url_name_is_a_missing_file_and_garbage_under_a_protocol_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    clip(tmp_path / "a.mp4", 5)
    clip(tmp_path / "b.mp4", 5)
    with pytest.raises(VideoError, match="cannot open http:/x: No such file"):
        upscale_video(model(), "http://x", "out.mp4", progress=False)
    (tmp_path / "concat:a.mp4|b.mp4").write_bytes(b"not a video at all" * 50)
    with pytest.raises(VideoError, match="concat:a.mp4|b.mp4"):
        upscale_video(model(), "concat:a.mp4|b.mp4", "out.mp4", progress=False)
    # msrnet upscale 'concat:a.mp4|b.mp4' -o out.mp4: refused as not a video, a.mp4 and b.mp4 unread
    assert main(["upscale", "concat:a.mp4|b.mp4", "-o", "out.mp4", *RANDOM]) == 1
    assert not (tmp_path / "out.mp4").exists()


def test_fps_out_of_range_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = clip(tmp_path / "in.mp4", 2)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--fps", "0", *RANDOM]) == 2
    assert "fps must be in (0, 1000], got 0" in capsys.readouterr().err


def test_an_output_name_is_a_file_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = clip(tmp_path / "in.mp4", 2)
    for name in ("concat:o.mp4|p.mp4", "pipe:1.mp4", "x%03d|\n.mkv"):
        assert main(["upscale", str(src), "-o", name, *RANDOM]) == 0
        assert frame_count(tmp_path / name) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.mp4", "concat:o.mp4|p.mp4", "pipe:1.mp4", "x%03d|\n.mkv"]
    )


# --- rotation, timing, colour, depth ----------------------------------------------------------------
@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_display_rotation_is_kept(tmp_path: Path, degrees: int) -> None:
    src = clip(tmp_path / "rot.mp4", setup=lambda out, v: v.set_display_rotation(degrees))
    assert frames_of(src)[0].rotation % 360 == degrees % 360
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mp4"), *RANDOM]) == 0
    out = frames_of(tmp_path / "out.mp4")
    assert out[0].rotation % 360 == degrees % 360 and (out[0].width, out[0].height) == (32, 32)


def test_a_raw_h264_stream_gets_timestamps_from_its_frame_rate(tmp_path: Path) -> None:
    if not has_encoder("libx264"):
        pytest.skip("needs libx264 to write a raw H.264 stream")
    src = clip(tmp_path / "raw.h264", 10, codec="libx264", fmt="h264")
    assert all(f.pts is None for f in frames_of(src))
    (tmp_path / "folder").mkdir()
    for codec in ("libx264", "mpeg4"):  # mpeg4 takes time bases up to 1/65535 only
        out = tmp_path / f"{codec}.mp4"
        assert main(["upscale", str(src), "-o", str(out), "--codec", codec, *RANDOM]) == 0
        times = [float(f.pts * f.time_base) for f in frames_of(out)]
        assert times == pytest.approx([i / 10 for i in range(10)])  # 10 frames over 1 s, at 10 fps
    # Into a folder, a raw stream becomes an MP4 of its name.
    assert main(["upscale", str(src), "-o", str(tmp_path / "folder"), *RANDOM]) == 0
    assert frame_count(tmp_path / "folder" / "raw.mp4") == 10


def test_a_raw_stream_without_a_rate_takes_fps_or_says_it_assumed_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = clip(tmp_path / "raw.mjpeg", 4, codec="mjpeg", pix_fmt="yuvj420p", fmt="mjpeg")
    assert main(["upscale", str(src), "-o", str(tmp_path / "a.mkv"), "--fps", "5", *RANDOM]) == 0
    assert "warning" not in capsys.readouterr().err
    times = [float(f.pts * f.time_base) for f in frames_of(tmp_path / "a.mkv")]
    assert times == pytest.approx([0, 0.2, 0.4, 0.6])
    assert main(["upscale", str(src), "-o", str(tmp_path / "b.mkv"), *RANDOM]) == 0
    err = capsys.readouterr().err
    assert "no frame rate; 25 fps assumed (give the rate with --fps)" in err
    times = [float(f.pts * f.time_base) for f in frames_of(tmp_path / "b.mkv")]
    assert times == pytest.approx([0, 0.04, 0.08, 0.12])


def test_variable_frame_timing_is_kept(tmp_path: Path) -> None:
    src = tmp_path / "vfr.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width = v.height = 16
        v.pix_fmt = "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate((0, 40, 300, 310, 900)):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 30 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            out.mux(v.encode(frame.reformat(format="yuv420p")))
        out.mux(v.encode(None))
    before = [float(f.pts * f.time_base) for f in frames_of(src)]
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), *RANDOM]) == 0
    assert [float(f.pts * f.time_base) for f in frames_of(tmp_path / "out.mkv")] == pytest.approx(before)


def test_colour_description_and_full_range_are_kept(tmp_path: Path) -> None:
    def setup(out: Any, v: Any) -> None:
        c = v.codec_context
        c.color_primaries, c.color_trc, c.colorspace, c.color_range = 9, 14, 9, 2  # BT.2020, full range

    src = clip(tmp_path / "c.mkv", codec="ffv1", setup=setup, fill=200)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--codec", "ffv1", *RANDOM]) == 0
    f_in, f_out = frames_of(src)[0], frames_of(tmp_path / "out.mkv")[0]
    keys = ("color_primaries", "color_trc", "colorspace", "color_range")
    assert [getattr(f_out, k) for k in keys] == [getattr(f_in, k) for k in keys] == [9, 14, 9, 2]
    # Read back as full range, the upscaled flat frame keeps its level (a limited-range reading
    # of full-range data would stretch 200 to about 220).
    y_in = f_in.to_ndarray(format="rgb24", src_color_range=2).mean()
    y_out = f_out.to_ndarray(format="rgb24", src_color_range=2).mean()
    assert abs(y_out - y_in) < 8


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
def test_ten_bit_stays_ten_bit(tmp_path: Path, codec: str) -> None:
    if not has_encoder(codec) or "yuv420p10le" not in [f.name for f in av.Codec(codec, "w").video_formats]:
        pytest.skip(f"no 10-bit {codec} encoder")
    src = clip(tmp_path / "deep.mkv", codec="ffv1", pix_fmt="yuv420p10le")
    out = tmp_path / "out.mkv"
    assert main(["upscale", str(src), "-o", str(out), "--codec", codec, *RANDOM]) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    # The samples use the 10 bits: not every one is a multiple of 4 (8-bit values shifted up).
    luma = frames_of(out)[1].to_ndarray(format="yuv420p10le")
    assert (luma % 4 != 0).any()


def test_an_encoder_without_the_depth_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = clip(tmp_path / "deep.mkv", codec="ffv1", pix_fmt="yuv420p10le")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--codec", "mpeg4", *RANDOM]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "pixel format: yuv420p10le written as yuv420p (the mpeg4 encoder" in err


# --- tracks, chapters, tags ---------------------------------------------------------------------
def tracks(out: Any, v: Any) -> None:
    out.metadata["title"] = "a clip"
    v.metadata["language"] = "fra"
    out.set_chapters([
        {"id": 1, "start": 0, "end": 1, "time_base": Fraction(1, 10), "metadata": {"title": "One"}},
        {"id": 2, "start": 1, "end": 3, "time_base": Fraction(1, 10), "metadata": {"title": "Two"}},
    ])
    a = out.add_stream("aac", rate=8000, layout="mono")
    s = out.add_mux_stream("subrip")
    s.metadata["language"] = "deu"
    s.disposition = av.stream.Disposition.forced
    # One second of silence, and one subtitle.
    for j in range(0, 8000 - 1023, 1024):
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 8000, j
        out.mux(a.encode(af))
    out.mux(a.encode(None))
    p = av.Packet(b"Hallo")
    p.stream, p.pts, p.dts, p.duration, p.time_base = s, 100, 100, 100, s.time_base
    out.mux(p)


def test_audio_subtitles_chapters_and_tags_are_copied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = clip(tmp_path / "t.mkv", setup=tracks)
    out = tmp_path / "out.mkv"
    assert main(["upscale", str(src), "-o", str(out), *RANDOM]) == 0
    assert "warning" not in capsys.readouterr().err
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert b.metadata["title"] == "a clip"
        assert [(c["start"] * c["time_base"], c["metadata"]) for c in b.chapters()] == [
            (c["start"] * c["time_base"], c["metadata"]) for c in a.chapters()
        ]
        assert b.streams.video[0].metadata["language"] == "fra"
        assert b.streams.subtitles[0].metadata["language"] == "deu"
        assert b.streams.subtitles[0].disposition & av.stream.Disposition.forced
        audio_in = [bytes(p) for p in a.demux(audio=0) if p.size]
        assert audio_in
    with av.open(str(out)) as b:
        assert [bytes(p) for p in b.demux(audio=0) if p.size] == audio_in
    with av.open(str(out)) as b:
        assert [bytes(p) for p in b.demux(b.streams.subtitles[0]) if p.size] == [b"Hallo"]


def test_what_the_container_cannot_hold_is_named_in_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = clip(tmp_path / "t.mkv", setup=tracks)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.avi"), *RANDOM]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "subtitle track 2 (srt): .avi cannot hold srt" in warnings[0]
    assert "chapters: .avi holds none (2 in the input)" in warnings[0]
    with av.open(str(tmp_path / "out.avi")) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_the_library_warns_with_a_fidelity_warning(tmp_path: Path) -> None:
    src = clip(tmp_path / "t.mkv", setup=tracks)
    with pytest.warns(FidelityWarning, match="subtitle track 2"):
        upscale_video(model(), src, tmp_path / "out.avi", codec="mpeg4", tile=None, progress=False)


def test_a_second_video_track_is_named_not_dropped_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "two.mkv"
    with av.open(str(src), "w") as out:
        streams = [out.add_stream("mpeg4", rate=10) for _ in range(2)]
        for v in streams:
            v.width = v.height = 16
            v.pix_fmt = "yuv420p"
        for i in range(3):
            for v in streams:
                frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 40 * i, np.uint8), format="rgb24")
                frame.pts = i
                out.mux(v.encode(frame.reformat(format="yuv420p")))
        for v in streams:
            out.mux(v.encode(None))
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), *RANDOM]) == 0
    assert "video track 1 (mpeg4): only the first video track is upscaled" in capsys.readouterr().err
    assert frame_count(tmp_path / "out.mkv") == 3


def test_anamorphic_pixels_keep_their_aspect_ratio(tmp_path: Path) -> None:
    src = clip(tmp_path / "sar.mp4", setup=lambda out, v: setattr(v.codec_context, "sample_aspect_ratio", Fraction(2)))
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mp4"), *RANDOM]) == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].sample_aspect_ratio == 2


def test_alpha_and_interlacing_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = clip(tmp_path / "alpha.mkv", codec="ffv1", pix_fmt="yuva420p")
    assert main(["upscale", str(src), "-o", str(tmp_path / "a.mkv"), "--codec", "ffv1", *RANDOM]) == 0
    assert "alpha (yuva420p): not upscaled, the output is opaque" in capsys.readouterr().err
    if not has_encoder("libx264"):
        pytest.skip("needs libx264 to write interlaced video")
    src = clip(tmp_path / "il.mkv", codec="libx264", side=32,
               setup=lambda out, v: setattr(v, "options", {"x264-params": "interlaced=1"}))
    assert frames_of(src)[0].interlaced_frame
    assert main(["upscale", str(src), "-o", str(tmp_path / "i.mkv"), *RANDOM]) == 0
    assert "interlacing: the frames are upscaled whole, as progressive frames" in capsys.readouterr().err
