"""The model registry: ``register_model`` adds a builder under its function's name, ``create_model`` builds one.

Apart from ``kdlib.models`` (which re-exports it), so that a module of models can register its builders
without importing the package that imports it.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 10, in_chans: int | None = None, **kwargs) -> nn.Module:
    """``in_chans`` None: the model's own default (1 for the MNIST nets, 3 for CIFAR and timm models)."""
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], num_classes=num_classes, **kwargs)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())} or 'timm:<name>'")
    return _REGISTRY[name](num_classes=num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
