"""MNIST from wherever it is (IDX or CSV, any Kaggle mount layout, a download), and the embedded
scikit-learn digits for the offline ``demo`` preset."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..paths import read_manifest
from .discovery import DataSource, dataset_folder, find_local, locate, locate_source, match_roles
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .splits import CorruptDataError, ImageSplits, carve_validation, check_labels, note_duplicates

CLASSES = list(read_manifest("mnist")["classes"])
N_VAL_FULL = 5000
_SEP = r"[-_.]"
# hojjatk/mnist-dataset says train-images.idx3-ubyte, torchvision train-images-idx3-ubyte[.gz].
_IDX_ROLES = {
    f"{split}_{kind}": re.compile(rf"{prefix}{_SEP}{kind}{_SEP}{code}{_SEP}ubyte(\.gz)?")
    for split, prefix in (("train", "train"), ("test", "(?:t10k|test)"))
    for kind, code in (("images", "idx3"), ("labels", "idx1"))
}
# A single unsplit pair (for example a sample of the test set): images-idx3-ubyte.gz + labels-idx1-ubyte.gz.
_SINGLE_ROLES = {
    "images": re.compile(rf"images{_SEP}idx3{_SEP}ubyte(\.gz)?"),
    "labels": re.compile(rf"labels{_SEP}idx1{_SEP}ubyte(\.gz)?"),
}
_CSV_ROLES = {"train_csv": re.compile(r"mnist_train\.csv"), "test_csv": re.compile(r"mnist_test\.csv")}

HELP = (
    "MNIST was not found. On Kaggle: 'Add Input' > Datasets > 'hojjatk/mnist-dataset' (IDX files) or "
    "'oddrationale/mnist-in-csv' (CSV). Elsewhere: pass DATA_DIR (notebook) or --data (CLI) pointing at a folder "
    "holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and "
    "t10k-labels-idx1-ubyte[.gz] (or mnist_train.csv / mnist_test.csv), or run with internet access so "
    "torchvision can download it. For an offline try-out use PRESET='demo' (the embedded scikit-learn digits)."
)


def _pick(paths: list[Path]) -> Path:
    # Prefer the shallowest path, then the uncompressed file (no need to decompress twice).
    return sorted(paths, key=lambda p: (len(p.parts), p.suffix == ".gz", str(p)))[0]


def _rank(key: tuple[str, ...]) -> tuple:
    # Fashion-MNIST ships files with the same names; never take it for MNIST when MNIST is there.
    return ("fashion" in "/".join(key).lower(), key)


def _complete_sets(groups: dict) -> list[tuple[tuple, dict]]:
    found = []
    for key, roles in groups.items():
        if all(r in roles for r in _IDX_ROLES):
            found.append((_rank(key) + (0,), {"format": "idx", **{r: _pick(roles[r]) for r in _IDX_ROLES}}))
        elif all(r in roles for r in _CSV_ROLES):
            found.append((_rank(key) + (1,), {"format": "csv", **{r: _pick(roles[r]) for r in _CSV_ROLES}}))
        elif all(r in roles for r in _SINGLE_ROLES):
            found.append((_rank(key) + (2,), {"format": "idx-single", **{r: _pick(roles[r]) for r in _SINGLE_ROLES}}))
    return sorted(found, key=lambda item: item[0])


def find_mnist_files(root: str | Path) -> dict[str, Path] | None:
    """The files of one complete MNIST copy below root, as {role: path} with a 'format' entry, or None.

    Files are grouped by attached dataset (the Kaggle mount layouts), so two datasets' files are never mixed.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    groups = match_roles(root, {**_IDX_ROLES, **_CSV_ROLES, **_SINGLE_ROLES})
    found = _complete_sets(groups)
    if not found:
        return None
    files = found[0][1]
    rivals = [f for rank, f in found[1:] if not rank[0]]  # other copies that are not Fashion-MNIST
    if rivals:
        def where(f: dict) -> str:
            return f"{f['format']} files in {next(p for k, p in f.items() if k != 'format').parent}"
        others = "; ".join(where(f) for f in rivals)
        files["note"] = (f"{len(rivals) + 1} complete MNIST copies found below {root}: using {where(files)} (order: not "
                         f"Fashion-MNIST, then the shallowest folder, then IDX before CSV before one unsplit pair); "
                         f"not used: {others}. Set DATA_DIR to the folder you mean to use another.")
        warnings.warn(files["note"], stacklevel=2)
    return files


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """oddrationale/mnist-in-csv: a header row, then 'label' and 784 pixel columns per row."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CorruptDataError(f"{path}: not a readable MNIST CSV ({exc})") from exc
    for column in frame.columns:  # a fractional label would be truncated into another class
        values = frame[column]
        bad = values[values.isna() | (values != values.round())] if not pd.api.types.is_integer_dtype(values) else []
        if len(bad):
            example = "a missing value" if pd.isna(bad.iloc[0]) else f"{float(bad.iloc[0]):g}"
            raise CorruptDataError(f"{path}: column {column!r} holds {example} (row {bad.index[0] + 1}): labels (0-9) "
                                   "and pixels (0-255) are whole numbers")
    frame = frame.astype(np.int64)
    if frame.shape[1] != 785 or frame.columns[0].strip().lower() != "label":
        raise CorruptDataError(f"{path}: expected a 'label' column and 784 pixel columns, got {frame.shape[1]} columns")
    values = frame.to_numpy()
    if values.min() < 0 or values[:, 1:].max() > 255 or values[:, 0].max() > 9:
        raise CorruptDataError(f"{path}: values out of range (labels 0-9, pixels 0-255 expected)")
    return values[:, 1:].astype(np.uint8).reshape(-1, 28, 28), values[:, 0]


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise CorruptDataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(images) == 0:
        raise CorruptDataError(f"{images_path} holds no images (its header says 0): re-download it or re-attach the dataset")
    if images.shape[1:] != (28, 28):
        raise CorruptDataError(f"{images_path}: images are {images.shape[1:]}, MNIST's are 28x28")
    return images, check_labels(labels, len(CLASSES), labels_path)


def _tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.array(images, copy=True)).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def _download(cache: Path) -> None:
    import torchvision

    torchvision.datasets.MNIST(cache, train=True, download=True)
    torchvision.datasets.MNIST(cache, train=False, download=True)


def locate_mnist(data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Find MNIST: in data_dir if given, else under the input root (/kaggle/input), else download."""
    return locate("MNIST", find_mnist_files, data_dir, _download if download else None, "mnist", HELP)


def mnist_source(data_dir: str | Path | None = None, download: bool = True,
                 local_only: bool = False) -> DataSource | None:
    """Which MNIST copy a run uses and why. ``local_only``: only DATA_DIR or the input root, never the cache or a
    download; None when it is in neither."""
    if local_only:
        found = find_local("MNIST", find_mnist_files, data_dir, HELP)
        if found is None:
            return None
    else:
        found = locate_source("MNIST", find_mnist_files, data_dir, _download if download else None, "mnist", HELP)
    files, folder, reason = found
    path = next(v for k, v in files.items() if k != "format")
    return DataSource(f"MNIST ({files['format']})", files, str(dataset_folder(path, folder)), reason)


def load_mnist(data_dir: str | Path | None = None, n_val: int | None = None, seed: int = 0,
               download: bool = True, files: dict | None = None) -> ImageSplits:
    """MNIST as train / validation / test.

    The validation split is carved from train by a seeded permutation (5,000 images for the full set);
    the official test split is left untouched. A single unsplit IDX pair is split 80/20 into
    train/test first, then validation is carved from that train part (10% unless n_val is given).
    """
    files = files if files is not None else locate_mnist(data_dir, download)  # files: from mnist_source
    fmt = files["format"]
    notes = [files["note"]] if "note" in files else []
    if fmt == "idx":
        train = _read_pair(files["train_images"], files["train_labels"])
        test = _read_pair(files["test_images"], files["test_labels"])
        source = str(files["train_images"].parent)
    elif fmt == "csv":
        train, test = read_mnist_csv(files["train_csv"]), read_mnist_csv(files["test_csv"])
        source = str(files["train_csv"].parent)
    else:
        images, labels = _read_pair(files["images"], files["labels"])
        x, y = _tensors(images, labels)
        n_test = len(y) // 5
        train_x, train_y, test_x, test_y = carve_validation(x, y, n_test, seed=10_000 + seed)
        n_val = n_val or max(1, len(train_y) // 10)
        train_x, train_y, val_x, val_y = carve_validation(train_x, train_y, n_val, seed)
        return note_duplicates(ImageSplits(
            f"MNIST sample ({len(y)} images from {files['images'].name}, split 80/20 train/test)",
            str(files["images"].parent), train_x, train_y, val_x, val_y, test_x, test_y, notes=notes, classes=CLASSES,
        ))
    train_x, train_y = _tensors(*train)
    test_x, test_y = _tensors(*test)
    n_val = n_val or (N_VAL_FULL if len(train_y) >= 50_000 else max(1, len(train_y) // 10))
    train_x, train_y, val_x, val_y = carve_validation(train_x, train_y, n_val, seed)
    return note_duplicates(ImageSplits(f"MNIST ({fmt})", source, train_x, train_y, val_x, val_y, test_x, test_y,
                                       notes=notes, classes=CLASSES))


DIGITS_NAME = "digits (scikit-learn's 1,797 real 8x8 digits, upsampled to 28x28; not MNIST)"


def load_digits_images(seed: int = 0, size: int = 28, digit_box: int = 20, channels: int = 1, name: str = DIGITS_NAME,
                       test_fraction: float = 0.2, val_fraction: float = 0.1) -> ImageSplits:
    """scikit-learn's embedded handwritten digits: each 8x8 image (0-16) is scaled to 0-255 and resized to
    digit_box x digit_box inside a size x size frame (MNIST centres its digits in a 20x20 box of 28x28),
    repeated over ``channels``. The split into train / validation / test is fixed by ``seed``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)
    x = F.interpolate(x, size=(digit_box, digit_box), mode="bilinear", align_corners=False)
    lo = (size - digit_box) // 2
    x = F.pad(x, (lo, size - digit_box - lo, lo, size - digit_box - lo)).round().clamp_(0, 255).to(torch.uint8)
    x = x.repeat(1, channels, 1, 1)
    y = torch.from_numpy(digits.target.astype(np.int64))
    train_x, train_y, test_x, test_y = carve_validation(x, y, int(round(len(y) * test_fraction)), seed=10_000 + seed)
    train_x, train_y, val_x, val_y = carve_validation(train_x, train_y, int(round(len(y) * val_fraction)), seed)
    return ImageSplits(name, "sklearn.datasets.load_digits", train_x, train_y, val_x, val_y, test_x, test_y)


def load_digits_28(seed: int = 0) -> ImageSplits:
    """The embedded digits shaped like MNIST (the MNIST notebook's demo data)."""
    return load_digits_images(seed)
