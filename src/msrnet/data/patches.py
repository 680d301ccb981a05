"""Training patches: (LR, HR) pairs cut from folders of HR images.

Every patch is cut and augmented the same way, whichever class serves it:

1. pick an image and a square region of ``L = round(scale * patch_size / f)`` HR pixels, where
   ``f`` is drawn from ``[min_scale, 1]`` (``f = 1``: a plain crop);
2. apply one of the 8 flips / 90-degree rotations (the dihedral group), folded into the
   crop's gather indices so it costs nothing;
3. resize the region to ``scale * patch_size`` (when ``f < 1``: down-scaling augmentation, the
   same as down-scaling the whole image by ``f`` before cropping, up to the region's borders);
4. make the LR patch with MATLAB's bicubic ``imresize`` on the uint8 HR patch, as the benchmarks
   and DIV2K's official LR images are made (see `bicubic_downscale`: one float64 matmul per
   dimension with MATLAB's rounding after each pass; it differs from the tap-exact
   ``imresize(uint8)`` only where a value sits on a rounding tie, a handful of pixels per
   million, and costs a few kernels instead of a hundred);
5. optionally degrade it further (noise, JPEG, blur, ...; `msrnet.data.degradations`), on the
   training device, with the sampler's own random stream.

:class:`InMemoryPatchSampler` keeps every decoded image in one uint8 buffer on the training
device and cuts whole batches there with a handful of tensor ops (DIV2K's 800 images are about
7 GB as uint8; train291 is 0.1 GB).
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from msrnet.data.degradations import DegradationConfig, bicubic_downscale, degrade, load_degradation
from msrnet.data.io import list_images, read_image

__all__ = ["InMemoryPatchSampler", "load_images"]


def load_images(
    source: str | Path | Sequence[str | Path],
    channels: int = 3,
    progress: bool = True,
    skip_unreadable: bool = False,
) -> list[Tensor]:
    """Decode images (a folder or a list of files) into uint8 ``(C, H, W)`` tensors.

    Decoding runs in a thread pool (PIL releases the GIL while it decodes). With
    ``skip_unreadable`` a file that fails to decode is left out with a warning naming it
    (one bad file in a large training set should not end the run); otherwise its error is raised.
    """
    files = list_images(source) if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if not files:
        raise FileNotFoundError(f"no images in {source}")

    def decode(path: Path) -> Tensor | None:
        try:
            return torch.from_numpy(read_image(path, channels).transpose(2, 0, 1).copy())
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            if not skip_unreadable:
                raise
            warnings.warn(f"skipped unreadable image {path}: {e}", stacklevel=2)
            return None

    with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
        decoded = list(
            tqdm(
                pool.map(decode, files),
                total=len(files),
                desc="decoding images",
                unit="img",
                disable=not progress,
                file=sys.stderr,
                leave=False,
            )
        )
    return [image for image in decoded if image is not None]


class _PatchCutter:
    """Images packed into one flat uint8 buffer, and the batched cut/augment/degrade of §1-4.

    Random draws come from a CPU generator (identical streams on every device); only the
    gather and the resizes run on the buffer's device.
    """

    def __init__(
        self,
        images: Sequence[Tensor],
        scale: int,
        patch_size: int,
        augment: bool,
        min_scale: float,
        device: torch.device,
        degradation: DegradationConfig | str = "bicubic",
    ) -> None:
        self.degradation = load_degradation(degradation)
        if scale < 1 or patch_size < 1:
            raise ValueError(f"scale and patch_size must be positive, got {scale} and {patch_size}")
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        self.scale, self.patch_size, self.augment, self.min_scale = (
            scale,
            patch_size,
            augment,
            min_scale,
        )
        self.hr_size = scale * patch_size
        channels = {img.shape[0] for img in images}
        if len(channels) != 1 or any(img.dtype != torch.uint8 or img.dim() != 3 for img in images):
            raise ValueError("images must be uint8 (C, H, W) tensors with one channel count C")
        kept = [img for img in images if min(img.shape[-2:]) >= self.hr_size]
        if len(kept) < len(images):
            if not kept:
                raise ValueError(
                    f"every image is smaller than the {self.hr_size}x{self.hr_size} HR patch "
                    f"(patch_size {patch_size} x scale {scale}); use a smaller patch_size"
                )
            warnings.warn(
                f"{len(images) - len(kept)} of {len(images)} images are smaller than the "
                f"{self.hr_size}x{self.hr_size} HR patch and are left out",
                stacklevel=3,
            )
        self.channels = channels.pop()
        self.heights = torch.tensor([img.shape[1] for img in kept])
        self.widths = torch.tensor([img.shape[2] for img in kept])
        sizes = self.channels * self.heights * self.widths
        self.starts = torch.cumsum(sizes, 0) - sizes
        self.buffer = torch.empty(int(sizes.sum()), dtype=torch.uint8, device=device)
        for img, start, size in zip(kept, self.starts.tolist(), sizes.tolist()):
            self.buffer[start : start + size].copy_(img.reshape(-1))
        self.device = device
        # Per image: buffer offset, channel-plane stride, row stride (for the gather indices).
        self._strides = torch.stack((self.starts, self.heights * self.widths, self.widths)).to(
            device
        )

    def __len__(self) -> int:
        return len(self.heights)

    def cut(self, batch_size: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """A batch of pairs: LR ``(B, C, p, p)`` and HR ``(B, C, s*p, s*p)``, float32 in [0, 1]."""
        g = generator
        index = torch.randint(len(self), (batch_size,), generator=g)
        transform = torch.randint(8 if self.augment else 1, (batch_size,), generator=g)
        f = 1.0 - (1.0 - self.min_scale) * torch.rand((), generator=g).item()
        heights, widths = self.heights[index], self.widths[index]
        # One region size per batch keeps the resize batched; the smallest image picked bounds it.
        region = min(round(self.hr_size / f), int(heights.min()), int(widths.min()))
        top = (torch.rand(batch_size, generator=g) * (heights - region + 1)).long()
        left = (torch.rand(batch_size, generator=g) * (widths - region + 1)).long()

        params = torch.stack((index, transform, top, left))
        if self.device.type == "cuda":
            # Pinned and non-blocking, the copy is queued behind the GPU's work instead of
            # making the host wait for that work to finish.
            params = params.pin_memory().to(self.device, non_blocking=True)
        hr = self._gather(params, region)
        if region != self.hr_size:
            hr = bicubic_downscale(hr, self.hr_size)
        lr, hr_float = bicubic_downscale(hr, self.patch_size).float().div_(255.0), hr.float().div_(255.0)
        # `degrade` decides whether the pipeline changes anything (the bicubic preset does not).
        lr = degrade(hr_float, self.scale, self.degradation, g, clean_lr=lr)
        return lr, hr_float

    def _gather(self, params: Tensor, size: int) -> Tensor:
        """uint8 ``(B, C, size, size)`` crops, each under its dihedral transform (3 bits).

        ``params`` is ``(4, B)`` on the buffer's device: image index, transform, top, left.

        Output pixel ``(u, v)`` reads source row ``top + r(u)`` and column ``left + c(v)``, or
        with the transpose bit set, row ``top + r(v)`` and column ``left + c(u)``, where ``r``
        and ``c`` reverse when their flip bit is set. The flat index is thus a sum of a
        per-image offset, a ``(B, size)`` term in ``u`` and a ``(B, size)`` term in ``v``.
        """
        dev = self.device
        index, transform, top, left = (p.view(-1, 1) for p in params)
        start, plane, width = self._strides[:, index.squeeze(1)].unsqueeze(-1)
        axis = torch.arange(size, device=dev).view(1, size)
        transpose = (transform & 1).bool()
        row_offset = (top + torch.where((transform & 2).bool(), size - 1 - axis, axis)) * width
        col_offset = left + torch.where((transform & 4).bool(), size - 1 - axis, axis)
        along_u = torch.where(transpose, col_offset, row_offset)
        along_v = torch.where(transpose, row_offset, col_offset)
        channel = torch.arange(self.channels, device=dev).view(1, -1)
        base = (start + plane * channel).view(-1, self.channels, 1, 1)
        flat = base + along_u.unsqueeze(1).unsqueeze(-1) + along_v.unsqueeze(1).unsqueeze(2)
        return self.buffer[flat]


class InMemoryPatchSampler:
    """Batches of (LR, HR) patches cut on the training device from images held in its memory.

    All images are decoded once into a single uint8 buffer on ``device``; each batch is one
    gather (crop + flip/rotation folded into the indices) and two batched ``imresize`` calls,
    so the GPU never waits on Python or a ``DataLoader``. Random draws use a CPU generator
    seeded by ``seed``: the stream is the same on every device and :meth:`state_dict` /
    :meth:`load_state_dict` resume it exactly.

    Args:
        images: a folder of HR images, a list of files, or uint8 ``(C, H, W)`` tensors.
        scale: super-resolution factor s.
        patch_size: LR patch size p.
        batch_size: pairs per batch B.
        augment: random flips and 90-degree rotations (one of 8, per pair).
        min_scale: down-scaling augmentation: each HR region is first scaled by a random factor
            in ``[min_scale, 1]`` (1 disables it; 0.5 is usual), one factor per batch.
        device: where images live and batches are made (default: CUDA when available).
        seed: seed of the sampling stream (the degradations draw from it too).
        progress: progress bar while decoding.
        degradation: how LR patches are made: a preset of `msrnet.data.degradations`
            (``"bicubic"``, the protocol's, ``"web"``, ``"real"``), a JSON file, or a
            `DegradationConfig`.

    Yields:
        ``(lr, hr)``: float32 ``(B, 3, p, p)`` and ``(B, 3, s*p, s*p)`` in [0, 1] on ``device``.
    """

    def __init__(
        self,
        images: str | Path | Sequence[str | Path] | Sequence[Tensor],
        scale: int,
        patch_size: int,
        batch_size: int,
        *,
        augment: bool = True,
        min_scale: float = 1.0,
        device: str | torch.device | None = None,
        seed: int = 0,
        progress: bool = True,
        degradation: DegradationConfig | str = "bicubic",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not isinstance(images, (str, Path)) and len(images) == 0:
            raise ValueError("InMemoryPatchSampler needs at least one image")
        if isinstance(images, (str, Path)) or not all(isinstance(i, Tensor) for i in images):
            tensors = load_images(cast(Sequence[str | Path], images), progress=progress)
        else:
            tensors = cast(list[Tensor], list(images))
        self.batch_size = batch_size
        self._cutter = _PatchCutter(
            tensors, scale, patch_size, augment, min_scale, torch.device(device), degradation
        )
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def num_images(self) -> int:
        return len(self._cutter)

    @property
    def device(self) -> torch.device:
        return self._cutter.device

    def sample(self) -> tuple[Tensor, Tensor]:
        """One batch: LR ``(B, 3, p, p)``, HR ``(B, 3, s*p, s*p)``."""
        return self._cutter.cut(self.batch_size, self.generator)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        while True:
            yield self.sample()

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
