"""msrnet's models through timm (docs/tutorials/timm.md)."""
# --8<-- [start:create]
import timm
import torch

import msrnet  # registers msr_x2, msr_x4 and msr_x8 with timm

print(timm.list_models("msr_*"))  # ['msr_x2', 'msr_x4', 'msr_x8']
model = timm.create_model("msr_x4")
same = msrnet.create_model("msr_x4")  # the same architecture
assert model.state_dict().keys() == same.state_dict().keys()
# --8<-- [end:create]

# --8<-- [start:kwargs]
# Keyword arguments reach the MultiScaleSRNet constructor, as in timm.
small = timm.create_model("msr_x4", stem_widths=(64, 32, 32), act_layer="silu")
gray = timm.create_model("msr_x2", in_chans=1)  # grayscale in, grayscale out
print(gray(torch.rand(1, 1, 8, 8)).shape)  # torch.Size([1, 1, 16, 16])
# --8<-- [end:kwargs]

# --8<-- [start:cfg]
cfg = model.pretrained_cfg
print(cfg["architecture"], cfg["tag"], cfg["mean"], cfg["std"])
# msr_x4 t291 (0.0, 0.0, 0.0) (1.0, 1.0, 1.0): RGB in [0, 1], no normalisation
print(msrnet.list_models(pretrained=True))  # models whose weights ship
# --8<-- [end:cfg]

# --8<-- [start:tools]
# timm's tooling works on them, e.g. an exponential moving average of weights:
from timm.utils import ModelEmaV3

ema = ModelEmaV3(small, decay=0.999)
ema.update(small)
# --8<-- [end:tools]

assert small.scale == 4 and gray.in_chans == 1
