"""One way to get any model: ``create_model(name, num_classes=..., in_chans=...)``, as in timm.

Names registered here are our MNIST-sized networks; ``timm:<name>`` passes through to timm.
"""

from __future__ import annotations

from . import small_nets  # noqa: F401  (registers the models)
from .registry import count_parameters, create_model, list_models, register_model

__all__ = ["count_parameters", "create_model", "list_models", "register_model"]
