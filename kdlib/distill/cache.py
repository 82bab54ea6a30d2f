"""Shared optimisation memory: teacher logits computed once per (teacher weights, data view), on disk.

Keys are SHA-256 digests of content, never object ids: the teacher's parameters and buffers, the exact
input tensor, its normalisation, the precision, and a name for the view. Two teachers with equal weights
share entries; changing one weight or one pixel gives a new key, so stale logits are never served
(entries for old keys are simply no longer asked for).

What is cached: logits of *un-augmented* views only (the training set when students train without
augmentation, and the validation set, which the meta-temperature scheduler and the multi-teacher
weights read every epoch). With random augmentation each training batch is a new view, so the teacher
runs live on it; fixing the augmentations in advance to make them cacheable would change the training.
Which teacher logits go through the cache is ``teacher_source``'s choice.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..checkpoint import CheckpointError, load_checkpoint
from ..fileio import atomic_save


def _update_with_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():  # reshape: 0-d tensors (BatchNorm's counters) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensor_digest(t: torch.Tensor) -> str:
    h = hashlib.sha256()
    _update_with_tensor(h, t)
    return h.hexdigest()


def model_digest(model: nn.Module) -> str:
    """Digest of every parameter and buffer, with names and the class name: equal weights, equal digest."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, value in model.state_dict().items():
        h.update(name.encode())
        _update_with_tensor(h, value)
    return h.hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    seconds_computing: float = 0.0  # spent on misses
    seconds_saved: float = 0.0  # on hits: the recorded compute time of the entry minus the time to load it

    @property
    def hit_rate(self) -> float | None:
        n = self.hits + self.misses
        return self.hits / n if n else None

    def to_dict(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hit_rate,
                "seconds_computing": self.seconds_computing, "seconds_saved": self.seconds_saved}


class LogitCache:
    """``get_or_compute(key_parts, compute)``: load the entry for ``key_parts`` or compute and store it.

    ``enabled=False`` computes every time (the "off" switch): same values, no reuse. Counting is
    thread-safe enough for our use (students of a parallel group only read the cache)."""

    def __init__(self, root: str | Path | None, enabled: bool = True):
        self.enabled = enabled and root is not None
        self.root = Path(root) if root is not None else None
        self.stats = CacheStats()

    @staticmethod
    def key(parts: dict) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def get_or_compute(self, parts: dict, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        path = self.root / f"{self.key(parts)}.pt" if self.enabled else None
        if path is not None and path.exists():
            t0 = time.perf_counter()
            try:
                entry = load_checkpoint(path)
                logits, seconds = entry["logits"], float(entry["seconds"])
            except (CheckpointError, KeyError, TypeError, ValueError) as exc:
                # A damaged entry costs one recomputation, never the run.
                warnings.warn(f"logit cache entry {path} is unreadable ({exc}); recomputing it", stacklevel=2)
            else:
                self.stats.hits += 1
                self.stats.seconds_saved += max(0.0, seconds - (time.perf_counter() - t0))
                return logits
        t0 = time.perf_counter()
        logits = compute().detach().float().cpu()
        seconds = time.perf_counter() - t0
        self.stats.misses += 1
        self.stats.seconds_computing += seconds
        if path is not None:
            atomic_save({"logits": logits, "seconds": seconds, "parts": parts}, path)
        return logits
