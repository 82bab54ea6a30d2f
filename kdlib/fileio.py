"""Atomic file writes: a crash, a kill or a full disk never leaves half a file where a good one was.

Each write goes to a temporary file in the same folder, then is renamed over the target. On failure the
temporary file is removed and the error names the path (and, for a full disk, says so).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Callable


class WriteError(OSError):
    """A file could not be written; the message names it. The previous version of the file is untouched."""


def _atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(exc.errno, f"cannot create the folder {path.parent}: {exc.strerror or exc}") from exc
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError) or (isinstance(exc, RuntimeError) and "write" in str(exc).lower()):
            code = getattr(exc, "errno", None)
            if code == errno.ENOSPC or "No space left" in str(exc):
                raise WriteError(errno.ENOSPC, f"cannot write {path}: the disk is full (no space left on the device "
                                 f"holding {path.parent}); free some space and run again: the last good files are kept"
                                 ) from exc
            raise WriteError(code or errno.EIO, f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc
        raise
    return path


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    return _atomic(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(text: str, path: str | Path) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(obj, path: str | Path) -> Path:
    text = json.dumps(obj, indent=2)  # serialise first: a TypeError leaves no temporary file at all
    return atomic_write_text(text, path)


def atomic_save(obj, path: str | Path) -> Path:
    """``torch.save`` through a temporary file."""
    import torch

    return _atomic(path, lambda tmp: torch.save(obj, tmp))
