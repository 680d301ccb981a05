"""Training from Python and the patch pipeline (docs/training.md)."""

import json
from importlib import resources
from pathlib import Path

from PIL import Image

# Stand-in for "your folder of HR images": crops of the sample portrait.
sample = Image.open(str(resources.files("msrnet") / "assets" / "astronaut.png")).convert("RGB")
Path("hr").mkdir()
for i in range(3):
    sample.crop((40 * i, 0, 40 * i + 96, 96)).save(f"hr/{i}.png")

# --8<-- [start:train]
from msrnet.train import TrainConfig, train

config = TrainConfig(
    train_dir="hr",
    val_dir="hr",  # use a benchmark folder such as Set5 in practice
    output_dir="runs/tiny",
    model="msr_x4",
    # a tiny network for the demo
    model_kwargs={"stem_widths": (16, 16), "num_blocks": 2},
    max_steps=4,
    batch_size=2,
    patch_size=12,
    log_every=2,
    device="cpu",
)
summary = train(
    config
)  # {"step": 4, "best_psnr": ..., "weights": "runs/tiny/best.safetensors", ...}
# --8<-- [end:train]

assert summary["step"] == 4

# --8<-- [start:log]
for line in Path("runs/tiny/log.jsonl").read_text().splitlines():
    record = json.loads(line)
    print(record["event"], record["step"], record.get("loss", record.get("psnr")))
# --8<-- [end:log]

# --8<-- [start:sampler]
from msrnet.data import InMemoryPatchSampler

sampler = InMemoryPatchSampler(
    "hr", scale=4, patch_size=12, batch_size=8, min_scale=0.5, seed=0
)
# (8, 3, 12, 12) and (8, 3, 48, 48), on the GPU when there is one
lr, hr = sampler.sample()
# --8<-- [end:sampler]

assert lr.shape == (8, 3, 12, 12) and hr.shape == (8, 3, 48, 48)
