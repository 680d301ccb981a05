"""timm / Hugging Face folders: save_pretrained, save_for_hf, local-dir loading, user files."""
from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

import msrnet
from msrnet.hub import save_pretrained
from msrnet.models.msr import CONFIG_BUFFER, decode_config

TINY = dict(stem_widths=(8, 8), num_blocks=3, se_ratio=0.0)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, scale: int) -> None:
    x = torch.rand(2, 3, 7, 9)
    with torch.no_grad():
        ya, yb = a.eval()(x), b.eval()(x)
    assert ya.shape == (2, 3, 7 * scale, 9 * scale)
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)


@pytest.mark.parametrize("name, scale", [("msr_x2", 2), ("msr_x8", 8)])
def test_save_pretrained_round_trips_through_timm_local_dir(tmp_path, name: str, scale: int) -> None:
    model = msrnet.create_model(name, act_layer="silu", image_upsample="bilinear", **TINY).eval()
    folder = msrnet.save_pretrained(model, tmp_path / "d")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == name
    assert config["model_args"]["stem_widths"] == [8, 8] and config["model_args"]["act_layer"] == "silu"
    assert "file" not in config["pretrained_cfg"]
    # The random weights are not the shipped ones: nothing about their training is claimed.
    assert config["pretrained_cfg"]["notes"] == []
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: image-to-image" in card and "library_name: timm" in card
    assert "license: mit" in card and "model-index" not in card and "291" not in card

    restored = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert type(restored) is msrnet.MultiScaleSRNet and restored.scale == scale
    assert restored.image_upsample == "bilinear"
    _same_outputs(model, restored, scale)


def test_shipped_weights_get_a_card_with_their_results(tmp_path) -> None:
    model = msrnet.create_model("msr_x4", pretrained=True).eval()
    folder = msrnet.save_pretrained(model, tmp_path / "d")
    card = (folder / "README.md").read_text()
    assert "model-index:" in card and "name: msr_x4.t291" in card
    assert "value: 31.80" in card and "value: 28.32" in card and "291 images" in card
    restored = timm.create_model(f"local-dir:{folder}", pretrained=True)
    _same_outputs(model, restored, 4)
    # A fine-tuned copy is no longer the shipped model: no results are claimed for it.
    with torch.no_grad():
        model.levels[0].to_residual.bias.add_(0.01)
    card = msrnet.save_pretrained(model, tmp_path / "tuned").joinpath("README.md").read_text()
    assert "model-index" not in card


def test_user_results_and_training_data_reach_the_card(tmp_path) -> None:
    model = msrnet.create_model("msr_x2", **TINY)
    folder = msrnet.save_pretrained(
        model, tmp_path / "d", training_data="DIV2K", results={"Set5": 30.123}, license="apache-2.0"
    )
    card = (folder / "README.md").read_text()
    assert "Trained on DIV2K." in card and "value: 30.12" in card and "license: apache-2.0" in card
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"]["notes"] == ["trained on DIV2K"]


def test_timm_save_for_hf_folder_loads(tmp_path) -> None:
    model = timm.create_model("msr_x4", **TINY).eval()
    timm.models.save_for_hf(model, str(tmp_path / "d"), safe_serialization=True)
    restored = timm.create_model(f"local-dir:{tmp_path / 'd'}", pretrained=True)
    _same_outputs(model, restored, 4)


def test_pretrained_cfg_overlay_file_loads_a_users_weights(tmp_path) -> None:
    model = msrnet.create_model("msr_x4", **TINY).eval()
    path = tmp_path / "mine.safetensors"
    save_file(model.state_dict(), str(path))
    restored = msrnet.create_model("msr_x4", pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **TINY)
    _same_outputs(model, restored, 4)
    torch.save(model.state_dict(), tmp_path / "mine.pth")
    restored = timm.create_model(
        "msr_x4", pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "mine.pth")}, **TINY
    )
    _same_outputs(model, restored, 4)


def test_weights_without_the_config_buffer_fail_a_strict_load_naming_it(tmp_path) -> None:
    model = msrnet.create_model("msr_x8", **TINY).eval()
    state = {k: v for k, v in model.state_dict().items() if k != CONFIG_BUFFER}
    restored = msrnet.create_model("msr_x8", **TINY)
    with pytest.raises(RuntimeError, match=f"Missing key.*{CONFIG_BUFFER}"):
        restored.load_state_dict(state)
    # A non-strict load (a partial warm start) keeps the model's own settings.
    restored.load_state_dict(state, strict=False)
    _same_outputs(model, restored, 8)
    assert decode_config(restored.state_dict()[CONFIG_BUFFER])["level_scales"] == [2, 4, 8]


def test_config_buffer_mismatch_is_a_clear_error() -> None:
    gelu = msrnet.create_model("msr_x4", act_layer="gelu", **TINY)
    relu = msrnet.create_model("msr_x4", **TINY)
    with pytest.raises(RuntimeError, match="gelu"):
        relu.load_state_dict(gelu.state_dict())
    with pytest.raises(RuntimeError, match="gelu"):  # as for a size mismatch, strict or not
        relu.load_state_dict(gelu.state_dict(), strict=False)
    assert decode_config(getattr(relu, CONFIG_BUFFER))["act_layer"] == "relu"


def test_config_buffer_survives_half_precision(tmp_path) -> None:
    model = msrnet.create_model("msr_x4", projection_kernel=6, **TINY)
    path = tmp_path / "w.safetensors"
    save_file({k: v.half() for k, v in model.state_dict().items()}, str(path))
    assert decode_config(load_file(str(path))[CONFIG_BUFFER])["projection_kernel"] == 6
    assert decode_config(getattr(model.to(torch.bfloat16), CONFIG_BUFFER))["projection_kernel"] == 6


def test_weights_module_handles_the_config_buffer(tmp_path) -> None:
    from msrnet.models.weights import WeightsError, load_matching_weights, load_weights

    model = msrnet.create_model("msr_x4", **TINY).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    _same_outputs(model, load_weights(tmp_path / "w.safetensors", "msr_x4", model_kwargs=TINY), 4)
    bare = tmp_path / "bare.safetensors"  # a state dict without the buffer
    save_file({k: v for k, v in model.state_dict().items() if k != CONFIG_BUFFER}, str(bare))
    with pytest.raises(WeightsError, match=f"bare.safetensors: does not fit msr_x4.*lacks the {CONFIG_BUFFER} buffer"):
        load_weights(bare, "msr_x4", model_kwargs=TINY)
    # Without arch metadata the buffer's scale names the architecture; without either, the
    # caller must.
    with pytest.raises(WeightsError, match=f"cannot tell the architecture.*no {CONFIG_BUFFER} buffer"):
        load_weights(bare, model_kwargs=TINY)
    _same_outputs(model, load_weights(tmp_path / "w.safetensors", model_kwargs=TINY), 4)

    # Warm-starting copies tensors, never another network's settings; the buffer is the model's
    # own, so it is not among the tensors left at their initialization either.
    silu = msrnet.create_model("msr_x4", act_layer="silu", **TINY)
    save_file(silu.state_dict(), str(tmp_path / "silu.safetensors"))
    loaded, left = load_matching_weights(model, tmp_path / "silu.safetensors")
    assert left == [] and loaded == len(model.state_dict()) - 1
    assert decode_config(getattr(model, CONFIG_BUFFER))["act_layer"] == "relu"


@pytest.mark.parametrize("planted", ["config.json", "README.md", "model.safetensors"])
def test_save_pretrained_replaces_planted_symlinks(tmp_path, planted: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / planted).symlink_to(victim)
    model = msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=2, se_ratio=0)
    save_pretrained(model, folder)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not any(p.is_symlink() for p in folder.iterdir())
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert loaded.scale == 2
