"""What an algorithm plugs into the training loop (``train.fit``): an ``Objective``.

Given the model and a batch it returns the loss to back-propagate (plain cross-entropy, KD, AST's selective
step). The loop owns everything else. This module imports nothing of the loop, so a loss can be defined and
tested without it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class StepOutput(NamedTuple):
    loss: torch.Tensor  # scalar to back-propagate
    logits: torch.Tensor  # logits of the samples that were learned from, for running accuracy
    targets: torch.Tensor  # their labels


class Objective:
    """Cross-entropy on the whole batch. Algorithms subclass this and override ``step``."""

    name = "ce"

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor) -> StepOutput | None:
        """The loss of this batch to step on, or None: no optimizer step for this batch (an objective that
        accumulates samples until a full batch)."""
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits, y)

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor,
                        x: torch.Tensor | None = None) -> torch.Tensor:
        """This objective's loss for each sample of ``logits`` (whose mean is ``step``'s loss), for selection rules
        that learn from part of a batch (kdlib.sparse). ``x``: the inputs, for losses that need them (a teacher)."""
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=self.label_smoothing)

    def epoch_indices(self, epoch: int) -> torch.Tensor | None:
        """The training rows epoch ``epoch`` iterates (in a seeded shuffle), or None for all of them. Called
        before ``on_epoch_start``; the loop passes it to ``train_loader.set_epoch``."""
        return None

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def final_step(self, model: nn.Module) -> StepOutput | None:
        """After the epoch's last batch: one more step to take (an objective that accumulates samples over batches
        learns from what is left), or None."""
        return None

    def before_validation(self, model: nn.Module, train_loader, epoch: int) -> None:
        """After the epoch's training steps, before validation, within the epoch's measured time (e.g. BatchNorm
        statistics recomputed)."""

    def on_validation(self, epoch: int, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """Called with the epoch's validation logits and labels (CPU) before the checkpoint is written;
        adaptive algorithms update themselves here. Returns extra values for the history."""
        return {}

    def epoch_stats(self) -> dict:
        """Extra per-epoch values for the history (an algorithm's temperature, activation rate...)."""
        return {}

    def settings(self) -> dict:
        """What defines this objective's computation; a checkpoint resumes only under the same settings."""
        return {"objective": self.name, "label_smoothing": self.label_smoothing}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
