"""Metrics: predictions, accuracy, per-class accuracy, confusion matrices, statistics over seeds."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from .data.device_loader import DeviceLoader
from .runtime import Precision


@torch.no_grad()
def predict_logits(model: torch.nn.Module, loader: DeviceLoader, precision: Precision | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 logits and labels (on the CPU) for every sample of a non-shuffled loader."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for x, y, _ in loader:
            with precision.autocast() if precision else contextlib.nullcontext():
                logits.append(model(x).float())
            labels.append(y)
    finally:
        model.train(was_training)
    return torch.cat(logits).cpu(), torch.cat(labels).cpu()


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def confusion_matrix(predictions, labels, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    predictions, labels = np.asarray(predictions, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each true class; NaN for a class with no samples."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def mean_std(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1); the std is None for a single value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std of no values")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
