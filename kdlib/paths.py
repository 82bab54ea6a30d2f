"""Where kdlib's own files are: the repository's notebooks and Kaggle kernel folders (present in a clone), and the
data manifests.

The manifests (each data set's sources, files, checksums and classes) are the one source of truth the loaders
read. They live in the package (``kdlib/data/manifests/``, package data), so a pip-installed kdlib and the copy a
Kaggle kernel carries read them too; ``data_manifests/`` at the repository's root, where the documentation
points, is a link to that folder.

Nothing here imports the rest of kdlib, so any module may import it.
"""

from __future__ import annotations

import json
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPOSITORY_DIR = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPOSITORY_DIR / "notebooks"
KERNELS_DIR = REPOSITORY_DIR / "kaggle_kernels"
MANIFEST_DIR = PACKAGE_DIR / "data" / "manifests"
MANIFESTS = ("cifar10", "imagenet100", "mnist")  # data_manifests/<name>.json


def manifest_path(name: str) -> Path:
    if name not in MANIFESTS:
        raise ValueError(f"no manifest {name!r}; the manifests are {', '.join(MANIFESTS)}")
    return MANIFEST_DIR / f"{name}.json"


def read_manifest(name: str) -> dict:
    """The data set's manifest (``data_manifests/<name>.json``)."""
    return json.loads(manifest_path(name).read_text())
