"""Growing trained weights into a wider network (`msrnet.models.widen`) keeps what they compute."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from msrnet import create_model
from msrnet.models.msr import CONFIG_BUFFER
from msrnet.models.weights import WeightsError, load_matching_weights
from msrnet.models.widen import widen_state_dict

NARROW: dict[str, Any] = {"stem_widths": [8, 6], "num_blocks": 3}
WIDE: dict[str, Any] = {"stem_widths": [12, 10], "num_blocks": 3}


def _trained_like(arch: str, **kwargs: Any) -> nn.Module:
    """A network with every weight and bias non-zero, as trained ones are."""
    torch.manual_seed(0)
    model = create_model(arch, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_the_widened_network_computes_what_the_narrow_one_did(scale: int) -> None:
    levels = {2: [6], 4: [6, 4], 8: [6, 4, 2]}[scale]
    narrow = _trained_like(f"msr_x{scale}", level_chans=levels, **NARROW)
    wide = create_model(f"msr_x{scale}", level_chans=[c + 3 for c in levels], **WIDE).eval()
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide))
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow(x), atol=1e-5, rtol=1e-5)


def test_every_new_channel_learns_from_the_first_step() -> None:
    narrow = _trained_like("msr_x4", level_chans=[6, 4], **NARROW)
    wide = create_model("msr_x4", level_chans=[9, 7], **WIDE)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide))
    wide(torch.rand(1, 3, 8, 8)).square().mean().backward()
    for name, module in wide.named_modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0, name
            # The zeros by which old outputs read the new inputs move at once: growth that
            # zeroed both sides of a new channel would leave it dead. As (out, in, ...):
            grad, old = module.weight.grad, narrow.state_dict()[f"{name}.weight"]
            if isinstance(module, nn.ConvTranspose2d):
                grad, old = grad.transpose(0, 1), old.transpose(0, 1)
            if grad.shape[1] > old.shape[1]:
                assert grad[: old.shape[0], old.shape[1] :].abs().sum() > 0, name


def test_each_blocks_channels_keep_their_place_in_the_concatenation() -> None:
    narrow = _trained_like("msr_x2", level_chans=[4], **NARROW)
    wide = create_model("msr_x2", level_chans=[6], **WIDE)
    grown = widen_state_dict(narrow.state_dict(), wide)
    old, new = narrow.state_dict()["levels.0.compress.0.weight"], grown["levels.0.compress.0.weight"]
    for block in range(3):  # block b's channel j: b * 4 + j before, b * 6 + j after
        torch.testing.assert_close(new[:4, block * 6 : block * 6 + 4], old[:, block * 4 : block * 4 + 4])
        assert new[:4, block * 6 + 4 : block * 6 + 6].abs().sum() == 0


def test_widening_refuses_what_it_cannot_grow() -> None:
    narrow = create_model("msr_x4", level_chans=[6, 4], **NARROW)
    wide = create_model("msr_x4", level_chans=[9, 7], **WIDE)
    with pytest.raises(ValueError, match="does not widen"):  # wider into narrower
        widen_state_dict(wide.state_dict(), narrow)
    with pytest.raises(ValueError, match="level_scales"):  # another scale
        widen_state_dict(create_model("msr_x2", level_chans=[6], **NARROW).state_dict(), wide)
    with pytest.raises(ValueError, match="kernel"):  # kernels do not grow
        widen_state_dict(create_model("msr_x4", level_chans=[6, 4], projection_kernel=6, **NARROW).state_dict(), wide)
    silu = create_model("msr_x4", level_chans=[6, 4], act_layer="silu", **NARROW)
    with pytest.raises(ValueError, match="silu"):  # another function: nothing to preserve
        widen_state_dict(silu.state_dict(), wide)


def test_init_weights_grow_a_narrow_variant_into_a_wide_one(tmp_path: Path) -> None:
    narrow = _trained_like("msr_x4", level_chans=[6, 4], **NARROW)
    save_file({k: v.half() for k, v in narrow.state_dict().items()}, str(tmp_path / "small.safetensors"))
    wide = create_model("msr_x4", level_chans=[9, 7], **WIDE).eval()
    loaded, left = load_matching_weights(wide, tmp_path / "small.safetensors")
    assert (loaded, left) == (len(wide.state_dict()) - 1, [])
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow.half().float()(x), atol=1e-4, rtol=1e-4)
    # Wider weights do not shrink into a narrower model.
    save_file(wide.state_dict(), str(tmp_path / "wide.safetensors"))
    with pytest.raises(WeightsError, match="has the tensors of MultiScaleSRNet but.*does not widen"):
        load_matching_weights(create_model("msr_x4", level_chans=[6, 4], **NARROW), tmp_path / "wide.safetensors")
    assert CONFIG_BUFFER not in left


def test_the_shipped_small_file_grows_into_msr_medium() -> None:
    small = create_model("msr_small_x4", pretrained=True).eval()
    medium = create_model("msr_medium_x4").eval()
    medium.load_state_dict(widen_state_dict(small.state_dict(), medium))
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(medium(x), small(x), atol=1e-5, rtol=1e-5)
