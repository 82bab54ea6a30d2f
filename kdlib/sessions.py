"""Resume across Kaggle sessions: find the previous version's output under ``/kaggle/input`` and bring back
what this session needs from it.

A new version of a Kaggle kernel starts with an empty ``/kaggle/working``. When the kernel lists its own
earlier version as a ``kernel_sources`` input (``python -m kdlib kaggle build NAME --resume-from OWNER/SLUG``),
that version's ``/kaggle/working`` is mounted read-only as ``/kaggle/input/<slug>/`` (older layout) or
``/kaggle/input/notebooks/<owner>/<slug>/`` (newer layout); both, and any other depth up to
``SEARCH_DEPTH``, are searched. ``restore_previous_output`` copies its run folders (``<experiment>/runs/*``,
checkpoints included) and the experiment's other state folders into this session's output folder, so the
training loop resumes them; ``restore_store`` links a previous session's decoded image stores.

Nothing newer is overwritten: a run folder is restored only when the local copy is missing or older (the
modification time of its ``record.json``/``last.pt``), and then only its files that are missing or older
locally. Copies keep the source's modification times, so calling again restores nothing twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import runtime
from .runs import RECORD_FILE, RUNS_DIR

SEARCH_DEPTH = 6  # how deep under the input root an output folder's parent may lie
KEEP_STORE_ENV = "KDLIB_KEEP_STORE"  # "1": keep the decoded image store in /kaggle/working (the version's output)
TEMP_DIR_ENV = "KDLIB_TEMP_DIR"  # stands in for /kaggle/temp
KAGGLE_TEMP = Path("/kaggle/temp")
NOT_RESTORED = {"figures"}  # redrawn by every run


@dataclass
class Restored:
    """One restored item: what, from where, to where, how ('copied' or 'linked'), how many files."""

    item: str
    source: Path
    destination: Path
    action: str
    files: int

    def __str__(self) -> str:
        return f"restored {self.item} from {self.source} ({self.files} file(s) {self.action})"


def keep_store_in_output(keep: bool | None = None) -> bool:
    """``keep`` if given, else the ``KDLIB_KEEP_STORE`` environment variable (1/true/yes)."""
    if keep is not None:
        return bool(keep)
    return os.environ.get(KEEP_STORE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def session_temp_dir() -> Path:
    """A writable folder that lasts for this session and is not part of its output: ``$KDLIB_TEMP_DIR``, else
    ``/kaggle/temp`` (Kaggle's place for temporary files), else the system's temporary folder."""
    if os.environ.get(TEMP_DIR_ENV):
        return Path(os.environ[TEMP_DIR_ENV])
    try:
        KAGGLE_TEMP.mkdir(parents=True, exist_ok=True)
        if os.access(KAGGLE_TEMP, os.W_OK):
            return KAGGLE_TEMP
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "kdlib"


def find_previous(names: set[str], accept: Callable[[Path], bool], root: Path | None = None) -> list[Path]:
    """Folders named one of ``names`` under ``root`` (the input root) that ``accept`` says are earlier output,
    shallow ones first. Not searched below a found folder, nor deeper than ``SEARCH_DEPTH``."""
    root = Path(root or runtime.input_root())
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=True):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames.sort()
        keep = []
        for name in dirnames:
            if name in names and accept(here / name):
                found.append(here / name)
            elif depth + 1 < SEARCH_DEPTH:
                keep.append(name)
        dirnames[:] = keep
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def _is_experiment_output(folder: Path) -> bool:
    return (folder / "results.json").is_file() or any(folder.glob(f"{RUNS_DIR}/*/last.pt")) or \
        any(folder.glob(f"{RUNS_DIR}/*/{RECORD_FILE}"))


def _progress_time(run: Path) -> float | None:
    """When a run folder last advanced: the newest of its record.json and last.pt, or None."""
    times = [p.stat().st_mtime for p in (run / RECORD_FILE, run / "last.pt") if p.exists()]
    return max(times) if times else None


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


def _copy_newer(source: Path, destination: Path) -> int:
    """Copy every file under ``source`` that is missing in ``destination`` or older there; returns the count."""
    count = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        target = destination / path.relative_to(source)
        if target.exists() and target.stat().st_mtime >= path.stat().st_mtime:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restore-tmp")
        shutil.copy2(path, tmp)  # keeps the modification time: a second restore sees nothing newer
        os.replace(tmp, target)
        count += 1
    return count


def restore_previous_output(experiment: str, out_dir: str | Path, root: str | Path | None = None,
                            echo: Callable[[str], None] | None = print) -> list[Restored]:
    """Bring the run folders (``runs/*``) and other state folders of an earlier version's ``<experiment>/``
    output, found under the input root, into ``out_dir``; print one line per restored item."""
    out = Path(out_dir)
    restored: list[Restored] = []
    for previous in find_previous({experiment, out.name}, _is_experiment_output, root):
        if os.path.abspath(previous) == os.path.abspath(out):
            continue
        items = [(f"{RUNS_DIR}/{run.name}", run) for run in sorted((previous / RUNS_DIR).glob("*")) if run.is_dir()]
        items += [(d.name, d) for d in sorted(previous.iterdir())
                  if d.is_dir() and d.name not in NOT_RESTORED | {RUNS_DIR}]
        for item, source in items:
            target = out / item
            if item.startswith(f"{RUNS_DIR}/"):
                theirs, ours = _progress_time(source), _progress_time(target)
                if theirs is None or (ours is not None and ours >= theirs):
                    continue  # nothing to resume from there, or this session's copy is as far or further
            count = _copy_newer(source, target)
            if count:
                restored.append(Restored(item, source, target, "copied", count))
                if echo:
                    echo(str(restored[-1]))
    return restored


def _store_meta(folder: Path) -> dict | None:
    import json

    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def restore_store(store_dir: str | Path, root: str | Path | None = None,
                  echo: Callable[[str], None] | None = print) -> list[Restored]:
    """Bring an earlier session's decoded image stores (``<store_dir name>/<store>/meta.json``, found under the
    input root) into ``store_dir``. A complete store is never written again (``image_store.build_store`` reopens
    it read-only, and starts a new file rather than writing through a link when its source changed), so its
    files are symlinked; they are copied instead where ``store_dir`` is inside the working directory (a link
    would not carry the store into this version's output) or where a link cannot be made, and an incomplete
    store is copied so that its build can resume. A local store that is complete is kept."""
    store_dir = Path(store_dir)
    into_output = _is_inside(store_dir, runtime.working_dir())
    restored: list[Restored] = []
    accept = lambda folder: any(folder.glob("*/meta.json"))  # noqa: E731
    for previous in find_previous({store_dir.name}, accept, root):
        if os.path.abspath(previous) == os.path.abspath(store_dir):
            continue
        for source in sorted(p.parent for p in previous.glob("*/meta.json")):
            theirs, target = _store_meta(source), store_dir / source.name
            ours = _store_meta(target)
            if theirs is None or (ours is not None and (ours.get("complete") or not theirs.get("complete"))):
                continue
            files = sorted((p for p in source.iterdir() if p.is_file()), key=lambda p: (p.name == "meta.json", p.name))  # meta last
            target.mkdir(parents=True, exist_ok=True)
            action = "copied"
            if theirs.get("complete") and not into_output:
                try:
                    for path in files:
                        link = target / path.name
                        if link.exists() or link.is_symlink():
                            link.unlink()
                        link.symlink_to(path.resolve())
                    action = "linked"
                except OSError:
                    pass
            if action == "copied":
                for path in files:
                    if (target / path.name).is_symlink():
                        (target / path.name).unlink()
                    shutil.copy2(path, target / path.name)
            restored.append(Restored(f"image store {source.name}", source, target, action, len(files)))
            if echo:
                echo(str(restored[-1]))
    return restored
