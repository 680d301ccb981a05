"""Export to ONNX and run it in onnxruntime (docs/tutorials/export.md; the onnx extra)."""
# --8<-- [start:onnx]
import numpy as np
import onnxruntime as ort

import msrnet
from msrnet.export import export_model

model = msrnet.create_model("msr_x2")
export_model(model, "msr_x2.onnx", verify=True)  # checked in onnxruntime

session = ort.InferenceSession("msr_x2.onnx", providers=["CPUExecutionProvider"])
lr = np.random.rand(1, 3, 30, 41).astype(np.float32)  # (B, 3, H, W) in [0, 1]
(sr,) = session.run(None, {"lr": lr})  # (1, 3, 60, 82)
# --8<-- [end:onnx]

assert sr.shape == (1, 3, 60, 82)
