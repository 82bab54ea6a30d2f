"""CIFAR-10 from its python pickles (``cifar-10-batches-py/``), found under any mount layout or downloaded."""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ..paths import read_manifest
from .discovery import DataSource, dataset_folder, find_local, locate, locate_source, match_roles
from .splits import CorruptDataError, ImageSplits, carve_validation

_MANIFEST = read_manifest("cifar10")
CLASSES = list(_MANIFEST["classes"])
# md5 of each file of images (the batches a run needs), as torchvision's CIFAR10 class verifies them.
MD5 = {f["name"]: f["md5"] for f in _MANIFEST["files"] if "images" in f}
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
N_VAL_FULL = 5000
HELP = (
    "CIFAR-10 was not found. On Kaggle: 'Add Input' > Datasets > 'pankrzysiu/cifar10-python'. Elsewhere: pass "
    "DATA_DIR (notebook) or --data (CLI) pointing at a folder containing cifar-10-batches-py/ (data_batch_1..5 "
    "and test_batch), or run with internet access so torchvision can download it. For an offline try-out use "
    "PRESET='demo'."
)


class _NotArrays(pickle.UnpicklingError):
    pass


class _ArraysOnly(pickle.Unpickler):
    """CIFAR's pickles hold a dict of numpy arrays, lists and strings; nothing else may be constructed
    (a plain pickle.load of a file from elsewhere can run arbitrary code)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _NotArrays(f"it holds objects other than arrays ({module}.{name})")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and (N,) labels from one pickled batch, checked."""
    try:
        with open(path, "rb") as f:
            entry = _ArraysOnly(f, encoding="latin1").load()
    except _NotArrays as exc:
        raise CorruptDataError(f"{path}: {exc}. It was not loaded: a CIFAR-10 batch holds only arrays, lists and "
                               "strings, and a pickle that builds other objects can run code. Re-download the "
                               "dataset from a source you trust.") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise CorruptDataError(f"{path}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc}). "
                               "The file is truncated or corrupt: re-download it or re-attach the dataset.") from exc
    if not isinstance(entry, dict):
        raise CorruptDataError(f"{path}: expected a dict with 'data' and 'labels', got {type(entry).__name__}")
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data, labels = entry.get("data"), entry.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise CorruptDataError(f"{path}: missing 'data' array or 'labels'")
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise CorruptDataError(f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels; "
                               "expected uint8 (N, 3072) and N labels")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise CorruptDataError(f"{path}: labels out of range 0-9")
    return data.reshape(-1, 3, 32, 32), labels


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_cifar10(root: str | Path) -> dict[str, Path] | None:
    """{file name: path} of one complete cifar-10-batches-py set below root, or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    groups = match_roles(root, {name: re.compile(re.escape(name)) for name in MD5})
    complete = [(key, roles) for key, roles in groups.items() if all(n in roles for n in MD5)]
    if not complete:
        return None
    key, roles = sorted(complete, key=lambda kv: kv[0])[0]
    # within one dataset, the files of one folder
    folder = sorted({p.parent for p in roles["data_batch_1"]}, key=lambda p: (len(p.parts), str(p)))[0]
    files = {name: folder / name for name in MD5}
    return files if all(p.exists() for p in files.values()) else None


def _download(cache: Path) -> None:
    import torchvision

    torchvision.datasets.CIFAR10(cache, train=True, download=True)


def locate_cifar10(data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Find CIFAR-10: in data_dir if given, else under the input root (/kaggle/input), else download."""
    return locate("CIFAR-10", find_cifar10, data_dir, _download if download else None, "cifar10", HELP)


def cifar10_source(data_dir: str | Path | None = None, download: bool = True,
                   local_only: bool = False) -> DataSource | None:
    """Which CIFAR-10 copy a run uses and why. ``local_only``: only DATA_DIR or the input root, never the cache or
    a download; None when it is in neither."""
    if local_only:
        found = find_local("CIFAR-10", find_cifar10, data_dir, HELP)
        if found is None:
            return None
    else:
        found = locate_source("CIFAR-10", find_cifar10, data_dir, _download if download else None, "cifar10", HELP)
    files, folder, reason = found
    return DataSource("CIFAR-10", files, str(dataset_folder(files["test_batch"], folder)), reason)


def load_cifar10(data_dir: str | Path | None = None, n_val: int | None = None, seed: int = 0,
                 download: bool = True, verify_md5: bool = True, files: dict | None = None) -> ImageSplits:
    """CIFAR-10 as train / validation (carved from train by a seeded permutation) / test. ``files``: from
    cifar10_source (else located here)."""
    files = files if files is not None else locate_cifar10(data_dir, download)
    if verify_md5:
        wrong = [name for name, path in files.items() if md5(path) != MD5[name]]
        if wrong:
            warnings.warn(f"CIFAR-10 files {wrong} in {files['test_batch'].parent} differ from the official "
                          "checksums (data_manifests/cifar10.json); their structure checks passed, so they are used.")
    train = [read_batch(files[name]) for name in TRAIN_FILES]
    test_x, test_y = read_batch(files["test_batch"])
    x = torch.from_numpy(np.concatenate([t[0] for t in train]))
    y = torch.from_numpy(np.concatenate([t[1] for t in train]))
    n_val = n_val or (N_VAL_FULL if len(y) >= 50_000 else max(1, len(y) // 10))
    train_x, train_y, val_x, val_y = carve_validation(x, y, n_val, seed)
    return ImageSplits("CIFAR-10", str(files["test_batch"].parent), train_x, train_y, val_x, val_y,
                       torch.from_numpy(np.ascontiguousarray(test_x)), torch.from_numpy(test_y), classes=list(CLASSES))
