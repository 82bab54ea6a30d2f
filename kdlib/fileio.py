"""Atomic file writes: a crash, a kill or a full disk never leaves half a file where a good one was.

Each write goes to a temporary file in the same folder, then is renamed over the target. On failure the
temporary file is removed and the error names the path (and, for a full disk, says so).

A run's out folder is claimed (``claim_folder``: a marker file with a token only this process knows). A write below a
claimed folder whose marker is gone or another's, or a resume that finds a file this process wrote missing
(``check_kept``), is a ``FolderVanishedError``: a folder deleted or replaced mid-run stops the run, instead of being
recreated empty and trained again from scratch, with its epochs counted twice.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Callable


class WriteError(OSError):
    """A file could not be written; the message names it. The previous version of the file is untouched."""


class FolderVanishedError(WriteError):
    """A claimed out folder, or a file this process wrote below it, vanished or was replaced mid-run."""


CLAIM_MARKER = ".kdlib-claim"
_claims: dict[Path, str] = {}  # claimed folder (resolved) -> its token
_written: set[Path] = set()  # files written below a claimed folder by this process


def claim_folder(folder: str | Path) -> Path:
    """Mark ``folder`` as this run's: from now on every atomic write below it first checks the mark is still there."""
    import uuid

    folder = Path(folder).resolve()
    token = uuid.uuid4().hex
    _claims.pop(folder, None)  # the marker itself is written unchecked
    atomic_write_text(token, folder / CLAIM_MARKER)
    _claims[folder] = token
    _written.difference_update({p for p in _written if p.is_relative_to(folder)})
    return folder


def _claim_of(path: Path) -> Path | None:
    path = Path(path).resolve()
    roots = [root for root in _claims if path.is_relative_to(root)]
    return max(roots, key=lambda r: len(r.parts)) if roots else None


def _vanished(root: Path, what: str) -> FolderVanishedError:
    return FolderVanishedError(errno.ENOENT, f"{what}: the out folder {root} was deleted or replaced (or claimed by "
                               "another run) while this run was writing to it. Stopped here, so that nothing is "
                               "trained again from scratch or counted twice. Run again (from the top) to start over, "
                               "one run per folder.")


def check_claimed(path: str | Path) -> None:
    """``FolderVanishedError`` when ``path`` lies below a claimed folder whose marker is gone or another run's."""
    root = _claim_of(path)
    if root is None:
        return
    try:
        token = (root / CLAIM_MARKER).read_text()
    except OSError:
        token = None
    if token != _claims[root]:
        raise _vanished(root, f"cannot write {path}")


def check_kept(path: str | Path) -> None:
    """``FolderVanishedError`` when this process wrote ``path`` (below a claimed folder) and it is gone now."""
    path = Path(path)
    check_claimed(path)
    if path.resolve() in _written and not path.exists():
        raise _vanished(_claim_of(path), f"{path}, written by this run, is gone")


def _atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    check_claimed(path)
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
    if _claim_of(path) is not None:
        _written.add(path.resolve())
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
