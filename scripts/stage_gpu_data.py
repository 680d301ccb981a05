"""Copy the training and validation images into the tree for a GPU run, within its payload.

The GPU machine receives the working tree plus the folders named in ``carry``, 64 MiB in all,
and nothing beside the repository. This script copies Set5, Set14 and as much of train291 as
fits into ``DEST`` (default ``.gpu_data``, ignored through ``.git/info/exclude``), after
counting what the tree itself sends (the shipped weights among it).

While everything fits, every image goes. Once the package holds the three full-size weights
(about 42 MB) it no longer does: train291 is then taken as a rotation, a contiguous run of
the sorted file list starting at ``--rotation`` times a fifth of the list, so successive GPU
runs (each fine-tuning the shipped weights) see different images and, together, all of them.
``DEST/manifest.json`` lists the images taken.

The room is also the package's budget. Every tracked file travels, so each weights file added to
the package takes training images from the GPU run. Below `MIN_TRAINING_BYTES`, about ten
train291 images (the run would fine-tune on almost nothing), staging refuses, and so does
``tests/test_gpu_run.py``. So a new file ships only where it replaces one, or where it is worth
shrinking the GPU run (a new default): CONTRIBUTING, "Training on a GPU".

    python scripts/stage_gpu_data.py ../shared/data              # -> .gpu_data
    python scripts/stage_gpu_data.py ../shared/data --rotation 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD_LIMIT = 64 * 2**20
# Room kept free: the transfer counts metadata, and the run writes nothing back into the tree.
MARGIN = 2 * 2**20
VALIDATION_SETS = ("Set5", "Set14")
# The least room for training images a GPU run is worth: about ten of train291's larger (BSD)
# images at about 150 KB each.
MIN_TRAINING_BYTES = 3 * 2**19


def tree_bytes(root: Path = ROOT, exclude: Path | None = None) -> int:
    """Bytes of what a device call sends of the tree: tracked and untracked-not-ignored files."""
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split("\0")
    total = 0
    for name in filter(None, names):
        path = root / name
        if exclude is not None and exclude in path.parents:
            continue
        if path.is_file():
            total += path.stat().st_size
    return total


def choose_training_images(files: list[Path], room: int, rotation: int) -> list[Path]:
    """All of ``files`` if they fit in ``room`` bytes, else a contiguous run from the rotation."""
    if sum(f.stat().st_size for f in files) <= room:
        return files
    start = (rotation * len(files)) // 5 % len(files)
    chosen, used = [], 0
    for f in files[start:] + files[:start]:
        if used + f.stat().st_size > room:
            break
        chosen.append(f)
        used += f.stat().st_size
    return chosen


def stage(source: Path, dest: Path, rotation: int = 0) -> dict[str, Any]:
    """Copy the data into ``dest``; returns the manifest (also written to dest/manifest.json)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in VALIDATION_SETS:
        shutil.copytree(source / name, dest / name)
    tree = tree_bytes(exclude=dest)
    used = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    room = PAYLOAD_LIMIT - MARGIN - tree - used
    files = sorted(f for f in (source / "train291").iterdir() if f.is_file())
    if room < MIN_TRAINING_BYTES:
        raise SystemExit(
            f"{room / 2**20:.2f} MiB left for training images beside the tree, under the "
            f"{MIN_TRAINING_BYTES / 2**20:.1f} MiB a GPU run needs: the package has grown too large"
        )
    chosen = choose_training_images(files, room, rotation)
    (dest / "train291").mkdir()
    for f in chosen:
        shutil.copyfile(f, dest / "train291" / f.name)
    train_bytes = sum(f.stat().st_size for f in chosen)
    manifest = {
        "rotation": rotation,
        "train_images": len(chosen),
        "of": len(files),
        "files": [f.name for f in chosen],
        "train_bytes": train_bytes,
        "payload_bytes": tree + used + train_bytes,
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="folder holding train291/, Set5/, Set14/")
    p.add_argument("--dest", type=Path, default=ROOT / ".gpu_data")
    p.add_argument("--rotation", type=int, default=0, help="which fifth of train291 to start at")
    args = p.parse_args(argv)
    manifest = stage(args.source, args.dest, args.rotation)
    print(
        f"{manifest['train_images']} of {manifest['of']} training images; "
        f"payload {manifest['payload_bytes'] / 2**20:.1f} MiB of {PAYLOAD_LIMIT / 2**20:.0f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
