"""`msrnet upscale clip.mp4 -o out.mp4`: frames, rate, timestamps and audio kept (PyAV)."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from _extras import needs_extra  # tests/_extras.py

import msrnet.models
from msrnet.cli import main
from msrnet.inference import upscale

av = needs_extra("av")

from msrnet.video import default_codec, upscale_video  # noqa: E402

TINY = {"stem_widths": (8, 8), "num_blocks": 2, "se_ratio": 0}
RANDOM = ["--model", "msr_x2", "--no-pretrained", "--tile", "none"]


@pytest.fixture(autouse=True)
def tiny_models(use_tiny_models: Callable[..., None]) -> None:
    use_tiny_models(**TINY)


def make_clip(path: Path, frames: int = 11, size: tuple[int, int] = (24, 16), fps: int = 10) -> Path:
    """An MPEG-4 clip with an AAC sine track; frame i has timestamp i / fps."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=fps)
        v.width, v.height = size
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=8000, layout="mono")
        for i in range(frames):
            arr = np.full((size[1], size[0], 3), 20 * i % 256, np.uint8)
            arr[:, : size[0] // 2, 1] = 255 - 10 * i
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        t = np.arange(8000 * frames // fps) / 8000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for j in range(0, len(samples) - 1023, 1024):
            af = av.AudioFrame.from_ndarray(samples[None, j : j + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 8000, j
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    return path


def probe(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(video=0))
        info = {
            "size": (v.codec_context.width, v.codec_context.height),
            "rate": v.average_rate,
            "times": [float(f.pts * f.time_base) for f in frames],
            "first": frames[0].to_ndarray(format="rgb24"),
            "codec": v.codec_context.name,
        }
    with av.open(str(path)) as c:
        info["audio"] = [(bytes(p), p.pts) for p in c.demux(audio=0) if p.size]
        info["audio_codec"] = c.streams.audio[0].codec_context.name
    return info


def test_cli_upscales_every_frame_and_copies_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    assert main(["upscale", str(src), "-o", str(out), "--batch-size", "4", *RANDOM]) == 0
    assert "11 frames" in capsys.readouterr().err
    before, after = probe(src), probe(out)
    assert after["size"] == (48, 32)
    assert after["rate"] == before["rate"] == 10
    assert after["times"] == pytest.approx(before["times"]) and len(after["times"]) == 11
    assert after["audio"] == before["audio"] and after["audio_codec"] == "aac"  # remuxed, not re-encoded
    assert after["codec"] == ("h264" if default_codec() == "libx264" else "mpeg4")
    assert not list(tmp_path.glob(".*part*"))


def test_frames_are_the_models_output(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=3)
    model = msrnet.models.create_model("msr_x2", **TINY).eval()
    upscale_video(model, src, tmp_path / "out.mkv", codec="ffv1", tile=None, progress=False)  # lossless
    with av.open(str(src)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    expected = upscale(model, first)
    got = probe(tmp_path / "out.mkv")["first"]
    # ffv1 stores yuv420p losslessly, so only the RGB <-> YUV 4:2:0 conversion differs.
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 4


def test_codec_flag_and_unknown_codec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=3)
    assert main(["upscale", str(src), "-o", str(tmp_path / "o.mp4"), "--codec", "mpeg4", *RANDOM]) == 0
    assert probe(tmp_path / "o.mp4")["codec"] == "mpeg4"
    assert main(["upscale", str(src), "-o", str(tmp_path / "p.mp4"), "--codec", "nonesuch", *RANDOM]) == 2
    assert "no 'nonesuch' encoder" in capsys.readouterr().err


def test_corrupt_stream_exits_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "clip.mp4")
    bad = tmp_path / "bad.mp4"
    data = bytearray(src.read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\0not a video" * 100)
    for path in (bad, garbage, tmp_path / "missing.mp4"):
        code = main(["upscale", str(path), "-o", str(tmp_path / "out.mp4"), *RANDOM])
        err = capsys.readouterr().err
        assert code == 1, err
        assert "msrnet upscale: error:" in err and "Traceback" not in err
        assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*part*"))


# --- untrusted inputs, encoder errors, interrupts (issue 25) -----------------------------------
def test_symlinks_planted_at_the_old_temp_name_and_the_output_are_not_written_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ln -s victim.txt .out2.part.mp4; msrnet upscale clip.mp4 -o out2.mp4
    src = make_clip(tmp_path / "clip.mp4", frames=3)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".out2.part.mp4").symlink_to(victim.name)
    other = tmp_path / "other.txt"
    other.write_text("also precious")
    (tmp_path / "out3.mp4").symlink_to(other.name)
    for out in ("out2.mp4", "out3.mp4"):
        assert main(["upscale", str(src), "-o", str(tmp_path / out), *RANDOM]) == 0, capsys.readouterr().err
        assert not (tmp_path / out).is_symlink() and len(probe(tmp_path / out)["times"]) == 3
    assert victim.read_text() == "precious" and other.read_text() == "also precious"
    assert not list(tmp_path.glob(".*.tmp*"))


def test_a_png_bomb_named_mp4_meets_the_image_bomb_guard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    # A small PNG whose header claims more pixels than Pillow's limit (what a 16000x16000
    # bomb is, at a size a test can write): refused before any frame is decoded.
    bomb = tmp_path / "bomb.mp4"
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 64 * 64 // 2 - 1
        Image.new("RGB", (64, 64)).save(bomb, format="PNG")
        code = main(["upscale", str(bomb), "-o", str(tmp_path / "out.mp4"), *RANDOM])
        png = tmp_path / "bomb.png"
        png.write_bytes(bomb.read_bytes())
        code_png = main(["upscale", str(png), "-o", str(tmp_path / "out.png"), *RANDOM])
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    err = capsys.readouterr().err
    assert code == 1 and code_png == 1, err
    assert "bomb.mp4: Image size (4096 pixels) exceeds limit" in err and "Traceback" not in err
    assert "bomb.png: Image size (4096 pixels) exceeds limit" in err
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*.tmp*"))


def test_frames_over_the_pixel_limit_are_not_decoded(tmp_path: Path) -> None:
    from PIL import Image

    from msrnet.video import VideoError

    src = make_clip(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 64 * 48 // 2 - 1
        with pytest.raises(VideoError, match="MAX_IMAGE_PIXELS"):
            upscale_video(msrnet.models.create_model("msr_x2", **TINY), src, tmp_path / "out.mp4", progress=False)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_a_truncated_stream_is_said_with_the_frame_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "clip.mkv", frames=20)
    data = src.read_bytes()
    short = tmp_path / "short.mkv"
    short.write_bytes(data[: len(data) // 2])
    code = main(["upscale", str(short), "-o", str(tmp_path / "out.mkv"), *RANDOM])
    err = capsys.readouterr().err
    assert code == 1, err
    warning = next(line for line in err.splitlines() if "warning" in line)
    decoded = len(probe(tmp_path / "out.mkv")["times"])
    assert "ended early" in warning and f"{decoded} frames decoded of the 20" in warning
    assert 0 < decoded < 20
    # The whole file: no warning, exit 0.
    assert main(["upscale", str(src), "-o", str(tmp_path / "full.mkv"), *RANDOM]) == 0
    assert "ended early" not in capsys.readouterr().err


@pytest.mark.parametrize("options, blamed", [
    (["--crf", "-5"], "--crf -5"),
    (["--codec", "mpeg4", "-o-suffix", ".webm"], "mpeg4"),
])
def test_encoder_errors_blame_the_settings_not_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], blamed: str
) -> None:
    if "--crf" in options and default_codec() != "libx264":
        pytest.skip("needs libx264 for --crf")
    src = make_clip(tmp_path / "clip.mp4", frames=3)
    suffix = ".mp4"
    if "-o-suffix" in options:
        i = options.index("-o-suffix")
        suffix, options = options[i + 1], options[:i]
    out = tmp_path / f"out{suffix}"
    code = main(["upscale", str(src), "-o", str(out), *options, *RANDOM])
    err = capsys.readouterr().err
    assert code == 2, err
    assert blamed in err and "corrupt" not in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp*"))


def test_a_mid_stream_size_change_names_the_file_and_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    def part(side: int, frames: int, start: int) -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpegts") as out:
            v = out.add_stream("mpeg4", rate=10)
            v.width = v.height = side
            v.pix_fmt = "yuv420p"
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 40 * i, np.uint8), format="rgb24")
                frame.pts = start + i
                out.mux(v.encode(frame))
            out.mux(v.encode(None))
        return buf.getvalue()

    # Two MPEG-TS streams back to back: the decoder meets a new frame size at frame 3.
    src = tmp_path / "resize.mp4"
    src.write_bytes(part(16, 3, 0) + part(24, 2, 3))
    with av.open(str(src)) as c:
        sizes = [(f.width, f.height) for f in c.decode(video=0)]
    if len(set(sizes)) < 2:
        pytest.skip(f"this FFmpeg wrote one frame size: {sizes}")
    code = main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), *RANDOM])
    err = capsys.readouterr().err
    assert code == 1, err
    first = sizes.index(sizes[-1])
    assert f"{src}: frame {first} is" in err and "same shape" not in err and "Traceback" not in err
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob(".*.tmp*"))


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupts_end_in_one_line_and_leave_no_temp_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, signal_name: str, code: int
) -> None:
    import os
    import signal

    import msrnet.inference

    src = make_clip(tmp_path / "clip.mp4", frames=8)
    real = msrnet.inference.upscale
    calls = []

    def upscale_then_signal(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the first batch is in the temporary file by now
            assert list(tmp_path.glob(".out.mp4.*.tmp.mp4"))
            os.kill(os.getpid(), getattr(signal, signal_name))
        return real(*args, **kwargs)

    monkeypatch.setattr(msrnet.inference, "upscale", upscale_then_signal)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mp4"), "--batch-size", "2", *RANDOM]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("msrnet upscale: ")
    assert not (tmp_path / "out.mp4").exists() and not list(tmp_path.glob(".*.tmp*"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or signal_name == "SIGINT"


def test_a_video_output_is_never_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_clip(tmp_path / "clip.mp4", frames=2)
    before = src.read_bytes()
    (tmp_path / "alias.mp4").symlink_to(src.name)
    for out in (tmp_path, tmp_path / "alias.mp4"):  # its own folder; a link to it
        assert main(["upscale", str(src), "-o", str(out), *RANDOM]) == 2
        assert "refusing to overwrite the input" in capsys.readouterr().err
    assert src.read_bytes() == before and not list(tmp_path.glob(".*.tmp*"))


def test_a_video_shorter_than_its_audio_did_not_end_early(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Matroska has no frame count, only the duration of its longest stream: 1 s of video with
    # 2 s of audio is whole.
    src = tmp_path / "long_audio.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 16, 16, "yuv420p"
        a = out.add_stream("aac", rate=8000, layout="mono")
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        samples = np.zeros(16000, np.float32)
        for j in range(0, len(samples) - 1023, 1024):
            af = av.AudioFrame.from_ndarray(samples[None, j : j + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 8000, j
            out.mux(a.encode(af))
        out.mux(a.encode(None))
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), *RANDOM]) == 0
    assert "ended early" not in capsys.readouterr().err


def make_deep_clip(path: Path, frames: int = 3, size: tuple[int, int] = (24, 16)) -> Path:
    """A lossless 10-bit (yuv420p10le, FFV1) clip with no audio."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("ffv1", rate=10)
        v.width, v.height = size
        v.pix_fmt = "yuv420p10le"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 9000 * i, np.uint16), format="rgb48le")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    return path


def test_auto_dtype_weighs_the_videos_bits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Frames reach `upscale` as float32 tensors; the video's depth decides: bf16 (8 significant
    # bits, on a CPU said to compute it natively) for 8-bit video, fp32 for 10-bit.
    import msrnet.device
    import msrnet.inference

    monkeypatch.setattr(msrnet.device, "cpu_has_native_bf16", lambda: True)
    dtypes: list[object] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        dtypes.append(kwargs["dtype"])
        return upscale(*args, **kwargs)

    monkeypatch.setattr(msrnet.inference, "upscale", recording)
    model = msrnet.models.create_model("msr_x2", pretrained=False)
    upscale_video(model, make_clip(tmp_path / "eight.mp4", frames=2), tmp_path / "a.mp4", progress=False)
    assert dtypes and set(dtypes) == {torch.bfloat16}
    dtypes.clear()
    upscale_video(model, make_deep_clip(tmp_path / "ten.mkv"), tmp_path / "b.mkv", codec="ffv1", progress=False)
    assert dtypes and set(dtypes) == {torch.float32}
    dtypes.clear()
    upscale_video(model, tmp_path / "ten.mkv", tmp_path / "c.mkv", codec="ffv1", dtype="bf16", progress=False)
    assert set(dtypes) == {torch.bfloat16}  # asked for: taken as given
