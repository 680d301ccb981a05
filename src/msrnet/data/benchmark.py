"""Evaluation datasets: HR folders degraded on the fly, and folders of ready LR/HR pairs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from msrnet.data.degradations import BENCHMARK_CONDITIONS, Condition
from msrnet.data.io import list_images, read_image, uint8_to_tensor
from msrnet.ops.imresize import imresize

__all__ = ["BenchmarkDataset", "PairedDataset", "bicubic_degrade", "mod_crop"]



class Sample(TypedDict):
    """One evaluation pair: float32 ``lr`` ``(C, h, w)`` and ``hr`` ``(C, h * scale, w * scale)``
    in [0, 1], and the HR file's stem as ``name``."""

    lr: torch.Tensor
    hr: torch.Tensor
    name: str


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Cut an ``(H, W[, C])`` image at bottom/right to multiples of ``scale`` (``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """The tables' LR image: MATLAB ``imresize(hr, 1/scale, 'bicubic')`` on a uint8 image.

    Args:
        hr: ``uint8`` ``(H, W, C)`` image, ``H`` and ``W`` multiples of ``scale``.
        scale: integer down-scaling factor.

    Returns:
        ``uint8`` ``(H / scale, W / scale, C)``, rounded after each 1-D pass as
        MATLAB's uint8 path does.
    """
    chw = torch.from_numpy(hr.transpose(2, 0, 1).copy())
    return imresize(chw, 1.0 / scale).permute(1, 2, 0).numpy()


class BenchmarkDataset(Dataset[Sample]):
    """A folder of HR images (Set5, Set14, B100, Urban100, ...) with bicubic LR made on the fly.

    Each HR image is mod-cropped to a multiple of ``scale`` and its LR image is
    MATLAB's bicubic down-scaling of the uint8 image (:func:`bicubic_degrade`), then, with
    a ``condition`` other than ``clean``, that LR image degraded by a fixed condition
    (`~msrnet.data.degradations.BENCHMARK_CONDITIONS`: JPEG, Gaussian noise) seeded by
    ``seed`` and the file's name, so the LR bytes are the same on every run and machine.

    Items are dicts with ``"lr"``: float32 ``(C, H / scale, W / scale)`` in [0, 1]
    (on uint8 levels), ``"hr"``: float32 ``(C, H, W)`` in [0, 1], and ``"name"``:
    the file's stem. ``C`` is 3 unless ``channels`` says otherwise: grayscale
    images are expanded to R = G = B by default, which leaves their Y unchanged.

    Args:
        root: folder of HR images (not recursive).
        scale: integer super-resolution factor.
        channels: passed to :func:`~msrnet.data.io.read_image`; ``None`` keeps each
            file's own channel count.
        condition: a condition name (``"clean"``, the protocol, the default; ``"jpeg75"``,
            ``"noise10"``, ...) or a `Condition`.
        seed: seed of the condition's noise.
    """

    def __init__(
        self,
        root: str | Path,
        scale: int,
        channels: int | None = 3,
        condition: str | Condition = "clean",
        seed: int = 0,
    ) -> None:
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        if isinstance(condition, str):
            if condition not in BENCHMARK_CONDITIONS:
                raise ValueError(f"unknown condition {condition!r}; conditions: {', '.join(BENCHMARK_CONDITIONS)}")
            condition = BENCHMARK_CONDITIONS[condition]
        Condition.check_seed(seed)  # here, not per image: a bad seed would fail every image alike
        self.condition, self.seed = condition, seed
        self.root = Path(root)
        self.name = self.root.name
        self.scale = scale
        self.channels = channels
        self.files = list_images(self.root)
        if not self.files:
            raise FileNotFoundError(f"no images in {self.root}")

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: int) -> Sample:
        path = self.files[index]
        hr = mod_crop(read_image(path, self.channels), self.scale)
        if min(hr.shape[:2]) == 0:
            # Not an IndexError: DataLoader and the sequence protocol read that as the end.
            raise ValueError(f"{path.name}: smaller than the scale x{self.scale}")
        lr = bicubic_degrade(hr, self.scale)
        if self.condition != Condition():  # clean changes nothing: no round trip through tensors
            chw = torch.from_numpy(lr.transpose(2, 0, 1).copy())
            lr = self.condition.apply(chw, self.seed, path.name).permute(1, 2, 0).numpy()
        return {"lr": uint8_to_tensor(lr), "hr": uint8_to_tensor(hr), "name": path.stem}


class PairedDataset(Dataset[Sample]):
    """Folders of matching HR and LR images, e.g. DIV2K's validation split.

    LR files are matched to HR files by stem, with or without an ``x{scale}``
    suffix: ``DIV2K_valid_LR_bicubic/X4/0801x4.png`` pairs with
    ``DIV2K_valid_HR/0801.png``. ``lr_root`` may also be the folder holding
    ``X{scale}/`` (``DIV2K_valid_LR_bicubic``). An HR image larger than ``scale``
    times its LR image (by less than ``scale`` pixels) is mod-cropped.

    Items are dicts like :class:`BenchmarkDataset`'s; ``"name"`` is the HR stem.

    Args:
        hr_root: folder of HR images.
        lr_root: folder of LR images, or its parent holding ``X{scale}/``.
        scale: integer super-resolution factor.
        channels: passed to :func:`~msrnet.data.io.read_image`.
    """

    def __init__(
        self,
        hr_root: str | Path,
        lr_root: str | Path,
        scale: int,
        channels: int | None = 3,
    ) -> None:
        self.hr_root = Path(hr_root)
        lr_root = Path(lr_root)
        if (lr_root / f"X{scale}").is_dir():
            lr_root = lr_root / f"X{scale}"
        self.lr_root = lr_root
        self.name = self.hr_root.name
        self.scale = scale
        self.channels = channels

        suffix = re.compile(rf"x{scale}$", re.IGNORECASE)
        lr_by_stem = {suffix.sub("", p.stem): p for p in list_images(self.lr_root)}
        self.pairs: list[tuple[Path, Path]] = []
        missing = []
        for hr_path in list_images(self.hr_root):
            lr_path = lr_by_stem.get(hr_path.stem)
            if lr_path is None:
                missing.append(hr_path.name)
            else:
                self.pairs.append((hr_path, lr_path))
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} HR images have no LR image in {self.lr_root}, e.g. {missing[0]}"
            )
        if not self.pairs:
            raise FileNotFoundError(f"no images in {self.hr_root}")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        hr_path, lr_path = self.pairs[index]
        hr = read_image(hr_path, self.channels)
        lr = read_image(lr_path, self.channels)
        h, w = lr.shape[0] * self.scale, lr.shape[1] * self.scale
        if not (h <= hr.shape[0] < h + self.scale and w <= hr.shape[1] < w + self.scale):
            raise ValueError(
                f"{lr_path.name} {lr.shape[:2]} x{self.scale} does not match "
                f"{hr_path.name} {hr.shape[:2]}"
            )
        return {"lr": uint8_to_tensor(lr), "hr": uint8_to_tensor(hr[:h, :w]), "name": hr_path.stem}
