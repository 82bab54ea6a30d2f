"""Per-sample significance: how much a sample still has to teach the model."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-8


def loss_and_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy and normalised prediction entropy (0: certain, 1: uniform)."""
    logits = logits.detach().float()
    ce = F.cross_entropy(logits, targets, reduction="none")
    log_p = F.log_softmax(logits, dim=1)
    return ce, -(log_p.exp() * log_p).sum(dim=1) / math.log(logits.shape[1])


def combine(ce: torch.Tensor, entropy: torch.Tensor, loss_weight: float = 0.7, entropy_weight: float = 0.3) -> torch.Tensor:
    return loss_weight * ce / (ce.mean() + EPS) + entropy_weight * entropy / (entropy.mean() + EPS)


def significance(logits: torch.Tensor, targets: torch.Tensor, loss_weight: float = 0.7,
                 entropy_weight: float = 0.3) -> torch.Tensor:
    """loss_weight * CE_i / mean(CE) + entropy_weight * H_i / mean(H), per sample of one batch.

    Normalisation: each term is divided by its mean over the batch, so a score of 1 (with the default
    weights summing to 1) means "as significant as this batch's average sample" whatever the stage of
    training. Raw losses shrink by orders of magnitude as a model learns; normalised scores keep the
    same scale, so the controller's threshold does not have to chase them. H is the prediction's
    entropy divided by log(classes) (0: certain, 1: uniform).
    """
    return combine(*loss_and_entropy(logits, targets), loss_weight, entropy_weight)
