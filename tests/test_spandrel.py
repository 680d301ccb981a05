"""msrnet in spandrel: detection, hyperparameters from shapes alone, the descriptor's output."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from _extras import needs_extra  # tests/_extras.py

import msrnet
from msrnet.models._pretrained import PRETRAINED_SHA256, pretrained_file
from msrnet.models.msr import CONFIG_BUFFER

spandrel = needs_extra("spandrel")
from msrnet.integrations import spandrel as msr_spandrel  # noqa: E402

msr_spandrel.install()

VARIANTS = [
    # (model, kwargs): narrow and wide, x2/x4/x8, non-default spreads and settings
    ("msr_x2", dict(stem_widths=(8, 8), num_blocks=1, level_chans=(8,))),
    ("msr_x2", dict(stem_widths=(16, 8, 8), num_blocks=3, se_ratio=0.0, refine_convs=1, kernel_size=5)),
    ("msr_x4", dict(stem_widths=(24, 16), num_blocks=4, blocks_per_level=(1, 3), level_chans=(16, 8))),
    ("msr_x4", dict(stem_widths=(8, 8), num_blocks=3, projection_kernel=6, act_layer="silu", se_ratio=0.5)),
    ("msr_x4", dict(stem_widths=(32, 32), num_blocks=5, in_chans=1, image_upsample="bilinear")),
    ("msr_x8", dict(stem_widths=(8, 8), num_blocks=3, level_chans=(8, 8, 8))),
    ("msr_x8", dict(stem_widths=(8, 16), num_blocks=6, blocks_per_level=(1, 1, 4), act_layer="gelu",
                    image_upsample="nearest", refine_convs=2)),
    ("msr_x4", dict(stem_widths=(8, 8), num_blocks=2, level_scales=(4,), level_chans=(8,))),
]


def _check(descriptor, model: torch.nn.Module, scale: int, in_chans: int = 3) -> None:
    assert isinstance(descriptor, spandrel.ImageModelDescriptor)
    assert descriptor.architecture.id == "msrnet" and descriptor.purpose == "SR"
    assert descriptor.scale == scale and descriptor.input_channels == in_chans
    assert descriptor.supports_half and descriptor.supports_bfloat16
    x = torch.rand(1, in_chans, 7, 10)
    with torch.no_grad():
        expected = model.eval()(x)
        actual = descriptor.model.eval()(x)
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)
        # The descriptor's call pads to its size requirements and clamps; 7x10 needs neither.
        torch.testing.assert_close(descriptor(x), expected.clamp(0, 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", VARIANTS)
def test_every_hyperparameter_comes_back_from_the_state_dict(tmp_path, name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = msrnet.create_model(name, **kwargs).eval()
    path = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(path))
    descriptor = spandrel.ModelLoader().load_from_file(path)
    _check(descriptor, model, model.scale, kwargs.get("in_chans", 3))
    rebuilt = msr_spandrel.model_kwargs_from_state_dict(model.state_dict())
    for key, value in kwargs.items():
        if key == "num_blocks":
            assert sum(rebuilt["blocks_per_level"]) == value
        elif key == "se_ratio" and value:
            assert model.levels[0].blocks[0].attn.fc1.out_channels == descriptor.model.levels[0].blocks[0].attn.fc1.out_channels
        elif key not in ("refine_convs", "se_ratio") or rebuilt["num_blocks"] > 1:
            assert rebuilt[key] == value or tuple(rebuilt[key]) == tuple(value), key


def test_narrow_x8_from_save_file_loads_with_scale_8(tmp_path) -> None:
    model = msrnet.create_model("msr_x8", stem_widths=(4, 4), num_blocks=3, level_chans=(4, 4, 4), se_ratio=0.0)
    save_file(model.state_dict(), str(tmp_path / "narrow.safetensors"))
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "narrow.safetensors")
    assert descriptor.scale == 8
    _check(descriptor, model, 8)


def test_pth_checkpoints_and_half_precision(tmp_path) -> None:
    model = msrnet.create_model("msr_x4", stem_widths=(8, 8), num_blocks=3).eval()
    torch.save({"state_dict": {k: v.half() for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "w.pth")
    assert descriptor.scale == 4
    descriptor.model.half()
    assert descriptor.model.msrnet_config.dtype == torch.float16  # still decodes
    assert msr_spandrel.model_kwargs_from_state_dict(descriptor.model.state_dict())["scale"] == 4


def test_files_without_the_config_buffer_are_refused_naming_it(tmp_path) -> None:
    model = msrnet.create_model("msr_x8", stem_widths=(8, 8), num_blocks=4).eval()
    state = {k: v for k, v in model.state_dict().items() if k != CONFIG_BUFFER}
    save_file(state, str(tmp_path / "old.safetensors"))
    # Still detected as msrnet's (its keys are), so the error says what is missing.
    with pytest.raises(ValueError, match=f"lacks the {CONFIG_BUFFER} buffer"):
        spandrel.ModelLoader().load_from_file(tmp_path / "old.safetensors")
    with pytest.raises(ValueError, match=f"lacks the {CONFIG_BUFFER} buffer"):
        msr_spandrel.model_kwargs_from_state_dict(state)


@pytest.mark.parametrize("name", sorted(PRETRAINED_SHA256))
def test_shipped_weights_load_through_spandrel(name: str) -> None:
    model = msrnet.create_model(name, pretrained=True)
    scale = model.scale
    descriptor = spandrel.ModelLoader().load_from_file(pretrained_file(name))
    assert descriptor.scale == scale and descriptor.tags[0] == f"x{scale}"
    _check(descriptor, model, scale)


def test_save_pretrained_folder_opens_in_spandrel(tmp_path) -> None:
    model = msrnet.create_model("msr_x4", stem_widths=(8, 8), num_blocks=3).eval()
    folder = msrnet.save_pretrained(model, tmp_path / "d")
    descriptor = spandrel.ModelLoader().load_from_file(folder / "model.safetensors")
    _check(descriptor, model, 4)


def test_install_is_idempotent_and_detection_is_specific() -> None:
    msr_spandrel.install()
    assert sum(s.architecture.id == "msrnet" for s in spandrel.MAIN_REGISTRY) == 1
    arch = spandrel.MAIN_REGISTRY.get("msrnet").architecture
    assert not arch.detect({"conv_first.weight": torch.zeros(1), "body.0.weight": torch.zeros(1)})


def test_comfyui_custom_node_package_installs_msrnet(monkeypatch) -> None:
    import importlib.util
    from pathlib import Path

    init = Path(__file__).resolve().parents[1] / "integrations" / "comfyui" / "msrnet" / "__init__.py"
    registry = spandrel.MAIN_REGISTRY.copy()
    fresh = spandrel.ArchRegistry()
    for support in registry:
        if support.architecture.id != "msrnet":
            fresh.add(support)
    monkeypatch.setattr(msr_spandrel, "MAIN_REGISTRY", fresh)
    spec = importlib.util.spec_from_file_location("comfyui_msrnet", init)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS == {}
    assert "msrnet" in fresh


def _with_config(state: dict, **settings: object) -> dict:
    import json

    config = {"level_scales": [2, 4], "projection_kernel": None, "act_layer": "relu", "image_upsample": "bicubic",
              **settings}
    return {**state, CONFIG_BUFFER: torch.tensor(list(json.dumps(config, sort_keys=True).encode()), dtype=torch.float32)}


@pytest.mark.parametrize(
    "settings", [{"act_layer": "os.system"}, {"level_scales": [2, 10**9]}, {"image_upsample": "os.system"}]
)
def test_settings_torch_cannot_build_are_the_documented_value_error(settings: dict) -> None:
    # Before: KeyError (an unknown activation) and RuntimeError (a scale of 1e9).
    state = {k: v.contiguous() for k, v in msrnet.create_model("msr_x4", stem_widths=(8, 8), num_blocks=2).state_dict().items()}
    with pytest.raises(ValueError):
        msr_spandrel.MSRNetArch().load(_with_config(state, **settings))


def test_nan_weights_are_refused_as_msrnets_own_loader_refuses_them(tmp_path) -> None:
    model = msrnet.create_model("msr_x2", stem_widths=(8, 8), num_blocks=1, level_chans=(8,))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["stem.layers.0.weight"] = torch.full_like(state["stem.layers.0.weight"], float("nan"))
    state["levels.0.to_residual.weight"][0, 0, 0, 0] = float("inf")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ValueError, match=r"holds \d+ NaN/inf values: the weights are broken"):
        spandrel.ModelLoader().load_from_file(tmp_path / "nan.safetensors")
