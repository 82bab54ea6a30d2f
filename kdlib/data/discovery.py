"""Find dataset files under any mount layout (``/kaggle/input/<slug>/`` and
``/kaggle/input/datasets/<owner>/<slug>/``, nested folders, an explicit directory)."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

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


KAGGLE_PREFIX = "kaggle:"  # DATA_DIR="kaggle:<owner>/<slug>": the Kaggle data set, downloaded by kagglehub


@dataclass
class DataSource:
    """Which data a run uses and why, decided before anything is read (``describe()`` is the notebook's line)."""

    name: str  # what the tables will call it: 'MNIST (idx)', 'CIFAR-10', or the embedded fallback's name
    files: Any  # what the finder returned (None for the embedded data)
    where: str  # the folder: the attached data set's own folder when found under the input root
    reason: str  # why this data: 'DATA_DIR', 'found under /kaggle/input', ...
    embedded: bool = False

    def describe(self) -> str:
        return f"{self.name} from {self.where} ({self.reason})"


def _colab_secrets_to_environment() -> None:
    """On Colab, copy Kaggle credentials from the notebook's secrets (key icon) into the environment, where
    kagglehub looks for them; credentials already in the environment win."""
    if runtime.detect_platform() != "colab" or os.environ.get("KAGGLE_API_TOKEN") or (
            os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return
    from google.colab import userdata

    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY"):
        try:
            value = userdata.get(name)
        except Exception:  # not set, or this notebook was not granted access to it
            continue
        if value:
            os.environ[name] = value


def kaggle_download(handle: str) -> Path:
    """The Kaggle data set ``owner/slug`` through kagglehub (downloaded once, then cached). Credentials: Colab
    secrets KAGGLE_API_TOKEN or KAGGLE_USERNAME + KAGGLE_KEY, the same environment variables, or ~/.kaggle."""
    try:
        import kagglehub
    except ImportError:
        raise ModuleNotFoundError(f"DATA_DIR={KAGGLE_PREFIX + handle!r} needs kagglehub: pip install kagglehub "
                                  "(or pip install 'kdlib[colab]')", name="kagglehub") from None
    _colab_secrets_to_environment()
    try:
        return Path(kagglehub.dataset_download(handle))
    except Exception as exc:
        raise DataNotFoundError(
            f"kagglehub could not download {handle!r} ({type(exc).__name__}: {exc}). It needs the network and, for "
            "most data sets, Kaggle credentials: on Colab add the secrets KAGGLE_USERNAME and KAGGLE_KEY (or "
            "KAGGLE_API_TOKEN) and grant this notebook access; elsewhere set them in the environment or save "
            "~/.kaggle/kaggle.json.") from exc


def embedded_source(name: str, where: str) -> DataSource:
    """The embedded fallback of the demo preset, taken only when the real data is nowhere here."""
    return DataSource(name, None, where, f"nothing in DATA_DIR or under {runtime.input_root()}: the demo preset "
                      "falls back to the embedded digits", embedded=True)


def dataset_folder(path: Path, searched: Path) -> Path:
    """The attached data set's own folder (e.g. /kaggle/input/mnist-dataset) for a file found below the input
    root; otherwise the folder that was searched."""
    root = runtime.input_root()
    if Path(searched) != root:
        return Path(searched)
    return root.joinpath(*dataset_key(root, Path(path))) if Path(path).is_relative_to(root) else root


def _near_miss(explain: Callable[[Path], str | None] | None, folder: Path) -> str:
    """' (<why>)' when ``explain`` finds what is missing from an incomplete copy in ``folder``, else ''."""
    why = explain(folder) if explain is not None else None
    return f" ({why})" if why else ""


def find_local(name: str, find: Callable[[Path], Any], data_dir: str | Path | None,
               help_text: str, explain: Callable[[Path], str | None] | None = None) -> tuple[Any, Path, str] | None:
    """(files, folder searched, why) for the data in DATA_DIR (which must hold it) or under the input root
    (/kaggle/input); None when it is in neither. Never looks in the download cache, never downloads
    (except a ``kaggle:owner/slug`` DATA_DIR, which names a download). ``explain(folder)``: what an incomplete copy
    there lacks, for the error."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)) or not str(data_dir).strip():
            raise DataNotFoundError(f"DATA_DIR={data_dir!r}: name a folder (a string), or None to search "
                                    f"{runtime.input_root()}")
        reason = "DATA_DIR"
        if str(data_dir).startswith(KAGGLE_PREFIX):
            handle = str(data_dir)[len(KAGGLE_PREFIX):]
            data_dir, reason = kaggle_download(handle), f"DATA_DIR {str(data_dir)!r}, through kagglehub"
        data_dir = Path(data_dir).expanduser()
        if not data_dir.exists():
            raise DataNotFoundError(f"DATA_DIR {str(data_dir)!r} does not exist. {help_text}")
        if not data_dir.is_dir():
            raise DataNotFoundError(f"DATA_DIR {str(data_dir)!r} is a file, not a folder (an archive? extract it, then "
                                    "name the folder it makes)")
        files = find(data_dir)
        if files is None:
            raise DataNotFoundError(f"no complete copy of {name} in {str(data_dir)!r}{_near_miss(explain, data_dir)}. "
                                    f"{help_text}")
        return files, data_dir, reason
    root = runtime.input_root()
    files = find(root)
    return None if files is None else (files, root, f"found under {root}")


def locate_source(name: str, find: Callable[[Path], Any], data_dir: str | Path | None,
                  download: Callable[[Path], None] | None, cache_name: str, help_text: str,
                  explain: Callable[[Path], str | None] | None = None) -> tuple[Any, Path, str]:
    """(files, folder, why): in data_dir if given; else under the input root (/kaggle/input); else in kdlib's
    cache, downloading into it when ``download`` is given and the network allows. Otherwise a DataNotFoundError
    that says what was searched and what to attach or pass."""
    found = find_local(name, find, data_dir, help_text, explain)
    if found is not None:
        return found
    searched = [runtime.input_root()]
    if download is not None:
        cache = Path.home() / ".cache" / "kdlib" / cache_name
        searched.append(cache)
        files = find(cache)
        if files is not None:
            return files, cache, "downloaded earlier into kdlib's cache"
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)
        try:
            download(cache)
            files = find(cache)
        except Exception:  # no network, a firewall, a mirror down: all mean "not available here"
            files = None
        finally:
            socket.setdefaulttimeout(previous)
        if files is not None:
            return files, cache, f"not found locally; downloaded into {cache}"
    raise DataNotFoundError(f"{help_text} Searched: {', '.join(map(str, searched))}"
                            f"{_near_miss(explain, runtime.input_root())}.")


def locate(name: str, find: Callable[[Path], Any], data_dir: str | Path | None,
           download: Callable[[Path], None] | None, cache_name: str, help_text: str,
           explain: Callable[[Path], str | None] | None = None) -> Any:
    """The files of ``locate_source``."""
    return locate_source(name, find, data_dir, download, cache_name, help_text, explain)[0]
