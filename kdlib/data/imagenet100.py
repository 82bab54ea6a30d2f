"""ImageNet-100 as JPEG folders: the Kaggle dataset ``ambityga/imagenet100`` (``train.X1``..``train.X4``,
``val.X``, ``Labels.json``) or plain ImageFolder trees (``train/<wnid>/``, ``val/<wnid>/``), found in a given
folder or anywhere under ``/kaggle/input`` (either mount layout).

Two different class lists go by the name ImageNet-100 (both in ``data_manifests/imagenet100.json``): the index
says which one the folders hold. Counts are checked against
about 1,300 train and 50 val images a class; a short class is reported, not fatal. Unreadable JPEGs are dealt
with where images are decoded (``image_store``): skipped and counted.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import read_manifest
from .discovery import DataSource, find_local, locate, locate_source
from .splits import DataNotFoundError

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
WNID = re.compile(r"n\d{8}")
MAX_DEPTH = 5
HELP = (
    "ImageNet-100 was not found. On Kaggle: 'Add Input' > Datasets > 'ambityga/imagenet100'. Elsewhere: pass "
    "DATA_DIR (notebook) or --data (CLI) pointing at a folder with train.X1..train.X4 and val.X (the Kaggle "
    "layout), or with train/<wnid>/ and val/<wnid>/ (ImageFolder). For an offline try-out use PRESET='demo'."
)


def manifest() -> dict:
    return read_manifest("imagenet100")


@dataclass
class ImageNet100Index:
    """Every image's path and class, per split, and what the folders turned out to be."""

    root: Path
    layout: str  # 'kaggle-ambityga' or 'image-folder'
    classes: list[str]  # wnids, sorted; class index = position
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    subset: str  # 'cmc', 'kaggle-ambityga', or 'unknown'
    names: dict[str, str] = field(default_factory=dict)  # wnid -> readable name, where Labels.json gives them
    problems: list[str] = field(default_factory=list)  # count checks that failed (warned, not fatal)

    def counts(self, split: str) -> dict[str, int]:
        counts = {w: 0 for w in self.classes}
        for _, label in getattr(self, split):
            counts[self.classes[label]] += 1
        return counts

    def info(self) -> dict:
        return {"name": f"ImageNet-100 ({self.subset} class list)", "source": str(self.root), "layout": self.layout,
                "subset": self.subset, "n_classes": len(self.classes), "n_train_files": len(self.train),
                "n_val_files": len(self.val), "count_problems": self.problems}


def identify_subset(wnids) -> tuple[str, dict[str, int]]:
    """Which published list the classes are ('unknown' unless all of them belong to one), and the overlap
    with each list."""
    wnids = set(wnids)
    overlap = {name: len(wnids & set(s["wnids"])) for name, s in manifest()["subsets"].items()}
    for name, s in manifest()["subsets"].items():
        if wnids == set(s["wnids"]):
            return name, overlap
    return "unknown", overlap


def _wnid_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and WNID.fullmatch(p.name)) if folder.is_dir() else []


def _class_dirs(folder: Path) -> list[Path]:
    """The wnid folders of a split folder, or of the one folder it wraps (``train/train/<wnid>/``, as some archives
    unpack)."""
    found = _wnid_dirs(folder)
    if not found and folder.is_dir():
        inner = [p for p in folder.iterdir() if p.is_dir()]
        if len(inner) == 1:
            found = _wnid_dirs(inner[0])
    return found


def _layout(folder: Path) -> tuple[str, list[Path], list[Path]] | None:
    """(layout, train folders, val folders) when ``folder`` is an ImageNet-100 root."""
    kaggle_train = sorted(p for p in folder.glob("train.X*") if p.is_dir())
    if kaggle_train and (folder / "val.X").is_dir():
        return "kaggle-ambityga", kaggle_train, [folder / "val.X"]
    if _class_dirs(folder / "train") and _class_dirs(folder / "val"):
        return "image-folder", [folder / "train"], [folder / "val"]
    return None


def _images(class_dir: Path) -> list[str]:
    """Every image file in a class folder, at any depth below it (``<wnid>/images/*.JPEG``, as Tiny ImageNet has it)."""
    return sorted(os.path.join(folder, n) for folder, _, names in os.walk(class_dir, followlinks=True)
                  for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES)


def index_folder(folder: Path, expected: dict | None = None) -> ImageNet100Index | None:
    found = _layout(folder)
    if found is None:
        return None
    layout, train_dirs, val_dirs = found
    train_classes = {d.name: d for base in train_dirs for d in _class_dirs(base)}
    classes = sorted(train_classes)
    position = {w: i for i, w in enumerate(classes)}
    train = [(path, position[d.name]) for base in train_dirs for d in _class_dirs(base) for path in _images(d)]
    val_dirs_by_class = {d.name: d for base in val_dirs for d in _class_dirs(base)}
    extra = sorted(set(val_dirs_by_class) - set(classes))
    if extra:
        raise DataNotFoundError(f"{folder}: validation classes {extra[:5]} have no training folder; is this one data set?")
    val = [(path, position[w]) for w, d in sorted(val_dirs_by_class.items()) for path in _images(d)]
    for split, items, dirs in (("train", train, train_dirs), ("val", val, val_dirs)):
        if not items:
            raise DataNotFoundError(f"{folder}: the {split} class folders in {', '.join(str(d) for d in dirs)} hold no "
                                    f"{'/'.join(sorted(IMAGE_SUFFIXES))} images at any depth")
    names = {}
    labels_file = folder / "Labels.json"
    if labels_file.exists():
        try:
            names = {k: str(v) for k, v in json.loads(labels_file.read_text()).items()}
        except (ValueError, AttributeError) as exc:
            warnings.warn(f"{labels_file} is not a JSON object of wnid -> name ({exc}); class names left out", stacklevel=2)
    subset, _ = identify_subset(classes)
    index = ImageNet100Index(folder, layout, classes, train, val, subset, names)
    index.problems = check_counts(index, expected or manifest()["expected_images_per_class"])
    for problem in index.problems:
        warnings.warn(problem, stacklevel=2)
    return index


def check_counts(index: ImageNet100Index, expected: dict, tolerance: float = 0.5) -> list[str]:
    """Classes with fewer than ``tolerance`` x the expected images, or none at all."""
    problems = []
    if len(index.classes) != 100:
        problems.append(f"{len(index.classes)} classes found, ImageNet-100 has 100")
    for split in ("train", "val"):
        short = {w: n for w, n in index.counts(split).items() if n < tolerance * expected[split]}
        if short:
            sample = ", ".join(f"{w}: {n}" for w, n in list(short.items())[:5])
            problems.append(f"{len(short)} class(es) have fewer than {tolerance:.0%} of the expected {expected[split]} "
                            f"{split} images ({sample}{', ...' if len(short) > 5 else ''})")
    return problems


def find_imagenet100(root: Path, expected: dict | None = None) -> ImageNet100Index | None:
    """The first ImageNet-100 root at or below ``root`` (shallow folders first)."""
    root = Path(root)
    if not root.is_dir():
        return None
    frontier = [root]
    for _ in range(MAX_DEPTH):
        next_level = []
        for folder in frontier:
            index = index_folder(folder, expected)
            if index is not None:
                return index
            try:
                next_level += sorted(p for p in folder.iterdir() if p.is_dir() and not WNID.fullmatch(p.name))
            except PermissionError:
                continue
        frontier = next_level
    return None


def load_imagenet100(data_dir: str | Path | None = None, expected: dict | None = None) -> ImageNet100Index:
    """Index ImageNet-100 in ``data_dir``, or under /kaggle/input; no download (it is not a public file)."""
    return locate("ImageNet-100", lambda root: find_imagenet100(root, expected), data_dir, None, "imagenet100", HELP)


def imagenet100_source(data_dir: str | Path | None = None, local_only: bool = False,
                       expected: dict | None = None) -> DataSource | None:
    """Which ImageNet-100 copy a run uses and why (indexed, not decoded). ``local_only``: None when it is neither
    in DATA_DIR nor under the input root, instead of the error (there is no download either way)."""
    def find(root):
        return find_imagenet100(root, expected)

    if local_only:
        found = find_local("ImageNet-100", find, data_dir, HELP)
        if found is None:
            return None
    else:
        found = locate_source("ImageNet-100", find, data_dir, None, "imagenet100", HELP)
    index, _, reason = found
    return DataSource(index.info()["name"], index, str(index.root), reason)
