"""Copy the training and validation images into the tree for a GPU run, within its payload.

The GPU machine receives the working tree plus the folders named in ``carry``, 64 MiB in all,
and nothing beside the repository. This script copies Set5, Set14 and as much of train291 as
fits into ``DEST`` (default ``.gpu_data``, which ``.gitignore`` ignores), after
counting what the tree itself sends (the shipped weights among it).

While everything fits, every image goes. Once the package holds the three full-size weights
(about 42 MB) it no longer does: train291 is then taken as a rotation, a contiguous run of
the sorted file list starting at ``--rotation`` times a fifth of the list, so successive GPU
runs (each fine-tuning the shipped weights) see different images and, together, all of them.
``DEST/manifest.json`` lists the images taken.

**Over several calls.** A warm device machine keeps the ignored folders an earlier call carried,
so ``--calls N`` stages N shares: ``DEST.1`` ... ``DEST.<N-1>``, each as much train291 as fits
beside the tree (about 5.7 MiB today), carried one per call by the first N-1 calls (whose
command need only list them: ``ls -d .gpu_data*``), and ``DEST`` itself, carried by the last
call, the one that runs ``scripts/gpu_run.py --data-dir .gpu_data``. That run first gathers
(`gather`) the shares that arrived whole into ``DEST/train291`` and records in its
``results.json`` how many did (a machine that went cold between calls starts bare).
``--calls all`` takes as many calls as carry every image.

The room is also the package's budget. Every tracked file travels, so each weights file added to
the package takes training images from the GPU run. Below `MIN_TRAINING_BYTES`, about ten
train291 images (the run would fine-tune on almost nothing), staging refuses, and so does
``tests/test_gpu_run.py``. So a new file ships only where it replaces one, or where it is worth
shrinking the GPU run (a new default): CONTRIBUTING, "Training on a GPU".

    python scripts/stage_gpu_data.py ../shared/data              # -> .gpu_data
    python scripts/stage_gpu_data.py ../shared/data --rotation 3
    python scripts/stage_gpu_data.py ../shared/data --calls all  # -> .gpu_data, .gpu_data.1, ...
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
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
MANIFEST = "manifest.json"
# Marks a share folder as this script's, so restaging deletes only what staging made.
SHARE_MARK = "share.json"


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


def share_dir(dest: Path, k: int) -> Path:
    """Call k's folder: ``DEST`` for the last call (k = 0), ``DEST.k`` for the earlier ones."""
    return dest if k == 0 else dest.with_name(f"{dest.name}.{k}")


def choose_training_images(files: list[Path], rooms: Sequence[int], rotation: int) -> list[list[Path]]:
    """``files`` split into one share per room (bytes), in order.

    All of them if they fit in the rooms together; else a contiguous run of the sorted list from
    ``rotation`` fifths in, wrapping round, that fills the rooms.
    """
    sizes = {f: f.stat().st_size for f in files}
    start = 0 if sum(sizes.values()) <= sum(rooms) else (rotation * len(files)) // 5 % len(files)
    queue = files[start:] + files[:start]
    shares: list[list[Path]] = []
    for room in rooms:
        share: list[Path] = []
        while queue and sizes[queue[0]] <= room:
            room -= sizes[queue[0]]
            share.append(queue.pop(0))
        shares.append(share)
    return shares


def _check_ignored(folders: list[Path], root: Path = ROOT) -> None:
    """Refuse folders inside the tree that git does not ignore: every device call would send
    them with the tree, past its limit, instead of the one call that carries each."""
    for folder in folders:
        if not folder.resolve().is_relative_to(root):
            continue
        rel = folder.resolve().relative_to(root).as_posix() + "/"
        if subprocess.run(["git", "check-ignore", "-q", rel], cwd=root).returncode != 0:
            raise SystemExit(f"{rel} is not ignored by git, so every device call would send it: "
                             f"ignore it (.git/info/exclude) or stage elsewhere")


def _clear(dest: Path) -> None:
    """Delete an earlier staging at ``dest`` (its folder and its shares); refuse anything else."""
    if dest.exists():
        if not (dest / MANIFEST).is_file():
            raise SystemExit(f"{dest} exists and holds no {MANIFEST}: not a staging, left alone")
        shutil.rmtree(dest)
    for share in dest.parent.glob(f"{dest.name}.*"):
        if (share / SHARE_MARK).is_file():
            shutil.rmtree(share)


def stage(source: Path, dest: Path, rotation: int = 0, calls: int | None = 1) -> dict[str, Any]:
    """Copy the data into ``dest`` and its shares; returns the manifest (also dest/manifest.json).

    ``calls``: how many device calls carry the data (None: as many as carry every image).
    """
    _check_ignored([dest] if calls == 1 else [dest, share_dir(dest, 1)])
    _clear(dest)
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
    # An earlier call carries no validation sets, so its share has their room too.
    share_room = room + used
    if calls is None:
        calls = len(files)  # at least one image a call; the empty shares are dropped below
    shares = choose_training_images(files, [room] + [share_room] * (calls - 1), rotation)
    while len(shares) > 1 and not shares[-1]:
        shares.pop()
    entries: list[dict[str, Any]] = []
    for k, share in enumerate(shares):
        folder = share_dir(dest, k) / "train291"
        folder.mkdir(parents=True)
        for f in share:
            shutil.copyfile(f, folder / f.name)
        train_bytes = sum(f.stat().st_size for f in share)
        entry = {
            "folder": share_dir(dest, k).name,
            "files": {f.name: f.stat().st_size for f in share},
            "train_bytes": train_bytes,
            "payload_bytes": tree + (used if k == 0 else 0) + train_bytes,
        }
        if k:
            (share_dir(dest, k) / SHARE_MARK).write_text(json.dumps(entry, indent=1) + "\n")
        entries.append(entry)
    manifest = {
        "rotation": rotation,
        "of": len(files),
        "train_images": sum(len(s) for s in shares),
        "train_bytes": sum(e["train_bytes"] for e in entries),
        # Carried in this order: the shares first, DEST itself by the call that runs.
        "calls": entries[1:] + entries[:1],
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def gather(dest: Path) -> dict[str, Any]:
    """Move the shares that arrived whole into ``dest/train291``; records and returns the count.

    Run by ``scripts/gpu_run.py`` on the device, before it trains.

    A share is taken only as the manifest lists it (plain names, the sizes staged); a share
    that is missing or torn is left where it is and counted as missing.
    """
    manifest = json.loads((dest / MANIFEST).read_text())
    into = dest / "train291"
    arrived = len(list(into.iterdir()))
    missing = 0
    for k, entry in enumerate(manifest["calls"][:-1], start=1):
        folder = share_dir(dest, k) / "train291"
        files: dict[str, int] = entry["files"]
        if all((into / name).is_file() and (into / name).stat().st_size == size for name, size in files.items()):
            continue  # gathered by an earlier run, and counted above
        whole = all(
            Path(name).name == name and (folder / name).is_file() and not (folder / name).is_symlink()
            and (folder / name).stat().st_size == size and not (into / name).exists()
            for name, size in files.items()
        )
        if not whole:
            missing += len(files)
            continue
        for name in files:
            (folder / name).replace(into / name)
        arrived += len(files)
    manifest["gathered"] = {"train_images": arrived, "missing": missing}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _calls(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of calls, at least 1, or 'all'; got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="folder holding train291/, Set5/, Set14/")
    p.add_argument("--dest", type=Path, default=ROOT / ".gpu_data")
    p.add_argument("--rotation", type=int, default=0, help="which fifth of train291 to start at")
    p.add_argument("--calls", type=_calls, default=1,
                   help="device calls that carry the data, or 'all': as many as carry every image")
    args = p.parse_args(argv)
    manifest = stage(args.source, args.dest, args.rotation, args.calls)
    for call in manifest["calls"]:
        print(f"carry {call['folder']}: {len(call['files'])} training images, "
              f"payload {call['payload_bytes'] / 2**20:.1f} MiB of {PAYLOAD_LIMIT / 2**20:.0f}",
              file=sys.stderr)
    print(f"{manifest['train_images']} of {manifest['of']} training images in "
          f"{len(manifest['calls'])} call(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
