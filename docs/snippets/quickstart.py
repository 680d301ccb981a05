"""Quickstart: upscale an image x4 (docs/quickstart.md)."""
from importlib import resources

from PIL import Image

# Stand-in for "your photo": the sample portrait, small so that this runs fast.
sample = resources.files("msrnet") / "assets" / "astronaut.png"
Image.open(str(sample)).resize((48, 48), Image.Resampling.BICUBIC).save("photo.png")

# --8<-- [start:upscale]
import msrnet
from PIL import Image

# offline: the weights ship inside msrnet
model = msrnet.create_model("msr_x4", pretrained=True)
msrnet.upscale(model, Image.open("photo.png")).save("photo_x4.png")
# --8<-- [end:upscale]

assert Image.open("photo_x4.png").size == (192, 192)

# --8<-- [start:small]
# 17 times fewer multiply-adds
fast = msrnet.create_model("msr_small_x4", pretrained=True)
msrnet.upscale(fast, Image.open("photo.png")).save("photo_x4_fast.png")
# --8<-- [end:small]

assert Image.open("photo_x4_fast.png").size == (192, 192)

# --8<-- [start:tensors]
import torch

model = msrnet.create_model("msr_x2").eval()
with torch.inference_mode():
    sr = model(torch.rand(4, 3, 32, 32))  # (4, 3, 64, 64)
# --8<-- [end:tensors]

assert sr.shape == (4, 3, 64, 64)
