"""BatchNorm statistics recomputed on random full batches of training data.

A rule that learns from a selected sub-batch also updates BatchNorm's running statistics from it alone, so
validation and test use statistics of the selected samples (hard ones, for a loss-based rule) rather than of the
data. Recomputing them on random full batches before evaluating (as stochastic weight averaging does after
averaging: ``torch.optim.swa_utils.update_bn``) separates what the selection teaches the weights from what it
does to the statistics.
"""

from __future__ import annotations

import copy

import torch

DRAW_OFFSET = 1_000_000  # the batches' draws come from (seed, DRAW_OFFSET + epoch), apart from the epoch's own


def random_batches(train_loader, batches: int, epoch: int):
    """``batches`` full batches of uniformly drawn training rows, augmented as training sees them (a copy of the
    loader iterates them; the loader itself is not touched). Works with any loader of ``kdlib.train.fit`` that
    has ``num_rows``, ``batch_size``, ``seed`` and ``set_epoch(epoch, indices=rows)``."""
    rows = train_loader.num_rows
    generator = torch.Generator().manual_seed(train_loader.seed * 100_003 + DRAW_OFFSET + epoch)
    chosen = torch.randperm(rows, generator=generator)[:batches * train_loader.batch_size]
    view = copy.copy(train_loader)
    view.set_epoch(DRAW_OFFSET + epoch, indices=chosen)
    for x, _, _ in view:
        yield x


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, train_loader, batches: int, epoch: int) -> int:
    """Reset the running statistics of every BatchNorm layer of ``model`` (a DDP wrapper's module) and recompute
    them as the plain average over ``batches`` random full training batches; returns the samples forwarded."""
    module = getattr(model, "module", model)  # past DDP's reducer: these forwards have no backward
    seen = []

    def counted():  # one batch on the device at a time
        for x in random_batches(train_loader, batches, epoch):
            seen.append(len(x))
            yield x

    torch.optim.swa_utils.update_bn(counted(), module)
    return sum(seen)
