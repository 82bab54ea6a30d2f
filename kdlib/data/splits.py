"""The in-memory form every loader returns: uint8 images and int64 labels per split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


class DataNotFoundError(FileNotFoundError):
    """No dataset where we looked; the message says what to attach or pass."""


class CorruptDataError(ValueError):
    """A dataset file exists but is truncated or malformed; the message names the file."""


@dataclass
class ImageSplits:
    """Train / validation / test images (N, C, H, W) uint8 and labels (N,) int64, on the CPU."""

    name: str
    source: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str] = field(default_factory=lambda: [str(i) for i in range(10)])
    notes: list[str] = field(default_factory=list)  # what a reader of the results should know (e.g. other copies found)

    def __post_init__(self):
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != torch.uint8 or x.ndim != 4 or y.dtype != torch.int64 or len(x) != len(y):
                raise ValueError(f"{split}: expected uint8 (N,C,H,W) images and int64 (N,) labels")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return int(self.train_x.shape[1])

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images in [0, 1], used for normalisation (computed once: a run
        resumed every epoch, as the interleaved shoot-out does, asks for them each time)."""
        cached = self.__dict__.get("_channel_stats")
        if cached is None:
            x = self.train_x.float().div_(255)
            cached = self.__dict__["_channel_stats"] = (x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist())
        return list(cached[0]), list(cached[1])

    def fingerprint(self) -> str:
        """SHA-256 of the name, the classes, each split's shape and every pixel and label: two loads of the
        same data give the same value wherever the files were mounted; one changed pixel gives another."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            h = hashlib.sha256(f"{self.name}\n{self.classes}\n".encode())
            for split in ("train", "val", "test"):
                for t in (getattr(self, f"{split}_x"), getattr(self, f"{split}_y")):
                    h.update(f"{split}{tuple(t.shape)}{t.dtype}".encode())
                    h.update(t.contiguous().numpy().data)
            cached = self.__dict__["_fingerprint"] = h.hexdigest()
        return cached

    def info(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "n_train": len(self.train_y),
            "n_val": len(self.val_y),
            "n_test": len(self.test_y),
            "fingerprint": self.fingerprint(),
            **({"notes": list(self.notes)} if self.notes else {}),
        }


def _image_digests(x: torch.Tensor) -> list[bytes]:
    rows = x.reshape(len(x), -1).contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def train_test_duplicates(splits: ImageSplits) -> int:
    """How many test images are exact copies (every pixel) of a training or validation image: test accuracy on them
    measures memory, not generalisation."""
    seen = set(_image_digests(splits.train_x)) | set(_image_digests(splits.val_x))
    return sum(digest in seen for digest in _image_digests(splits.test_x))


def note_duplicates(splits: ImageSplits) -> ImageSplits:
    """``splits`` with a note when some test images are exact copies of training ones (``train_test_duplicates``)."""
    copies = train_test_duplicates(splits)
    if copies:
        splits.notes.append(f"{copies:,} of the {len(splits.test_y):,} test images are exact copies of training or "
                            "validation images (leakage): test accuracy on them is not held out")
    return splits


def check_labels(labels, num_classes: int, where) -> np.ndarray:
    """``labels`` as int64, after checking they are integers (not floats, booleans or strings: a fractional label would
    be truncated into another class) from 0 to ``num_classes - 1``; a CorruptDataError naming ``where`` otherwise."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise CorruptDataError(f"{where}: labels must be a list of integers, got an array of shape {array.shape}")
    if array.dtype.kind not in "iu":
        bad = next((v for v in array.tolist() if isinstance(v, bool) or not isinstance(v, int)), None)
        raise CorruptDataError(f"{where}: labels must be integers 0-{num_classes - 1}; found {array.dtype.name} values "
                               f"such as {bad!r}")
    outside = array[(array < 0) | (array >= num_classes)]
    if len(outside):
        raise CorruptDataError(f"{where}: label {outside[0]} is out of range 0-{num_classes - 1}")
    return array.astype(np.int64)


def carve_validation(x: torch.Tensor, y: torch.Tensor, n_val: int, seed: int, what: str = "the training data"):
    """Split (x, y) into train and validation parts by a seeded permutation."""
    if len(y) < 2:
        raise CorruptDataError(f"{what} holds {len(y)} image(s): too few to split off a validation part")
    if not 0 < n_val < len(y):
        raise ValueError(f"validation size {n_val} must be between 1 and {len(y) - 1} ({what} holds {len(y)} images)")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def carve_stratified(x: torch.Tensor, y: torch.Tensor, fraction: float, seed: int, what: str = "the training data"):
    """Split (x, y) into a rest and a held-out part holding ``round(fraction * n_c)`` images of each class c
    (at least one of every class with two or more), by a seeded permutation per class."""
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction {fraction} must be between 0 and 1")
    generator = torch.Generator().manual_seed(seed)
    held = []
    for c in torch.unique(y).tolist():
        members = (y == c).nonzero(as_tuple=True)[0]
        k = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.append(members[torch.randperm(len(members), generator=generator)[:k]])
    held_mask = torch.zeros(len(y), dtype=torch.bool)
    held_mask[torch.cat(held)] = True
    if held_mask.all() or not held_mask.any():
        raise CorruptDataError(f"{what} holds {len(y)} image(s): too few to carve a test split from each class")
    return x[~held_mask], y[~held_mask], x[held_mask], y[held_mask]
