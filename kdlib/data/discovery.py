"""Find dataset files under any mount layout (``/kaggle/input/<slug>/`` and
``/kaggle/input/datasets/<owner>/<slug>/``, nested folders, an explicit directory)."""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_DEPTH = 7
MAX_FILES = 200_000  # a bound on the walk, in case someone points us at '/'


def walk_files(root: Path, max_depth: int = MAX_DEPTH):
    """Yield every file below root (following links), shallow folders first, sorted for stability."""
    root = Path(root)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames.sort()
        if depth >= max_depth:
            dirnames.clear()
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_FILES:
                return
            yield Path(dirpath) / name


def dataset_key(root: Path, path: Path) -> tuple[str, ...]:
    """The attached dataset a file belongs to: ('<slug>',), ('datasets', owner, slug) or
    ('competitions', slug); files directly in root belong to (). A file inside a folder of its own name
    (as some MNIST mirrors ship it) belongs where that folder is."""
    parts = path.relative_to(root).parts[:-1]
    if parts and parts[-1] == path.name:
        parts = parts[:-1]
    if parts and parts[0] == "datasets" and len(parts) >= 3:
        return parts[:3]
    if parts and parts[0] == "competitions" and len(parts) >= 2:
        return parts[:2]
    return parts[:1]


def match_roles(root: Path, patterns: dict[str, re.Pattern]) -> dict[tuple[str, ...], dict[str, list[Path]]]:
    """Group files matching each role's pattern (on the lower-cased file name) by attached dataset."""
    groups: dict[tuple[str, ...], dict[str, list[Path]]] = {}
    for path in walk_files(root):
        name = path.name.lower()
        for role, pattern in patterns.items():
            if pattern.fullmatch(name):
                groups.setdefault(dataset_key(root, path), {}).setdefault(role, []).append(path)
    return groups
