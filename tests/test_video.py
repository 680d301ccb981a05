"""`msrnet upscale clip.mp4 -o out.mp4`: frames, rate, timestamps and audio kept (PyAV)."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import msrnet.models
from msrnet.cli import main
from msrnet.inference import upscale

av = pytest.importorskip("av")

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
    model = msrnet.models.create_model("msr_x2").eval()
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
