"""Find dataset files under any mount layout (``/kaggle/input/<slug>/`` and
``/kaggle/input/datasets/<owner>/<slug>/``, nested folders, an explicit directory)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Callable

from .. import runtime
from .splits import DataNotFoundError

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


def locate(name: str, find: Callable[[Path], dict | None], data_dir: str | Path | None,
           download: Callable[[Path], None] | None, cache_name: str, help_text: str) -> dict:
    """Find a dataset: in data_dir if given; else under the input root (/kaggle/input); else in kdlib's cache,
    downloading into it when ``download`` is given and the network allows. Otherwise a DataNotFoundError
    that says what was searched and what to attach or pass."""
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.exists():
            raise DataNotFoundError(f"DATA_DIR {str(data_dir)!r} does not exist. {help_text}")
        files = find(data_dir)
        if files is None:
            raise DataNotFoundError(f"no complete copy of {name} in {str(data_dir)!r}. {help_text}")
        return files
    searched = [runtime.input_root()]
    files = find(runtime.input_root())
    if files is None and download is not None:
        cache = Path.home() / ".cache" / "kdlib" / cache_name
        searched.append(cache)
        files = find(cache)
        if files is None:
            previous = socket.getdefaulttimeout()
            socket.setdefaulttimeout(30)
            try:
                download(cache)
                files = find(cache)
            except Exception:  # no network, a firewall, a mirror down: all mean "not available here"
                files = None
            finally:
                socket.setdefaulttimeout(previous)
    if files is None:
        raise DataNotFoundError(f"{help_text} Searched: {', '.join(map(str, searched))}.")
    return files
