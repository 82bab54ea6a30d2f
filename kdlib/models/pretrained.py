"""ImageNet-1k pretrained weights for fine-tuning, found offline first and checked before they are used.

Where they come from, in this order (``resolve_weights``):

1. an attached Kaggle *model* or *dataset* anywhere under /kaggle/input (``runtime.input_root()``), in either mount
   layout (``<model-slug>/<framework>/<variation>/<version>/`` or ``models/<owner>/...``; ``<slug>/`` or
   ``datasets/<owner>/<slug>/``, nested folders included). A file qualifies when its path names the architecture
   (``resnet50``, ``resnet-50``, ``resnet_50``) and it is a ``.pth``, ``.pt`` or ``.bin`` state dict, or a
   ``.safetensors`` one (read with the ``safetensors`` package);
2. torch.hub's cache (``torch.hub.get_dir()/checkpoints``), where an earlier download left them;
3. with the internet on, torchvision's download of its default weights for the architecture (the weights enum
   carries the URL; torch.hub checks the file's hash), into that cache;

and otherwise a ``PretrainedWeightsNotFound`` saying what to attach or to switch on. Every file is checked
(``check_file``): a torchvision or torch.hub name carries the first hex digits of the file's sha256
(``resnet50-11ad3fa6.pth``), which must match; the keys and shapes must fit the model (the head excepted: it is
replaced by a new ``num_classes`` one). timm's and torchvision's ResNet-50 use the same key names.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from .. import runtime

# preferred first: a file whose name carries its hash can be verified
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
HEAD_PREFIXES = ("fc.", "head.", "classifier.")
# torchvision's and torch.hub's convention: <name>-<leading hex digits of the file's sha256>.<ext>. Stricter than
# torch.hub.HASH_REGEX, so that a browser's copy suffix ("resnet50-11ad3fa6 (1).pth") is still checked.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})(?![0-9a-z])")
# ImageNet class folders (n + 8 digits): never hold weights; skipping them keeps the walk short where ImageNet-100's
# 130,000 images are attached beside the weights.
_CLASS_FOLDER = re.compile(r"n\d{8}")
MAX_DEPTH = 9
# a Kaggle model and a dataset that hold ResNet-50 weights, as kernel-metadata names them (the form, for messages)
MODEL_SOURCE_EXAMPLE = "pytorch/resnet50/PyTorch/default/1"


class PretrainedWeightsNotFound(FileNotFoundError):
    pass


class PretrainedWeightsInvalid(ValueError):
    """A weights file that is not what it claims (hash) or does not fit the model (keys, shapes): one line."""


def names_architecture(text: str | Path, arch: str) -> bool:
    pattern = re.sub(r"(\d+)$", r"[-_]?\1", arch.lower())  # resnet50 -> resnet[-_]?50
    return re.search(pattern, str(text).lower()) is not None


def _safetensors_available() -> bool:
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        return False
    return True


def weight_files(arch: str, root: str | Path) -> list[Path]:
    """Every file below ``root`` that could hold ``arch``'s weights, the preferred first (by suffix, then path)."""
    root, found = Path(root), []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = [] if depth >= MAX_DEPTH else sorted(d for d in dirnames if not _CLASS_FOLDER.fullmatch(d))
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix.lower() in WEIGHT_SUFFIXES and names_architecture(path.relative_to(root), arch):
                found.append(path)
    return sorted(found, key=lambda p: (WEIGHT_SUFFIXES.index(p.suffix.lower()), str(p)))


def find_weights(arch: str = "resnet50", search_root: str | Path | None = None) -> Path | None:
    """The attached weights file for ``arch`` under ``search_root`` (default: the input root), or None."""
    files = weight_files(arch, search_root if search_root is not None else runtime.input_root())
    return files[0] if files else None


def _torchvision_weights(arch: str):
    """torchvision's default ImageNet weights for ``arch`` (an enum member with the URL), or None."""
    try:
        from torchvision.models import get_model_weights

        return get_model_weights(arch).DEFAULT
    except (ImportError, ValueError, KeyError, AttributeError):
        return None


def hub_cache_weights(arch: str) -> Path | None:
    """``arch``'s weights in torch.hub's cache: torchvision's default file first, else any file naming ``arch``."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    default = _torchvision_weights(arch)
    named = folder / os.path.basename(urlparse(default.url).path) if default is not None else None
    if named is not None and named.is_file():
        return named
    cached = [p for p in sorted(folder.glob("*")) if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES
              and names_architecture(p.name, arch)] if folder.is_dir() else []
    return cached[0] if cached else None


def published_hash(path: Path) -> str | None:
    """The sha256 prefix a torchvision/torch.hub file name publishes, or None."""
    match = HASH_IN_NAME.search(Path(path).stem)
    return match.group(1) if match else None


def check_hash(path: Path) -> None:
    expected = published_hash(path)
    if expected is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(expected):
        raise PretrainedWeightsInvalid(
            f"{path}: its name publishes sha256 {expected}..., the file's is {digest.hexdigest()[:len(expected)]}...: "
            "it is not the file it is named after (a partial copy or another file renamed); attach the original")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        if not _safetensors_available():
            raise PretrainedWeightsInvalid(f"{path}: a .safetensors file needs the safetensors package (pip install "
                                           "safetensors), or attach the .pth/.bin form of the weights")
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and EOF errors alike: the file is not a readable state dict
            raise PretrainedWeightsInvalid(f"{path}: cannot be read as a PyTorch state dict "
                                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    for key in ("state_dict", "model"):  # checkpoints that wrap the weights
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsInvalid(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def fitting_state(state: dict[str, torch.Tensor], model: nn.Module, path: Path, arch: str) -> dict[str, torch.Tensor]:
    """``state`` without its head, once every other key and shape is the model's; else one line naming the first
    key that differs. BatchNorm's ``num_batches_tracked`` may be absent (torchvision's older files lack it)."""
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    wanted = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(HEAD_PREFIXES)}
    where = f"{path} does not fit {arch}"
    for key, shape in wanted.items():
        if key not in state and not key.endswith("num_batches_tracked"):
            raise PretrainedWeightsInvalid(f"{where}: it has no {key!r} (shape {tuple(shape)})")
        if key in state and state[key].shape != shape:
            raise PretrainedWeightsInvalid(f"{where}: {key!r} has shape {tuple(state[key].shape)}, the model's is "
                                           f"{tuple(shape)}")
    extra = [k for k in state if k not in wanted]
    if extra:
        raise PretrainedWeightsInvalid(f"{where}: {extra[0]!r} is not a key of the model (and {len(extra) - 1} more)")
    return state


def _internet(url: str = "https://download.pytorch.org") -> bool:
    try:
        socket.create_connection((urlparse(url).hostname, 443), timeout=5).close()
        return True
    except OSError:
        return False


def missing_weights_message(arch: str, search_root: str | Path | None = None) -> str:
    return (f"no ImageNet-1k weights for {arch} were found under {search_root or runtime.input_root()} or in torch.hub's "
            f"cache, and the internet is off. Attach them (Kaggle: Add Input > Models, a PyTorch {arch} such as "
            f"'{MODEL_SOURCE_EXAMPLE}', or a dataset holding a {arch} .pth file whose path names '{arch}'; in "
            f"kernel-metadata.json, model_sources or dataset_sources), or turn the session's internet on "
            f"(Settings > Internet) so torchvision can download them.")


def _empty_model(arch: str, num_classes: int) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=num_classes)


_checked: dict[tuple, None] = {}  # files already hashed in this process (path, size, mtime)


def check_file(path: Path, arch: str, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The file's state dict without its head, after its hash (where its name publishes one) and its keys and shapes
    are checked against ``arch`` (``model``, else a new one)."""
    path = Path(path)
    stat = path.stat()
    if (str(path), stat.st_size, stat.st_mtime_ns) not in _checked:
        check_hash(path)
        _checked[(str(path), stat.st_size, stat.st_mtime_ns)] = None
    return fitting_state(read_state_dict(path), model if model is not None else _empty_model(arch, 1000), path, arch)


def resolve_weights(arch: str = "resnet50", search_root: str | Path | None = None,
                    allow_download: bool = True) -> tuple[Path | None, str]:
    """(the weights file, where it came from): attached, torch.hub's cache, or downloaded now into that cache.
    (None, 'timm download') for an architecture torchvision has no weights for, with the internet on. Raises
    ``PretrainedWeightsNotFound`` (one line: what to attach or switch on) when there are none and no internet."""
    attached = find_weights(arch, search_root)
    if attached is not None:
        return attached, str(attached)
    cached = hub_cache_weights(arch)
    if cached is not None:
        return cached, f"torch.hub cache ({cached})"
    default = _torchvision_weights(arch)
    if allow_download and _internet(default.url if default is not None else "https://huggingface.co"):
        if default is None:
            return None, f"timm download ({arch})"
        torch.hub.load_state_dict_from_url(default.url, map_location="cpu", check_hash=True)
        return hub_cache_weights(arch), f"torchvision download ({default}, {default.url})"
    raise PretrainedWeightsNotFound(missing_weights_message(arch, search_root))


def check_weights(arch: str = "resnet50", search_root: str | Path | None = None,
                  allow_download: bool = True) -> str:
    """Find (or download) ``arch``'s weights and check them, before any data is loaded: where they came from, or
    ``PretrainedWeightsNotFound``/``PretrainedWeightsInvalid`` with one line."""
    path, origin = resolve_weights(arch, search_root, allow_download)
    if path is not None:
        check_file(path, arch)
    return origin


def pretrained_model(arch: str = "resnet50", num_classes: int = 100, weights: str | Path | None = None,
                     search_root: str | Path | None = None, allow_download: bool = True) -> tuple[nn.Module, str]:
    """(model with a new ``num_classes`` head, where its weights came from)."""
    import timm

    if weights:
        path, origin = Path(weights), str(weights)
        if not path.exists():
            raise PretrainedWeightsNotFound(f"WEIGHTS={str(path)!r} does not exist")
    else:
        path, origin = resolve_weights(arch, search_root, allow_download)
    if path is None:
        return timm.create_model(arch, pretrained=True, num_classes=num_classes), origin
    model = _empty_model(arch, num_classes)
    model.load_state_dict(check_file(path, arch, model), strict=False)  # the head stays new; the rest is checked
    return model, origin
