"""Where kdlib's own files are: the repository's notebooks and Kaggle kernel folders (present in a clone).

Nothing here imports the rest of kdlib, so any module may import it.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPOSITORY_DIR = PACKAGE_DIR.parent
NOTEBOOK_DIR = REPOSITORY_DIR / "notebooks"
KERNELS_DIR = REPOSITORY_DIR / "kaggle_kernels"
