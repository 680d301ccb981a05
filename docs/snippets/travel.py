"""Weights that travel: a timm / Hugging Face folder, then spandrel (docs/integrations.md)."""
import tempfile
from pathlib import Path

folder = Path(tempfile.mkdtemp()) / "msr_x4"
# --8<-- [start:folder]
import timm
import torch

import msrnet  # registers msr_x2/x4/x8 with timm

model = msrnet.create_model("msr_x4", pretrained=True).eval()
msrnet.save_pretrained(model, folder)  # config.json, model.safetensors, README.md
print(sorted(p.name for p in folder.iterdir()))
# ['README.md', 'config.json', 'model.safetensors']

same = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
lr = torch.rand(1, 3, 16, 16)
with torch.no_grad():
    assert torch.equal(same(lr), model(lr))
# --8<-- [end:folder]

# --8<-- [start:spandrel]
import spandrel

from msrnet.integrations import spandrel as msr_spandrel

msr_spandrel.install()  # once per process: adds msrnet to spandrel.MAIN_REGISTRY
descriptor = spandrel.ModelLoader().load_from_file(folder / "model.safetensors")
print(type(descriptor).__name__, descriptor.scale, descriptor.purpose)
print(descriptor.tags)
# ImageModelDescriptor 4 SR ['x4', '128nf', '8-4b']
with torch.no_grad():
    assert torch.equal(descriptor.model(lr), model(lr))
# --8<-- [end:spandrel]
