"""msrnet.models.weights: one schema, checked against the tensors before anything is allocated."""
from __future__ import annotations

import json
import resource
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from msrnet import create_model, upscale
from msrnet.cli import main
from msrnet.evaluate import evaluate
from msrnet.models.weights import (
    WeightsError,
    load_matching_weights,
    load_weights,
    read_metadata,
    save_weights,
)
from msrnet.models import preserved

TINY = {"stem_widths": [8, 8], "level_chans": [8], "num_blocks": 2}


def test_save_and_load_round_trip_with_one_schema(tmp_path: Path) -> None:
    model = create_model("msr_x2", **TINY)
    path = save_weights(model, tmp_path / "w.safetensors", model_kwargs=TINY, step=7, psnr="30.5")
    meta = read_metadata(path)
    assert (meta.arch, meta.scale, meta.model_kwargs) == ("msr_x2", 2, TINY)
    assert meta.extra == {"step": "7", "psnr": "30.5"}
    loaded = load_weights(path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v.half().float())


def test_metadata_that_does_not_fit_the_tensors_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "b.safetensors"
    # 150 bytes that would build a 20000-channel stem (~24 GB of float32 convolutions).
    save_file({"x": torch.zeros(1)}, str(path), metadata={"arch": "msr_x4", "model_kwargs": '{"stem_widths": [20000, 20000]}'})
    assert path.stat().st_size < 200
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WeightsError, match=r"b\.safetensors: does not fit msr_x4"):
        load_weights(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: < 200 MB


def test_cli_refuses_a_bomb_and_broken_weights_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    bomb = tmp_path / "b.safetensors"
    save_file({"x": torch.zeros(1)}, str(bomb), metadata={"arch": "msr_x4", "model_kwargs": '{"stem_widths": [20000, 20000]}'})
    text = tmp_path / "notes.safetensors"
    text.write_text("these are not weights\n")
    good = save_weights(create_model("msr_x2", **TINY), tmp_path / "good.safetensors", model_kwargs=TINY)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:-64])
    as_tensor, as_list = tmp_path / "t.pt", tmp_path / "l.pt"
    torch.save(torch.zeros(3), as_tensor)
    torch.save([1, 2], as_list)
    for weights in (bomb, text, truncated, as_tensor, as_list):
        code = main(["upscale", str(image), "-o", str(tmp_path / "out.png"), "--weights", str(weights), "--model", "msr_x2"])
        err = capsys.readouterr().err
        assert code == 2
        assert str(weights) in err and "Traceback" not in err
        assert not (tmp_path / "out.png").exists()


def test_unknown_model_kwargs_are_a_weights_error(tmp_path: Path) -> None:
    path = save_weights(create_model("msr_x2", **TINY), tmp_path / "w.safetensors", model_kwargs={**TINY, "foo": 1})
    with pytest.raises(WeightsError, match="foo"):
        load_weights(path)


def test_symlink_at_the_weights_path_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "w.safetensors"
    link.symlink_to(victim)
    save_weights(create_model("msr_x2", **TINY), link, model_kwargs=TINY)
    assert victim.read_text() == "keep me" and not link.is_symlink()
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_matching_weights_reads_only_fitting_tensors(tmp_path: Path) -> None:
    x2 = create_model("msr_x2", **TINY)
    path = save_weights(x2, tmp_path / "x2.safetensors", dtype=None)
    x4 = create_model("msr_x4", stem_widths=[8, 8], level_chans=[8, 8], num_blocks=2)
    loaded, left = load_matching_weights(x4, path)
    assert loaded > 0 and any(n.startswith("levels.1.") for n in left)
    torch.testing.assert_close(x4.state_dict()["stem.layers.0.weight"], x2.state_dict()["stem.layers.0.weight"])


def test_borrowed_models_come_back_as_they_were() -> None:
    model = create_model("msr_x2", **TINY).to(memory_format=torch.channels_last).train()
    image = torch.rand(1, 3, 12, 12)
    with preserved(model):
        model.eval().to(memory_format=torch.contiguous_format)
    assert model.training and model.stem.layers[0].weight.is_contiguous(memory_format=torch.channels_last)

    upscale(model, image, tile=None)
    assert model.training and not model.stem.layers[0].weight.is_contiguous()

    items = [{"lr": image[0], "hr": torch.rand(3, 24, 24), "name": "x"}]
    evaluate(model, items, 2, progress=False)
    assert model.training and not model.stem.layers[0].weight.is_contiguous()


def test_shipped_weights_carry_the_schema() -> None:
    from msrnet.models._pretrained import pretrained_file

    path = pretrained_file("msr_x2.t291")
    assert path is not None
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata()
    meta = read_metadata(path)
    assert meta.arch == raw["arch"] == "msr_x2" and meta.scale == 2 and json.loads(raw["model_kwargs"]) == {}


def test_every_shipped_file_carries_the_config_buffer_and_its_metadata() -> None:
    from msrnet.models._pretrained import PRETRAINED_SHA256, pretrained_file
    from msrnet.models.msr import CONFIG_BUFFER, decode_config

    for name in PRETRAINED_SHA256:
        path = pretrained_file(name)
        assert path is not None
        with safe_open(str(path), framework="pt") as f:
            assert CONFIG_BUFFER in f.keys(), name
            config = decode_config(f.get_tensor(CONFIG_BUFFER))
        meta = read_metadata(path)
        assert meta.arch == name.split(".")[0] and config["level_scales"][-1] == meta.scale, name
        assert {"step", "psnr"} <= set(meta.extra), name
