"""Every level of the pyramid from one forward pass (docs/architecture.md)."""
# --8<-- [start:pyramid]
import torch
import torch.nn.functional as F

import msrnet
from msrnet.ops import imresize

model = msrnet.create_model("msr_x8")
lr = torch.rand(1, 3, 24, 24)  # RGB in [0, 1]

images = model.forward_pyramid(lr)  # coarse first: x2, x4, x8
print([tuple(im.shape) for im in images])
# [(1, 3, 48, 48), (1, 3, 96, 96), (1, 3, 192, 192)]

# forward() returns the last level. A loss on every level, against the HR
# image down-scaled to each level's size:
hr = torch.rand(1, 3, 192, 192)
losses = [F.l1_loss(im, imresize(hr, size=im.shape[-2:])) for im in images]
loss = torch.stack(losses).sum()
loss.backward()
# --8<-- [end:pyramid]

assert [im.shape[-1] for im in images] == [48, 96, 192]
torch.testing.assert_close(model(lr), images[-1])
