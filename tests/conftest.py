"""Generators of small dataset files in the real on-disk formats and layouts."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from kdlib.data.idx import IMAGES_MAGIC, LABELS_MAGIC

TORCHVISION_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
                     "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
# hojjatk/mnist-dataset: a dot before idx, and (in some mirrors) each file inside a folder of its own name.
HOJJATK_NAMES = {"train_images": "train-images.idx3-ubyte", "train_labels": "train-labels.idx1-ubyte",
                 "test_images": "t10k-images.idx3-ubyte", "test_labels": "t10k-labels.idx1-ubyte"}


def idx_bytes(array: np.ndarray) -> bytes:
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def fake_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose content encodes the label (a bright row at the label's position), so that a
    mix-up of images and labels would be visible."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
    images[np.arange(n), 4 + 2 * labels, :] = 255
    return images, labels


def write_idx_dataset(folder: Path, n_train: int = 60, n_test: int = 20, names=TORCHVISION_NAMES, gz: bool = False,
                      nested: bool = False, seed: int = 0) -> dict[str, Path]:
    arrays = {}
    arrays["train_images"], arrays["train_labels"] = fake_digits(n_train, seed)
    arrays["test_images"], arrays["test_labels"] = fake_digits(n_test, seed + 1)
    paths = {}
    for role, name in names.items():
        fname = name + (".gz" if gz else "")
        path = folder / fname / fname if nested else folder / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        data = idx_bytes(arrays[role])
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[role] = path
    return paths


def write_csv_dataset(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 1)):
        images, labels = fake_digits(n, s)
        header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
        rows = [",".join(map(str, [labels[i], *images[i].ravel()])) for i in range(n)]
        path = folder / f"mnist_{split}.csv"
        path.write_text(header + "\n" + "\n".join(rows) + "\n")
        paths[split] = path
    return paths


@pytest.fixture
def input_root(tmp_path, monkeypatch) -> Path:
    """An empty stand-in for /kaggle/input."""
    root = tmp_path / "kaggle" / "input"
    root.mkdir(parents=True)
    monkeypatch.setenv("KDLIB_INPUT_ROOT", str(root))
    return root


def write_cifar_batches(folder: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """cifar-10-batches-py/ with data_batch_1..5 and test_batch as the python pickles (bytes keys, as the
    originals written by Python 2 read under latin1). Image content encodes the label in the red channel."""
    import pickle

    target = folder / "cifar-10-batches-py"
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
        data[:, :1024] = (labels * 20)[:, None]  # red channel = 20 * label
        entry = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        with open(target / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    (target / "batches.meta").write_bytes(b"")
    return target


def write_cifar_tree(folder: Path, per_class: int = 6, test_per_class: int | None = 2, fmt: str = "png",
                     seed: int = 0) -> Path:
    """CIFAR-10 as image folders: train/<class>/NNNN.<fmt> (and test/<class>/ unless test_per_class is None),
    32x32 RGB. The red channel encodes the label (20 * label; PNG keeps it exact), the rest is noise."""
    from PIL import Image

    from kdlib.data.cifar import CLASSES

    rng = np.random.default_rng(seed)
    splits = {"train": per_class, **({"test": test_per_class} if test_per_class is not None else {})}
    for split, count in splits.items():
        for label, name in enumerate(CLASSES):
            target = folder / split / name
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[:, :, 0] = 20 * label
                Image.fromarray(pixels).save(target / f"{i:04d}.{fmt}")
    return folder


def tiny_splits(n_train=96, n_val=32, n_test=32, channels=1, size=8, seed=0):
    """4 classes, told apart by which quadrant of the image is bright: learnable in a few epochs."""
    import torch

    from kdlib.data.splits import ImageSplits

    g = torch.Generator().manual_seed(seed)
    half = size // 2

    def make(n):
        y = torch.randint(0, 4, (n,), generator=g)
        x = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.uint8)
        for q in range(4):
            r, c = divmod(q, 2)
            x[y == q, :, half * r:half * r + half, half * c:half * c + half] += 150
        return x, y

    return ImageSplits("tiny", "generated", *make(n_train), *make(n_val), *make(n_test), classes=list("abcd"))


def run_kdlib(*args: str, timeout: int = 900):
    """`python -m kdlib ...` in a subprocess, as a user runs it."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "kdlib", *args], capture_output=True, text=True, timeout=timeout)
