"""Where kdlib's own files are: the notebooks and Kaggle kernel folders, and the data manifests.

The notebooks (``notebooks/``) and kernel folders (``kaggle_kernels/``) live at the repository's root, where the
badges open them; ``kdlib/notebooks`` and ``kdlib/kaggle_kernels`` are links to them, which the wheel turns into
copies (package data). So a clone (editable install or not) reads the root folders, and a pip-installed kdlib
reads the copies inside the package.

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


def shipped_dir(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The folder ``name`` (notebooks, kaggle_kernels): the clone's at the repository's root where kdlib runs from a
    clone, else the copy installed inside the package. A clone is told by its pyproject.toml beside the package:
    site-packages has none, though another distribution may have put a folder of that name there."""
    root = package_dir.parent
    clone = root / name
    if (root / "pyproject.toml").is_file() and clone.is_dir():
        return clone
    return package_dir / name


NOTEBOOK_DIR = shipped_dir("notebooks")
KERNELS_DIR = shipped_dir("kaggle_kernels")
MANIFEST_DIR = PACKAGE_DIR / "data" / "manifests"
MANIFESTS = ("cifar10", "imagenet100", "mnist")  # data_manifests/<name>.json


def manifest_path(name: str) -> Path:
    if name not in MANIFESTS:
        raise ValueError(f"no manifest {name!r}; the manifests are {', '.join(MANIFESTS)}")
    return MANIFEST_DIR / f"{name}.json"


def read_manifest(name: str) -> dict:
    """The data set's manifest (``data_manifests/<name>.json``)."""
    return json.loads(manifest_path(name).read_text())
