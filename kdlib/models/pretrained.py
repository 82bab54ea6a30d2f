"""ImageNet-1k pretrained weights for fine-tuning, found offline first.

Kaggle sessions often run with the internet off: the weights then come from an attached Kaggle *model*
or *dataset* (anywhere under /kaggle/input, either mount layout). A file qualifies when its path names the
architecture (``resnet50``, ``resnet-50``, ``resnet_50``) and it is a ``.safetensors``, ``.pth``, ``.pt`` or
``.bin`` state dict (timm's and torchvision's key names are the same for ResNet-50). With the internet on,
timm downloads them. The head is replaced by a new ``num_classes`` one in both cases.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import torch
import torch.nn as nn

from .. import runtime
from ..data.discovery import walk_files

WEIGHT_SUFFIXES = {".safetensors", ".pth", ".pt", ".bin"}
HEAD_PREFIXES = ("fc.", "head.", "classifier.")


class PretrainedWeightsNotFound(FileNotFoundError):
    pass


def _names_architecture(path: Path, arch: str) -> bool:
    pattern = re.sub(r"(\d+)$", r"[-_]?\1", arch.lower())  # resnet50 -> resnet[-_]?50
    return re.search(pattern, str(path).lower()) is not None


def find_weights(arch: str = "resnet50", search_root: str | Path | None = None) -> Path | None:
    root = Path(search_root) if search_root is not None else runtime.input_root()
    if not root.is_dir():
        return None
    for path in walk_files(root, max_depth=9):
        if path.suffix.lower() in WEIGHT_SUFFIXES and _names_architecture(path, arch):
            return path
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # checkpoints that wrap the weights
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _internet() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=5).close()
        return True
    except OSError:
        return False


def pretrained_model(arch: str = "resnet50", num_classes: int = 100, weights: str | Path | None = None,
                     search_root: str | Path | None = None, allow_download: bool = True) -> tuple[nn.Module, str]:
    """(model with a new ``num_classes`` head, where its weights came from)."""
    import timm

    path = Path(weights) if weights else find_weights(arch, search_root)
    if path is not None:
        if not path.exists():
            raise PretrainedWeightsNotFound(f"WEIGHTS={str(path)!r} does not exist")
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
        state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(HEAD_PREFIXES)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        not_head = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
        if not_head or unexpected:
            raise ValueError(f"{path} does not fit timm's {arch}: missing {not_head[:5]}, unexpected {unexpected[:5]}")
        return model, str(path)
    if allow_download and _internet():
        return timm.create_model(arch, pretrained=True, num_classes=num_classes), f"timm download ({arch})"
    raise PretrainedWeightsNotFound(
        f"no ImageNet-1k weights for {arch} were found. Either attach them on Kaggle ('Add Input' > Models > "
        f"timm/{arch.replace('resnet', 'resnet-')} (PyTorch), or a dataset holding a {arch} .pth/.safetensors "
        f"file whose path names '{arch}'), or turn the session's internet on so timm can download them. "
        f"Searched: {search_root or runtime.input_root()}.")
