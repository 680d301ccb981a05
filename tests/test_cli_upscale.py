"""`msrnet upscale` from the command line (run in-process)."""
from __future__ import annotations

import errno
import json
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageSequence
from safetensors.torch import save_file

import msrnet.models
from msrnet.cli import main
from msrnet.inference import upscale
from msrnet.models import build_model

TINY = {"stem_widths": (8, 8), "num_blocks": 2, "se_ratio": 0}


@pytest.fixture(autouse=True)
def tiny_models(use_tiny_models: Callable[..., None]) -> None:
    """Registered names build narrow networks in the CLI, so every command here stays fast."""

    use_tiny_models(**TINY)


def write(path: Path, arr: np.ndarray, **options: Any) -> Path:
    Image.fromarray(arr).save(path, **options)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    write(folder / "a.png", rng.integers(0, 256, (8, 10, 3), dtype=np.uint8))
    write(folder / "b.png", rng.integers(0, 256, (7, 9), dtype=np.uint8))
    return folder


RANDOM = ["--model", "msr_x2", "--no-pretrained", "--tile", "none"]


def test_folder_and_glob_success(images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["upscale", str(images), "-o", str(out), *RANDOM]) == 0
    with Image.open(out / "a.png") as a, Image.open(out / "b.png") as b:
        assert (a.mode, a.size) == ("RGB", (20, 16))
        assert (b.mode, b.size) == ("L", (18, 14))  # grayscale stays grayscale
    assert "2 of 2 images upscaled x2 with msr_x2 (random weights)" in capsys.readouterr().err

    out2 = tmp_path / "out2"
    assert main(["upscale", str(images / "*.png"), "-o", str(out2), *RANDOM]) == 0
    assert sorted(p.name for p in out2.iterdir()) == ["a.png", "b.png"]


def test_one_file_to_another_format_keeps_icc(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    arr = np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    src = write(tmp_path / "x.png", arr, icc_profile=icc)
    dst = tmp_path / "deep" / "y.webp"
    assert main(["upscale", str(src), "-o", str(dst), *RANDOM]) == 0
    with Image.open(dst) as img:
        assert img.format == "WEBP" and img.size == (12, 12)
        assert img.info["icc_profile"] == icc


def test_weights_file_is_used(images: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = msrnet.models.create_model("msr_x2", **TINY)
    weights = tmp_path / "w.safetensors"
    # The architecture's arguments travel in the metadata, as `msrnet train` writes them.
    save_file(model.state_dict(), str(weights), metadata={"model_kwargs": json.dumps(TINY)})
    dst = tmp_path / "a_x2.png"
    assert main(["upscale", str(images / "a.png"), "-o", str(dst), "--weights", str(weights),
                 "--model", "msr_x2", "--tile", "none"]) == 0
    with Image.open(images / "a.png") as img:
        expected = np.asarray(upscale(model, img))
    np.testing.assert_array_equal(np.asarray(Image.open(dst)), expected)


def test_partial_failure_skips_bad_files_and_exits_1(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (images / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    code = main(["upscale", str(images), str(tmp_path / "missing.png"), "-o", str(out), *RANDOM])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    err = capsys.readouterr().err
    assert "2 of 4 images upscaled" in err
    assert "failed: " + str(images / "broken.png") in err
    assert "failed: " + str(tmp_path / "missing.png") in err


def test_unwritable_format_is_a_failure_not_a_crash(images: Path, tmp_path: Path) -> None:
    rgba = write(images / "c.png", np.zeros((4, 4, 4), dtype=np.uint8))
    assert main(["upscale", str(rgba), "-o", str(tmp_path / "c.jpg"), *RANDOM]) == 1  # no JPEG alpha


@pytest.mark.parametrize(
    "argv",
    [
        ["--dtype", "int8"],
        ["--tile", "-3"],
        ["--tile", "big"],
        ["--tile-overlap", "x"],
    ],
)
def test_argparse_errors_exit_2(images: Path, tmp_path: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["upscale", str(images), "-o", str(tmp_path / "o"), *RANDOM, *argv])
    assert e.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give INPUT"),
        (["{images}"], "-o/--output is required"),
        (["{images}", "-o", "{tmp}/one.png"], "is a file, but 2 images"),
        (["{images}", "-o", "{images}"], "refusing to overwrite"),
        (["{images}", "-o", "{tmp}/o", "--device", "tpu9"], "bad --device"),
        (["{images}", "-o", "{tmp}/o", "--model", "resnet50"], "unknown msrnet model"),
        (["{images}/a.png", "--demo"], "not both"),
    ],
)
def test_bad_arguments_exit_2(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.format(images=images, tmp=tmp_path) for a in argv]
    extra = [] if "--model" in argv else ["--model", "msr_x2"]
    assert main(["upscale", *argv, *extra, "--no-pretrained"]) == 2
    assert message in capsys.readouterr().err


def test_missing_pretrained_weights_say_what_to_do(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(msrnet.models._pretrained, "PRETRAINED_SHA256", {})
    assert main(["upscale", str(images), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no pretrained weights ship" in err
    assert "--weights FILE" in err and "--no-pretrained" in err
    assert not (tmp_path / "o").exists()


def test_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(msrnet.models, "build_model", build_model)  # the real model and its weights
    assert main(["upscale", "--demo"]) == 0
    captured = capsys.readouterr()
    # The default: the weights for photos (docs/real-photos.md).
    assert "upscaled astronaut.png (128x128) x4 with msr_small_x4.real (packaged weights)" in captured.out
    assert "random weights" not in captured.out + captured.err
    with Image.open(tmp_path / "astronaut_x4.png") as img:
        assert img.size == (512, 512) and img.mode == "RGB" and "icc_profile" in img.info


# --- outputs: atomic, never through a symlink, replaced by default ------------------------------
def _no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "temporary files left"


def test_failed_write_leaves_an_existing_output_intact(images: Path, tmp_path: Path) -> None:
    rgba = write(images / "c.png", np.zeros((4, 4, 4), dtype=np.uint8))
    dst = tmp_path / "r.jpg"
    dst.write_bytes(b"an earlier result")
    assert main(["upscale", str(rgba), "-o", str(dst), *RANDOM]) == 1  # JPEG holds no alpha
    assert dst.read_bytes() == b"an earlier result"
    _no_temporaries(tmp_path)


def test_full_disk_leaves_an_existing_output_intact(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def save(self: Image.Image, fp: Any, format: str | None = None, **options: Any) -> None:
        fp.write(b"\x89PNG half an image")
        raise OSError(errno.ENOSPC, "No space left on device")

    dst = tmp_path / "a.png"
    dst.write_bytes(b"an earlier result")
    monkeypatch.setattr(Image.Image, "save", save)
    assert main(["upscale", str(images / "a.png"), "-o", str(dst), *RANDOM]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert dst.read_bytes() == b"an earlier result"
    _no_temporaries(tmp_path)


def test_existing_outputs_are_replaced(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"an earlier result")
    assert main(["upscale", str(images), "-o", str(out), *RANDOM]) == 0
    with Image.open(out / "a.png") as img:
        assert img.size == (20, 16)
    _no_temporaries(out)


@pytest.mark.parametrize("to", ["file", "folder"])
def test_a_planted_symlink_is_replaced_not_written_through(images: Path, tmp_path: Path, to: str) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"not yours to overwrite")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "a.png"
    link.symlink_to(victim)
    target = link if to == "file" else out
    assert main(["upscale", str(images / "a.png"), "-o", str(target), *RANDOM]) == 0
    assert victim.read_bytes() == b"not yours to overwrite"
    assert not link.is_symlink()
    with Image.open(link) as img:
        assert img.size == (20, 16)
    _no_temporaries(out)


def _animation(path: Path, **options: Any) -> Path:
    """Three 6x5 frames (black, white, grey), 100/250/400 ms, looping twice."""
    frames = [Image.fromarray(np.full((6, 5, 3), v, np.uint8)) for v in (0, 255, 128)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 250, 400], loop=2, **options)
    return path


def _frames(path: Path) -> list[tuple[tuple[int, int], int, float]]:
    """(size, duration, mean value) of each frame of an image file."""
    with Image.open(path) as img:
        frames = [frame.copy() for frame in ImageSequence.Iterator(img)]  # WebP sets durations on load
    return [(f.size, int(f.info.get("duration", 0)), float(np.asarray(f.convert("RGB")).mean())) for f in frames]


@pytest.mark.parametrize("src_name, dst_name", [
    ("anim.gif", "anim.gif"), ("anim.gif", "anim.webp"), ("anim.gif", "anim.png"), ("anim.webp", "anim.gif"),
    ("anim.webp", "anim.webp"), ("anim.png", "anim.png"), ("anim.png", "anim.webp"),
])
def test_animations_keep_every_frame_and_their_timing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], src_name: str, dst_name: str
) -> None:
    src = _animation(tmp_path / src_name, **({"lossless": True} if src_name.endswith(".webp") else {}))
    dst = tmp_path / "out" / dst_name
    assert main(["upscale", str(src), "-o", str(dst), *RANDOM]) == 0
    assert "warning" not in capsys.readouterr().err
    frames = _frames(dst)
    assert [(size, duration) for size, duration, _ in frames] == [((10, 12), 100), ((10, 12), 250), ((10, 12), 400)]
    # Each frame is its own input's upscaling: dark, bright, between.
    means = [mean for _, _, mean in frames]
    assert means[0] < means[2] < means[1]
    with Image.open(dst) as img:
        assert img.info.get("loop") == 2


def test_an_animation_into_a_still_format_warns_and_keeps_one_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _animation(tmp_path / "anim.gif")
    dst = tmp_path / "still.jpg"
    assert main(["upscale", str(src), "-o", str(dst), *RANDOM]) == 0
    assert f"warning: {src}: animated image with 3 frames: only frame 0 is upscaled" in capsys.readouterr().err
    with Image.open(dst) as img:
        assert img.size == (10, 12) and getattr(img, "n_frames", 1) == 1


def test_pyramid_of_an_animation_is_one_animation_per_level(tmp_path: Path) -> None:
    src = _animation(tmp_path / "anim.gif")
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--model", "msr_x4", "--no-pretrained", "--tile", "none",
                 "--pyramid"]) == 0
    assert [(size, d) for size, d, _ in _frames(out / "anim_x2.gif")] == [((10, 12), 100), ((10, 12), 250), ((10, 12), 400)]
    assert [(size, d) for size, d, _ in _frames(out / "anim_x4.gif")] == [((20, 24), 100), ((20, 24), 250), ((20, 24), 400)]


def test_empty_image_is_a_clean_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "empty.png"
    src.write_bytes(b"")
    assert main(["upscale", str(src), "-o", str(tmp_path / "o.png"), *RANDOM]) == 1
    err = capsys.readouterr().err
    assert f"failed: {src}: " in err and "Traceback" not in err


@pytest.mark.parametrize("content", ["text", "tensor", "list", "truncated"])
def test_unloadable_weights_are_one_line_exit_2(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    weights = tmp_path / ("w.safetensors" if content == "truncated" else "w.pt")
    if content == "text":
        weights.write_text("these are not weights")
    elif content == "tensor":
        torch.save(torch.zeros(3), weights)
    elif content == "list":
        torch.save([1, 2, 3], weights)
    else:
        save_file({"x": torch.zeros(64)}, str(weights))
        weights.write_bytes(weights.read_bytes()[:-40])
    assert main(["upscale", str(images), "-o", str(tmp_path / "o"), "--weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("msrnet upscale: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_transparency_survives_into_gif(tmp_path: Path) -> None:
    arr = np.zeros((6, 5, 4), np.uint8)
    arr[..., :3] = 200
    arr[1:5, 1:4, 3] = 255  # an opaque block on a transparent ground
    src = write(tmp_path / "sprite.png", arr)
    dst = tmp_path / "sprite.gif"
    assert main(["upscale", str(src), "-o", str(dst), *RANDOM]) == 0
    with Image.open(dst) as img:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
    assert set(np.unique(alpha)) == {0, 255}
    # The transparent ground stays transparent, the block's core stays opaque.
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0 and alpha[5, 4] == 255


# --- no output may be an input; interrupts (issue 25) ------------------------------------------
X4 = ["--model", "msr_x4", "--no-pretrained", "--tile", "none"]


@pytest.mark.parametrize("level", [2, 4])
def test_pyramid_never_writes_over_its_own_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], level: int
) -> None:
    # msrnet upscale photo_x2.png -o photo.png --pyramid (and _x4)
    src = write(tmp_path / f"photo_x{level}.png", np.full((6, 5, 3), 7, np.uint8))
    before = src.read_bytes()
    code = main(["upscale", str(src), "-o", str(tmp_path / "photo.png"), "--pyramid", *X4])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to overwrite the input" in err and str(src) in err
    assert len(err.strip().splitlines()) == 2  # the random-weights note, then the error
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]  # nothing written


def test_folder_pyramid_into_its_own_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "a.png", np.full((6, 5, 3), 7, np.uint8))
    write(folder / "a_x4.png", np.full((6, 5, 3), 9, np.uint8))  # a.png's x4 level would land here
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert main(["upscale", str(folder), "-o", str(tmp_path / "in"), "--pyramid", *X4]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_an_output_reached_through_a_link_is_still_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path / "a.png", np.full((6, 5, 3), 7, np.uint8))
    (tmp_path / "alias").symlink_to(tmp_path)
    hard = tmp_path / "b.png"
    hard.hardlink_to(src)
    for out in (tmp_path / "alias" / "a.png", hard):
        assert main(["upscale", str(src), "-o", str(out), *RANDOM]) == 2
        assert "refusing to overwrite the input" in capsys.readouterr().err
    assert main(["upscale", str(src), str(hard), "-o", str(tmp_path), *RANDOM]) == 2
    assert np.array_equal(np.asarray(Image.open(src)), np.full((6, 5, 3), 7, np.uint8))


@pytest.mark.parametrize("signal_name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupted_upscale_is_one_line_exit_130_and_leaves_no_temp_files(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    signal_name: str, code: int,
) -> None:
    import os
    import signal

    import msrnet.data.io

    out = tmp_path / "out"
    real_save = Image.Image.save

    def save_then_signal(self: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
        real_save(self, fp, *args, **kwargs)  # half the output is in the temporary file
        assert list(out.glob(".a.png.*.tmp.png"))
        os.kill(os.getpid(), getattr(signal, signal_name))

    monkeypatch.setattr(Image.Image, "save", save_then_signal)
    assert msrnet.data.io.Image.Image.save is save_then_signal
    assert main(["upscale", str(images), "-o", str(out), *RANDOM]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("interrupted" if code == 130 else "terminated") in err
    assert err.strip().splitlines()[-1].startswith(f"msrnet upscale: {'interrupted' if code == 130 else 'terminated'}")
    assert list(out.iterdir()) == []  # neither a.png nor its temporary file
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
