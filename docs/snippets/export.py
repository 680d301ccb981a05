"""Export a model and run it without msrnet's Python code (docs/tutorials/export.md)."""
# --8<-- [start:program]
import torch

import msrnet
from msrnet.export import export_model

model = msrnet.create_model("msr_x4", pretrained=True)
export_model(model, "msr_x4.pt2", verify=True)  # dynamic batch, height, width

program = torch.export.load("msr_x4.pt2").module()  # no msrnet import needed
sr = program(torch.rand(1, 3, 40, 56))  # any size: (1, 3, 160, 224)
# --8<-- [end:program]

assert sr.shape == (1, 3, 160, 224)
