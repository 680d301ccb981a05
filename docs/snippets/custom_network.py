"""Build your own network from msrnet's parts (docs/tutorials/custom-network.md)."""
# --8<-- [start:blocks]
import torch
import torch.nn.functional as F
from torch import nn

from msrnet import FeatureExtractor, PyramidResidualBlock


class TinySR(nn.Module):
    """One level: a stem, a chain of residual blocks, a fused residual image."""

    def __init__(self, scale=2, channels=32, up_chans=16, num_blocks=4):
        super().__init__()
        self.scale = scale  # msrnet's upscale and benchmark read this attribute
        self.stem = FeatureExtractor(widths=(64, channels), act_layer="silu")
        self.blocks = nn.ModuleList(
            PyramidResidualBlock(
                channels, scale, up_chans=up_chans, act_layer="silu",
                # the last block's residual would have no reader: skip it
                back_project=i < num_blocks - 1,
            )
            for i in range(num_blocks)
        )
        self.to_image = nn.Conv2d(num_blocks * up_chans, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.stem(x)  # (B, channels, H, W)
        ups = []
        for block in self.blocks:
            up, r = block(r)  # up: (B, up_chans, sH, sW); r: for the next block
            ups.append(up)
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic")
        return base + self.to_image(torch.cat(ups, dim=1))
# --8<-- [end:blocks]


# --8<-- [start:train]
from msrnet.ops import imresize

model = TinySR()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
for step in range(10):
    hr = torch.rand(4, 3, 32, 32)  # real HR patches here: see Training
    lr = imresize(hr, scale=1 / model.scale)  # MATLAB-exact bicubic
    loss = F.l1_loss(model(lr), hr)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"step {step}: L1 {loss.item():.4f}")
# --8<-- [end:train]

# --8<-- [start:configure]
from msrnet import MultiScaleSRNet

small = MultiScaleSRNet(
    scale=4,
    stem_widths=(64, 32),  # the last width is the residual flow's channels
    num_blocks=6,
    blocks_per_level=(4, 2),  # the x2 level, the x4 level
    level_chans=(32, 16),
    act_layer="silu",
    se_ratio=0.25,
)
print(f"{sum(p.numel() for p in small.parameters()) / 1e6:.2f}M parameters")
images = small.forward_pyramid(torch.rand(1, 3, 16, 16))
print([tuple(im.shape) for im in images])  # [(1, 3, 32, 32), (1, 3, 64, 64)]
# --8<-- [end:configure]

assert model(torch.rand(2, 3, 10, 7)).shape == (2, 3, 20, 14)
assert [im.shape[-1] for im in images] == [32, 64]
