"""CIFAR-10 from its python pickles (``cifar-10-batches-py/``) or as image folders (``train/<class>/*.png|jpg``,
optionally ``test/<class>/...``, as Kaggle also hosts it), found under any mount layout or downloaded (pickles).

Where both layouts are present the pickles win (they are the official pixels). An image tree is decoded once into
memory; unreadable files are skipped and counted. Without a ``test/`` folder a seeded, stratified test split is
carved from ``train/``, and the data's notes (``results.json``'s ``dataset.notes``) say so.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..paths import read_manifest
from .discovery import DataSource, dataset_folder, find_local, locate, locate_source, match_roles
from .splits import (CorruptDataError, ImageSplits, carve_stratified, carve_validation, check_labels,
                     note_duplicates)

_MANIFEST = read_manifest("cifar10")
CLASSES = list(_MANIFEST["classes"])
# md5 of each file of images (the batches a run needs), as torchvision's CIFAR10 class verifies them.
MD5 = {f["name"]: f["md5"] for f in _MANIFEST["files"] if "images" in f}
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
N_VAL_FULL = 5000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SIZE = 32
TEST_FRACTION = 1 / 6  # carved when there is no test/ folder: CIFAR-10's own 10,000 of 60,000
MAX_TREE_DEPTH = 5
HELP = (
    "CIFAR-10 was not found. On Kaggle: 'Add Input' > Datasets > 'pankrzysiu/cifar10-python'. Elsewhere: pass "
    "DATA_DIR (notebook) or --data (CLI) pointing at a folder containing cifar-10-batches-py/ (data_batch_1..5 "
    "and test_batch) or image folders train/<class>/*.png|jpg (test/<class>/ optional; the ten CIFAR-10 class "
    "names), or run with internet access so torchvision can download it. For an offline try-out use PRESET='demo'."
)


class _NotArrays(pickle.UnpicklingError):
    pass


class _ArraysOnly(pickle.Unpickler):
    """CIFAR's pickles hold a dict of numpy arrays, lists and strings; nothing else may be constructed
    (a plain pickle.load of a file from elsewhere can run arbitrary code). What builds an array differs by protocol
    and numpy version, so each way is allowed: _reconstruct and ndarray (protocols 0-4; an empty array adds bytes),
    _frombuffer (protocol 5), bytes and bytearray for their buffers, _codecs.encode for bytes under protocols 0-2."""

    ALLOWED = {(numpy_module, name) for numpy_module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct",)}
    ALLOWED |= {(numpy_module, "_frombuffer") for numpy_module in ("numpy.core.numeric", "numpy._core.numeric")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
    ALLOWED |= {(builtins, name) for builtins in ("builtins", "__builtin__") for name in ("bytes", "bytearray")}

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
    if len(data) == 0:
        raise CorruptDataError(f"{path}: holds no images ('data' is empty): re-download it or re-attach the dataset")
    labels = check_labels(labels, len(CLASSES), path)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise CorruptDataError(f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels; "
                               "expected uint8 (N, 3072) and N labels")
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


@dataclass
class CifarImageTree:
    """CIFAR-10 as image folders: each file's path and label (the official class order), per split."""

    root: Path
    train: list[tuple[str, int]]
    test: list[tuple[str, int]] | None  # None: no labelled test/ folder (a test split is carved from train)
    notes: list[str] = field(default_factory=list)  # what the folders hold beside the classes (extra folders, ...)

    @property
    def formats(self) -> str:
        suffixes = {Path(p).suffix.lower() for p, _ in self.train + (self.test or [])}
        return "+".join(sorted({"JPEG" if s in (".jpg", ".jpeg") else "PNG" for s in suffixes}))


def _subfolders(folder: Path) -> dict[str, Path]:
    """{lower-cased name: folder} of ``folder``'s visible sub-folders (none when it cannot be listed)."""
    try:
        return {p.name.lower(): p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    except OSError:
        return {}


def _image_names(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_SUFFIXES))


def _split_classes(root: Path, split: str, notes: list[str]) -> dict[int, Path]:
    """{label: folder} of ``root/split``, which holds a folder for every class (names in any case). A missing or empty
    class is a CorruptDataError naming it; a folder that is not a class is named in ``notes``."""
    found = _subfolders(root / split)
    missing = [name for name in CLASSES if name not in found]
    if missing:
        raise CorruptDataError(f"{root / split} has no folder for the CIFAR-10 class(es) {', '.join(missing)} (it has "
                               f"{', '.join(sorted(set(found) & set(CLASSES))) or 'none of them'}): add them"
                               + (", or remove test/ to have a test split carved from train/" if split == "test" else ""))
    empty = [name for name in CLASSES if not _image_names(found[name])]
    if empty:
        raise CorruptDataError(f"{root / split}: the class folder(s) {', '.join(empty)} hold no {'/'.join(IMAGE_SUFFIXES)} "
                               "images: a class without images cannot be learned or tested")
    extra = sorted(set(found) - set(CLASSES))
    if extra:
        notes.append(f"{split}/ holds folder(s) that are not CIFAR-10 classes, not used: {', '.join(extra)}")
    return {label: found[name] for label, name in enumerate(CLASSES)}


def _image_files(folders: dict[int, Path]) -> list[tuple[str, int]]:
    return [(str(folder / name), label) for label, folder in folders.items() for name in _image_names(folder)]


def _is_tree(folder: Path) -> bool:
    """Whether ``folder`` holds train/ with a folder for each of the ten classes: where a CIFAR-10 tree is."""
    return all(name in _subfolders(folder / "train") for name in CLASSES) if (folder / "train").is_dir() else False


def index_image_tree(folder: str | Path) -> CifarImageTree | None:
    """The image tree rooted at ``folder`` (``train/<class>/``, optional ``test/<class>/``), or None when ``folder``
    holds no train/ with the ten class folders. Class folders are compared between train/, test/ and the manifest's
    classes: one missing or empty is a CorruptDataError naming it, an extra one is a note."""
    folder = Path(folder)
    subfolders = _subfolders(folder)
    if "train" not in subfolders or not _is_tree(folder):
        return None
    root, notes = subfolders["train"].parent, []
    train = _image_files(_split_classes(root, subfolders["train"].name, notes))
    test = None
    if "test" in subfolders:
        test_folder = subfolders["test"]
        if set(_subfolders(test_folder)) & set(CLASSES):
            test = _image_files(_split_classes(root, test_folder.name, notes))
        else:
            notes.append(f"{test_folder.name}/ holds no CIFAR-10 class folders (unlabelled images?): not used")
    return CifarImageTree(folder, train, test, notes)


def explain_missing(root: str | Path) -> str | None:
    """Why no complete CIFAR-10 was found below ``root``, when there is a near miss: a cifar-10-batches-py folder that
    lacks batches, or a train/ that lacks class folders. None when nothing there looks like CIFAR-10."""
    root = Path(root)
    if not root.is_dir():
        return None
    groups = match_roles(root, {name: re.compile(re.escape(name)) for name in MD5})
    if groups:
        roles = groups[min(groups)]
        return f"{next(iter(roles.values()))[0].parent} lacks {', '.join(n for n in MD5 if n not in roles)}"
    frontier = [root]
    for _ in range(MAX_TREE_DEPTH):
        next_level = []
        for folder in frontier:
            found = set(_subfolders(folder / "train")) & set(CLASSES)
            if found:
                missing = [name for name in CLASSES if name not in found]
                return f"{folder / 'train'} has no folder for the CIFAR-10 class(es) {', '.join(missing)}"
            next_level += sorted(p for name, p in _subfolders(folder).items() if name not in CLASSES)
        frontier = next_level
    return None


def find_cifar10_images(root: str | Path) -> CifarImageTree | None:
    """The first CIFAR-10 image tree at or below ``root`` (shallow folders first)."""
    root = Path(root)
    frontier = [root] if root.is_dir() else []
    for _ in range(MAX_TREE_DEPTH):
        next_level = []
        for folder in frontier:
            tree = index_image_tree(folder)
            if tree is not None:
                return tree
            next_level += sorted(p for name, p in _subfolders(folder).items() if name not in CLASSES)
        frontier = next_level
    return None


def find_cifar10_any(root: str | Path) -> dict[str, Path] | CifarImageTree | None:
    """The pickles below root (the official pixels) if there, else an image tree, else None."""
    return find_cifar10(root) or find_cifar10_images(root)


def decode_images(paths: list[str], size: int = IMAGE_SIZE) -> tuple[torch.Tensor, np.ndarray, int]:
    """(N, 3, size, size) uint8 of the readable files, a bool mask of which were readable, and how many were
    resized from another size. Each file is decoded once, by PIL, in this thread: on 32x32 files a decode is
    too short for a thread pool to gain (measured slower with 2 threads); 30,000 JPEGs take about 6 s."""
    from PIL import Image

    from .pixels import to_rgb

    images, ok, resized = [], np.zeros(len(paths), dtype=bool), 0
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image = to_rgb(image)  # 16-bit scaled, not clipped
                if image.size != (size, size):
                    image = image.resize((size, size), Image.BILINEAR)
                    resized += 1
                images.append(np.asarray(image, dtype=np.uint8))
        except Exception:  # truncated, not an image, unreadable: skipped and counted by the caller
            continue
        ok[i] = True
    if not images:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), ok, resized
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), ok, resized


def _decode_split(items: list[tuple[str, int]], root: Path, split: str, notes: list[str]):
    paths = [p for p, _ in items]
    x, ok, resized = decode_images(paths)
    y = torch.tensor([label for (_, label), good in zip(items, ok) if good], dtype=torch.int64)
    bad = [os.path.relpath(p, root) for p, good in zip(paths, ok) if not good]
    if bad:
        line = (f"{len(bad)} of {len(paths)} {split} image files could not be decoded and were skipped "
                f"(e.g. {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
        warnings.warn(f"CIFAR-10 in {root}: {line}", stacklevel=3)
        notes.append(line)
    if resized:
        notes.append(f"{resized} {split} images were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized to it")
    if len(y) == 0:
        raise CorruptDataError(f"{root}: none of the {len(paths)} {split} image files could be decoded")
    return x, y


def load_cifar10_images(tree: CifarImageTree, n_val: int | None = None, seed: int = 0,
                        test_fraction: float = TEST_FRACTION) -> ImageSplits:
    """CIFAR-10 image folders as train / validation / test, every image decoded once. Without test/, a
    stratified ``test_fraction`` of each class is carved from train (seeded) and the notes say so; the
    validation part is then carved from the rest, as for the pickles."""
    notes = list(tree.notes)
    x, y = _decode_split(tree.train, tree.root, "train", notes)
    if tree.test is not None:
        test_x, test_y = _decode_split(tree.test, tree.root, "test", notes)
    else:
        x, y, test_x, test_y = carve_stratified(x, y, test_fraction, seed, what=f"{tree.root}/train")
        notes.append(f"no labelled test/ folder: the test split is {len(test_y):,} images carved from train/ "
                     f"({test_fraction:.3g} of each class, seed {seed}), not the official CIFAR-10 test set")
    n_val = n_val or (N_VAL_FULL if len(y) >= 50_000 else max(1, len(y) // 10))
    train_x, train_y, val_x, val_y = carve_validation(x, y, n_val, seed)
    return note_duplicates(ImageSplits(f"CIFAR-10 ({tree.formats} image folders)", str(tree.root), train_x, train_y,
                                       val_x, val_y, test_x, test_y, classes=list(CLASSES), notes=notes))


def _download(cache: Path) -> None:
    import torchvision

    torchvision.datasets.CIFAR10(cache, train=True, download=True)


def locate_cifar10(data_dir: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    """Find CIFAR-10: in data_dir if given, else under the input root (/kaggle/input), else download."""
    return locate("CIFAR-10", find_cifar10_any, data_dir, _download if download else None, "cifar10", HELP,
                  explain_missing)


def cifar10_source(data_dir: str | Path | None = None, download: bool = True,
                   local_only: bool = False) -> DataSource | None:
    """Which CIFAR-10 copy a run uses and why: the pickles (``files``: {name: path}) or an image tree
    (``files``: a ``CifarImageTree``). ``local_only``: only DATA_DIR or the input root, never the cache or a
    download; None when it is in neither."""
    if local_only:
        found = find_local("CIFAR-10", find_cifar10_any, data_dir, HELP, explain_missing)
        if found is None:
            return None
    else:
        found = locate_source("CIFAR-10", find_cifar10_any, data_dir, _download if download else None, "cifar10", HELP,
                              explain_missing)
    files, folder, reason = found
    if isinstance(files, CifarImageTree):
        return DataSource(f"CIFAR-10 ({files.formats} image folders)", files,
                          str(dataset_folder(files.root / "train", folder)), reason)
    return DataSource("CIFAR-10", files, str(dataset_folder(files["test_batch"], folder)), reason)


def load_cifar10(data_dir: str | Path | None = None, n_val: int | None = None, seed: int = 0,
                 download: bool = True, verify_md5: bool = True, files: dict | None = None) -> ImageSplits:
    """CIFAR-10 as train / validation (carved from train by a seeded permutation) / test. ``files``: from
    cifar10_source (else located here): the pickles, or an image tree (``load_cifar10_images``)."""
    files = files if files is not None else locate_cifar10(data_dir, download)
    if isinstance(files, CifarImageTree):
        return load_cifar10_images(files, n_val, seed)
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
    return note_duplicates(ImageSplits("CIFAR-10", str(files["test_batch"].parent), train_x, train_y, val_x, val_y,
                                       torch.from_numpy(np.ascontiguousarray(test_x)), torch.from_numpy(test_y),
                                       classes=list(CLASSES)))
