"""Model contracts: shapes, dtypes, memory formats, gradients, registry and serialization."""
from __future__ import annotations

import pytest
import timm
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msrnet
from msrnet import FeatureExtractor, MultiScaleSRNet, PyramidResidualBlock
from msrnet.models import _pretrained, default_blocks_per_level, default_level_scales

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tiny_net(scale: int, **kwargs) -> MultiScaleSRNet:
    """A network with the real structure and small widths, fast on 2 CPU cores."""
    defaults = dict(stem_widths=(8, 8), num_blocks=3, level_chans=None, se_ratio=0.25)
    defaults.update(kwargs)
    if defaults["level_chans"] is None:
        defaults["level_chans"] = (8,) * len(default_level_scales(scale))
    return MultiScaleSRNet(scale=scale, **defaults).eval()


sizes = st.integers(min_value=1, max_value=13)


@PROPERTY_SETTINGS
@given(batch=st.integers(1, 3), h=sizes, w=sizes, scale=st.sampled_from([2, 3, 4, 8]))
def test_output_and_pyramid_shapes(batch: int, h: int, w: int, scale: int) -> None:
    net = tiny_net(scale)
    x = torch.rand(batch, 3, h, w)
    with torch.no_grad():
        pyramid = net.forward_pyramid(x)
        out = net(x)
    assert [tuple(p.shape) for p in pyramid] == [
        (batch, 3, h * s, w * s) for s in default_level_scales(scale)
    ]
    assert out.shape == (batch, 3, h * scale, w * scale)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, pyramid[-1])


@PROPERTY_SETTINGS
@given(h=sizes, w=sizes, scale=st.sampled_from([2, 4]))
def test_channels_last_matches_contiguous(h: int, w: int, scale: int) -> None:
    net = tiny_net(scale)
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        expected = net(x)
        actual = net.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@PROPERTY_SETTINGS
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 12),
    up_chans=st.integers(1, 8),
    h=sizes,
    w=sizes,
    scale=st.integers(1, 5),
    extra_kernel=st.sampled_from([0, 2]),
)
def test_block_contract(
    batch: int, channels: int, up_chans: int, h: int, w: int, scale: int, extra_kernel: int
) -> None:
    block = PyramidResidualBlock(
        channels, scale, up_chans=up_chans, projection_kernel=scale + extra_kernel, se_ratio=0.5
    )
    r = torch.randn(batch, channels, h, w)
    with torch.no_grad():
        up, r_next = block(r)
        # r_next is the back-projection residual plus its attention-weighted refinement.
        e = r - block.down_proj(up)
        expected = e + block.attn(block.refine(e))
    assert up.shape == (batch, up_chans, h * scale, w * scale)
    assert r_next.shape == r.shape
    torch.testing.assert_close(r_next, expected)


def test_last_block_skips_back_projection() -> None:
    block = PyramidResidualBlock(4, 2, back_project=False)
    r = torch.randn(1, 4, 3, 3)
    up, r_next = block(r)
    assert up.shape == (1, 4, 6, 6) and r_next is r
    assert not hasattr(block, "down_proj")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_cpu(dtype: torch.dtype) -> None:
    net = tiny_net(4)
    x = torch.rand(1, 3, 7, 5)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        out = net(x)
    assert out.shape == (1, 3, 28, 20)
    assert torch.isfinite(out).all()
    # The image pyramid stays in the input's precision; only the features run in low precision.
    assert out.dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_cuda(dtype: torch.dtype) -> None:
    net = tiny_net(4).cuda().to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 9, 11, device="cuda").to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        out = net(x)
    assert out.shape == (2, 3, 36, 44) and torch.isfinite(out).all()


def test_gradients_reach_every_parameter() -> None:
    net = tiny_net(8).train()
    pyramid = net.forward_pyramid(torch.rand(2, 3, 6, 5))
    sum(p.square().mean() for p in pyramid).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_feature_extractor_widths_and_activation() -> None:
    stem = FeatureExtractor(in_chans=1, widths=(6, 5, 4), act_layer="gelu")
    assert stem(torch.rand(2, 1, 3, 4)).shape == (2, 4, 3, 4)
    assert sum(type(m).__name__ == "GELU" for m in stem.modules()) == 3
    with pytest.raises(ValueError, match="odd"):
        FeatureExtractor(kernel_size=4)


def test_default_block_spread_sums_to_num_blocks() -> None:
    assert default_blocks_per_level(1) == (12,)
    assert default_blocks_per_level(2) == (8, 4)
    assert default_blocks_per_level(3) == (6, 4, 2)
    for levels in range(1, 5):
        for blocks in range(levels, 20):
            spread = default_blocks_per_level(levels, blocks)
            assert sum(spread) == blocks and min(spread) >= 1
            assert list(spread) == sorted(spread, reverse=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_classes=10), "no classifier"),
        (dict(level_scales=(2, 3)), "level_scales"),
        (dict(blocks_per_level=(1, 2, 3)), "one entry per level"),
        (dict(image_upsample="area"), "image_upsample"),
        (dict(projection_kernel=5), "projection_kernel"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiScaleSRNet(scale=4, stem_widths=(4, 4), **kwargs)


def test_bad_input_shape_is_reported() -> None:
    net = tiny_net(2)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(1, 4, 8, 8))


def test_grayscale_and_channel_mapping() -> None:
    gray = tiny_net(2, in_chans=1)
    assert gray(torch.rand(1, 1, 5, 5)).shape == (1, 1, 10, 10)
    to_rgb = tiny_net(2, in_chans=1, out_chans=3)
    assert to_rgb(torch.rand(1, 1, 5, 5)).shape == (1, 3, 10, 10)


# --- registry -------------------------------------------------------------------------------
SMALL = dict(stem_widths=(8, 8), num_blocks=3, level_chans=(8, 8, 8))


def test_list_models() -> None:
    assert msrnet.list_models() == [
        "msr_medium_x2", "msr_medium_x4", "msr_medium_x8", "msr_small_x2", "msr_small_x4", "msr_small_x8",
        "msr_x2", "msr_x4", "msr_x8",
    ]
    assert msrnet.list_models("msr_x4") == ["msr_x4"]
    assert {"msr_x2.t291", "msr_x4.t291", "msr_x8.t291"} <= set(msrnet.list_models(pretrained=True))
    assert not any(n.startswith("resnet") for n in msrnet.list_models())


@pytest.mark.parametrize("name, scale", [("msr_x2", 2), ("msr_x4", 4), ("msr_x8", 8)])
def test_timm_and_msrnet_registries_agree(name: str, scale: int) -> None:
    kwargs = dict(SMALL, level_chans=(8,) * len(default_level_scales(scale)))
    torch.manual_seed(0)
    ours = msrnet.create_model(name, **kwargs)
    torch.manual_seed(0)
    theirs = timm.create_model(name, **kwargs)
    assert type(ours) is type(theirs) is MultiScaleSRNet
    assert ours.scale == theirs.scale == scale
    assert ours.pretrained_cfg["architecture"] == name
    for (k1, v1), (k2, v2) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert k1 == k2
        torch.testing.assert_close(v1, v2)
    assert name in timm.list_models("msr_*")


def test_default_models_fit_the_parameter_budget() -> None:
    for name in msrnet.list_models():
        model = msrnet.create_model(name)
        assert sum(p.numel() for p in model.parameters()) <= 8_000_000, name


def test_timm_keywords() -> None:
    gray = msrnet.create_model("msr_x2", in_chans=1, **dict(SMALL, level_chans=(8,)))
    assert gray.in_chans == gray.out_chans == 1
    assert gray.num_classes == 0 and gray.num_features == 8
    with pytest.raises(ValueError, match="no classifier"):
        timm.create_model("msr_x2", num_classes=1000)


def test_unknown_model_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'msr_x3'.*msr_x2, msr_x4, msr_x8"):
        msrnet.create_model("msr_x3")


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_small_variants_are_the_same_structure_within_the_cost_budget(scale: int) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    small = msrnet.create_model(f"msr_small_x{scale}")
    full = msrnet.create_model(f"msr_x{scale}")
    assert type(small) is MultiScaleSRNet and small.scale == scale
    assert [len(level.blocks) for level in small.levels] == [len(level.blocks) for level in full.levels]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        small(torch.rand(1, 3, 16, 16))
    assert counter.get_total_flops() / 2 / 16**2 <= 0.8e6
    # Keywords still reach the constructor, as with any timm entry point.
    assert msrnet.create_model(f"msr_small_x{scale}", in_chans=1).in_chans == 1


def test_pretrained_without_weights_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pretrained, "PRETRAINED_SHA256", {})
    with pytest.raises(RuntimeError, match="no pretrained weights ship for 'msr_x4.t291'"):
        msrnet.create_model("msr_x4", pretrained=True)


def test_pretrained_takes_a_tag_and_refuses_other_values() -> None:
    real = msrnet.create_model("msr_small_x4", pretrained="real")
    assert real.pretrained_cfg["tag"] == "real"
    shipped = _pretrained.read_pretrained("msr_small_x4.real")
    assert all(torch.equal(real.state_dict()[k].half(), v) for k, v in shipped.items())
    assert msrnet.create_model("msr_small_x4.real", pretrained="real").pretrained_cfg["tag"] == "real"
    assert msrnet.create_model("msr_small_x4", pretrained=True).pretrained_cfg["tag"] == "t291"
    for wrong in ("div2k", 1, None, "True"):
        with pytest.raises(ValueError, match=r"valid values are True, False, 'real', 't291'"):
            msrnet.create_model("msr_small_x4", pretrained=wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="names the tag 't291' but pretrained='real'"):
        msrnet.create_model("msr_small_x4.t291", pretrained="real")


@pytest.mark.parametrize("arch", ["msr", "msr_small"])
@pytest.mark.parametrize("scale", [2, 4, 8])
def test_pretrained_weights_load_offline_and_beat_bicubic(arch: str, scale: int) -> None:
    from importlib.resources import files

    from msrnet.data.io import read_image
    from msrnet.evaluate import bicubic_upscale
    from msrnet.metrics import psnr
    from msrnet.ops import imresize

    model = msrnet.create_model(f"{arch}_x{scale}", pretrained=True).eval()
    assert f"{arch}_x{scale}.t291" in msrnet.list_models(pretrained=True)
    hr = torch.from_numpy(read_image(files("msrnet") / "assets" / "astronaut.png", 3).copy())
    hr = hr.permute(2, 0, 1)[None, :, :128, :128]
    lr = imresize(hr, scale=1 / scale).float() / 255
    with torch.no_grad():
        sr = model(lr).clamp(0, 1)
    target = hr.float() / 255
    assert psnr(sr, target, scale) > psnr(bicubic_upscale(lr, scale), target, scale) + 0.3


def test_state_dict_round_trips_through_create_model(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    kwargs = dict(SMALL, level_chans=(8, 8))
    model = msrnet.create_model("msr_x4", **kwargs).eval()
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    restored = msrnet.create_model("msr_x4", **kwargs).eval()
    restored.load_state_dict(load_file(tmp_path / "w.safetensors"))
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x), rtol=0, atol=0)


# --- graph capture --------------------------------------------------------------------------
def test_torch_export_with_dynamic_batch_height_width() -> None:
    net = tiny_net(4)
    dims = {0: torch.export.Dim("batch", max=64)}
    dims |= {2: torch.export.Dim("height", max=4096), 3: torch.export.Dim("width", max=4096)}
    program = torch.export.export(net, (torch.rand(2, 3, 6, 7),), dynamic_shapes={"x": dims})
    for shape in [(2, 3, 6, 7), (1, 3, 1, 1), (3, 3, 13, 4)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), net(x))


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    net = tiny_net(2)
    compiled = torch.compile(net, dynamic=True)
    for shape in [(1, 3, 6, 7), (2, 3, 9, 5)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), net(x), rtol=1e-4, atol=1e-4)


# --- packaged weights -----------------------------------------------------------------------
def _weights_file(tmp_path, model: torch.nn.Module):
    from safetensors.torch import save_file

    path = tmp_path / "msr_x2.t291.safetensors"
    save_file({k: v.half() for k, v in model.state_dict().items()}, str(path))
    return path


def test_packaged_weights_load_after_sha256_check(tmp_path, monkeypatch) -> None:
    from msrnet._utils import sha256sum

    kwargs = dict(SMALL, level_chans=(8,))
    source = msrnet.create_model("msr_x2", **kwargs)
    path = _weights_file(tmp_path, source)
    monkeypatch.setattr(_pretrained, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(_pretrained.PRETRAINED_SHA256, "msr_x2.t291", sha256sum(path))

    target = msrnet.create_model("msr_x2", **kwargs)
    target.load_state_dict(_pretrained.read_pretrained("msr_x2.t291"))
    for (name, expected), actual in zip(source.state_dict().items(), target.state_dict().values()):
        assert actual.dtype == torch.float32, name
        torch.testing.assert_close(actual, expected.half().float())

    path.write_bytes(path.read_bytes()[:-1] + b"\0")  # one byte changed
    with pytest.raises(RuntimeError, match="corrupted: sha256"):
        _pretrained.read_pretrained("msr_x2.t291")
    path.unlink()
    with pytest.raises(RuntimeError, match="missing"):
        _pretrained.read_pretrained("msr_x2.t291")
    with pytest.raises(RuntimeError, match="no pretrained weights ship for 'msr_x3.t291'"):
        _pretrained.read_pretrained("msr_x3.t291")


def test_the_level_layout_is_readable_off_the_model() -> None:
    model = MultiScaleSRNet(scale=8, num_blocks=6, level_chans=(24, 12, 8))
    assert model.level_scales == (2, 4, 8)
    assert model.blocks_per_level == tuple(len(level.blocks) for level in model.levels)
    assert sum(model.blocks_per_level) == 6
    assert model.level_chans == (24, 12, 8)


def test_the_package_ships_type_information() -> None:
    from importlib import resources

    # PEP 561: without py.typed, mypy treats every msrnet import in users' code as Any.
    assert (resources.files("msrnet") / "py.typed").is_file()
