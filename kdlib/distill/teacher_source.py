"""Where a student's teacher logits come from, chosen in one place.

    table  the teacher's logits for every training image, un-augmented, in dataset order, looked up by the
           batch's indices. Valid only when the student trains without augmentation: then the frozen teacher's
           answer for an image never changes, and one pass replaces a teacher forward per step.
    live   the frozen teacher runs on each batch (an augmented batch is a new view), under the loop's autocast.
    cache  how a table (and the validation logits HPM-KD's meta-temperature and multi-teacher weights read) is
           computed: through a ``cache.LogitCache`` on disk, keyed by content (HPM-KD's ``cache`` component), or,
           without one, directly.

``teacher_source`` picks table or live from the student's training configuration; KD, HPM-KD's assistants
and its students all take their teachers from it, so the same teacher gives the same logits on every path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .. import runtime
from .cache import LogitCache, model_digest, tensor_digest

if TYPE_CHECKING:
    from ..data.splits import ImageSplits
    from ..train import TrainConfig


class TeacherSource:
    """Logits of one frozen teacher for a batch: from a table indexed by dataset position, or from the live
    model (eval mode, no gradients). Build it with ``teacher_source`` unless you have a table already."""

    def __init__(self, name: str, model: nn.Module | None = None, table: torch.Tensor | None = None):
        if model is None and table is None:
            raise ValueError(f"teacher {name!r} needs a model or a table of logits")
        self.name, self.model, self.table = name, model, table
        if model is not None:
            model.eval()
            model.requires_grad_(False)

    def __call__(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            if self.table.device != index.device:
                self.table = self.table.to(index.device)
            return self.table[index]
        self.model.eval()  # the loop puts "the model" in train mode; a teacher always stays in eval
        with torch.no_grad():
            return self.model(x)


def teacher_logits(teacher: nn.Module, x_uint8: torch.Tensor, mean, std, device: torch.device, precision, view: str,
                   batch_size: int = 1024, channels_last: bool = True, cache: LogitCache | None = None) -> torch.Tensor:
    """The teacher's float32 logits (CPU) for every image of ``x_uint8``, un-augmented, in order; through
    ``cache`` when given (``view`` names the images in its key), else computed."""
    from ..data.device_loader import DeviceLoader
    from ..evaluate import predict_logits

    def compute() -> torch.Tensor:
        labels = torch.zeros(len(x_uint8), dtype=torch.long)
        loader = DeviceLoader(x_uint8, labels, batch_size, device, mean, std, channels_last=channels_last)
        return predict_logits(teacher, loader, precision)[0]

    parts = {"teacher": model_digest(teacher), "inputs": tensor_digest(x_uint8), "mean": list(map(float, mean)),
             "std": list(map(float, std)), "precision": getattr(precision, "name", str(precision)), "view": view}
    return (cache or LogitCache(None)).get_or_compute(parts, compute)


def split_logits(teacher: nn.Module, data: ImageSplits, split: str, config: TrainConfig, device: torch.device,
                 cache: LogitCache | None = None) -> torch.Tensor:
    """The teacher's logits for the un-augmented ``split`` ('train' or 'val') of ``data``, at the student's
    precision and evaluation batch size (CPU, float32)."""
    x = {"train": data.train_x, "val": data.val_x}[split]
    mean, std = data.channel_stats()
    return teacher_logits(teacher, x, mean, std, device, runtime.select_precision(device, config.amp),
                          view=f"{split}-plain", batch_size=config.eval_batch_size,
                          channels_last=config.channels_last, cache=cache)


def teacher_source(name: str, teacher: nn.Module, data: ImageSplits, config: TrainConfig, device: torch.device,
                   cache: LogitCache | None = None) -> TeacherSource:
    """The live teacher when the student (``config``) trains with augmentation, else a table of its training
    logits on ``device``, computed once (through ``cache`` when given)."""
    if config.augmentation() is not None:
        return TeacherSource(name, model=teacher)
    return TeacherSource(name, table=split_logits(teacher, data, "train", config, device, cache).to(device))


__all__ = ["TeacherSource", "teacher_logits", "split_logits", "teacher_source"]
