"""Batches from tensors that live on the training device, with augmentation done on whole batches.

No DataLoader, no worker processes, no per-sample Python: an epoch is one ``randperm`` and one gather
per batch (the airbench approach). Randomness comes from a generator seeded by (seed, epoch), so an
epoch's batches are the same whether or not the run was interrupted and resumed before it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class RandomAffine:
    """Random translation (in pixels), rotation and scale of a float batch in [0, 1], zero-filled.

    One ``affine_grid`` + ``grid_sample`` call for the whole batch.
    """

    def __init__(self, max_shift: float = 2.0, max_rotate_deg: float = 0.0, scale: tuple[float, float] = (1.0, 1.0)):
        if max_shift < 0 or max_rotate_deg < 0 or not 0 < scale[0] <= scale[1]:
            raise ValueError("RandomAffine: shift and rotation must be >= 0 and 0 < scale[0] <= scale[1]")
        self.max_shift, self.max_rotate_deg, self.scale = max_shift, max_rotate_deg, scale

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(len(x), 4, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
        return self.apply(x, u)

    def apply(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The transform for draws u in [-1, 1]^(N x 4): rotation, scale, x shift, y shift.
        u = +1 in a shift column moves the content max_shift pixels towards the origin (up / left)."""
        _, _, h, w = x.shape
        angle = u[:, 0] * math.radians(self.max_rotate_deg)
        s = self.scale[0] + (u[:, 1] + 1) / 2 * (self.scale[1] - self.scale[0])
        # affine_grid works in [-1, 1] coordinates: a shift of k pixels is 2k / size.
        tx, ty = u[:, 2] * self.max_shift * 2 / w, u[:, 3] * self.max_shift * 2 / h
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)

    def __repr__(self) -> str:
        return f"RandomAffine(max_shift={self.max_shift}, max_rotate_deg={self.max_rotate_deg}, scale={self.scale})"


class DeviceLoader:
    """Iterate (images, labels, indices) batches of uint8 tensors moved once to ``device``.

    Images come out as normalised float32, optionally augmented and in channels_last layout;
    ``indices`` are positions in the dataset, for algorithms that keep per-sample state.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device | str,
                 mean: list[float], std: list[float], shuffle: bool = False, drop_last: bool = False,
                 augment=None, seed: int = 0, channels_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.seed, self.channels_last = augment, seed, channels_last
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.epoch, self.rows = 0, None

    def set_epoch(self, epoch: int, indices: torch.Tensor | None = None) -> None:
        """The epoch (its data order and augmentation draws come from (seed, epoch)) and the rows it iterates:
        ``indices`` (a selection rule's, e.g. InfoBatch's), in a seeded shuffle, or all rows when None."""
        self.epoch = epoch
        self.rows = None if indices is None else torch.as_tensor(indices, dtype=torch.long).to(self.device)

    @property
    def num_rows(self) -> int:
        return len(self.y)

    def __len__(self) -> int:
        n = len(self.y) if self.rows is None else len(self.rows)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed * 100_003 + self.epoch)

    def prepare(self, x_uint8: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 -> float in [0, 1] -> augmentation (zero background) -> normalisation -> layout."""
        x = x_uint8.float().div_(255)
        if self.augment is not None and generator is not None:
            x = self.augment(x, generator)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self):
        g = self.generator()
        n = len(self.y) if self.rows is None else len(self.rows)
        order = torch.randperm(n, generator=g, device=self.device) if self.shuffle else torch.arange(n, device=self.device)
        if self.rows is not None:
            order = self.rows[order]
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.prepare(self.x[idx], g if self.shuffle else None), self.y[idx], idx


class RandomCropFlip:
    """Random crop after padding, and random horizontal flip, for a whole batch in one gather.

    The standard CIFAR augmentation (pad 4, crop back to size, flip with probability 1/2), done on the
    device: per-sample offsets become index grids, so there is no loop over samples.
    """

    def __init__(self, pad: int = 4, flip: bool = True, padding_mode: str = "reflect"):
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad, self.flip, self.padding_mode = pad, flip, padding_mode

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = len(x)
        offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator, device=x.device)
        flips = torch.rand(n, generator=generator, device=x.device) < 0.5 if self.flip else None
        return self.apply(x, offsets, flips)

    def apply(self, x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
        """offsets (N, 2): top and left corner in the padded image; flips (N,) bool or None."""
        n, c, h, w = x.shape
        p = self.pad
        if p:
            padded = F.pad(x, (p, p, p, p), mode=self.padding_mode)
            rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (N, H)
            cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (N, W)
            x = padded[torch.arange(n, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None],
                       rows[:, None, :, None], cols[:, None, None, :]]
        if flips is not None:
            x = torch.where(flips[:, None, None, None], x.flip(3), x)
        return x

    def __repr__(self) -> str:
        return f"RandomCropFlip(pad={self.pad}, flip={self.flip}, padding_mode={self.padding_mode!r})"


class ComposeBatch:
    """Batched augmentations applied in order, sharing the epoch's generator."""

    def __init__(self, steps):
        self.steps = list(steps)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x

    def __repr__(self) -> str:
        return f"ComposeBatch({self.steps})"
