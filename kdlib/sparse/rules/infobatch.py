"""``infobatch``: InfoBatch (Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased Dynamic Data Pruning",
ICLR 2024; reference code github.com/NUS-HPC-AI-Lab/InfoBatch, infobatch/infobatch.py, ``InfoBatch.prune``).

Each epoch, of the samples whose loss (recorded at their last learning pass) is below the mean of the recorded
losses, a random ``prune_ratio`` is left out of the epoch; the kept ones have their loss (hence gradient)
weighted 1 / (1 - prune_ratio), so the epoch's expected gradient is the full data's. Whole batches are saved:
the loader iterates only the epoch's rows (``epoch_indices``). The last ceil((1 - delta) * epochs) epochs (at
least one when delta < 1) train on all data with weight 1 (InfoBatch's annealing).

As the reference: the kept count is int((1 - prune_ratio) * low) drawn without replacement; the batch loss is
mean(weight * loss) over the batch. Differences: a sample never learned from has loss +inf, so it is kept (the
reference gives every sample an initial score of 3) and the mean is over recorded losses only; the annealing is
counted from the end (the reference prunes while epoch <= delta * epochs, so with 8 epochs and delta 0.875 it
never anneals, and with 12 it anneals one); the draws come from (seed, epoch), so a resumed run prunes the same
samples.
"""

from __future__ import annotations

import math

import torch

from .base import SelectionRule


class InfoBatchRule(SelectionRule):
    name = "infobatch"
    scores_batches = False
    statistics_columns = 1  # the base objective's loss
    prunes_epochs = True

    def __init__(self, rate: float | None = None, epochs: int | None = None, prune_ratio: float = 0.5,
                 delta: float = 0.875):
        if rate is not None:
            raise ValueError("infobatch takes no rate: its budget follows from prune_ratio and the losses "
                             "(a random control can match its measured rate with exact_rate=True)")
        if epochs is None or epochs < 1:
            raise ValueError("infobatch needs epochs= (the run's epochs: the last 1 - delta of them use all data)")
        if not 0.0 < prune_ratio <= 0.9:
            raise ValueError(f"prune_ratio must be in (0, 0.9], got {prune_ratio}")
        if not 0.0 <= delta <= 1.0:
            raise ValueError(f"delta must be in [0, 1], got {delta}")
        self.epochs, self.prune_ratio, self.delta = epochs, prune_ratio, delta
        self.keep_ratio = 1.0 - prune_ratio
        self.epoch, self.plan_epoch = 0, -1
        self.rows = self.weights = None  # the planned epoch's rows and per-row loss weights (None: not pruned)

    def needs_table(self, scoring):
        return True

    def statistics(self, logits, y, losses):
        return losses()[:, None]

    @property
    def full_epochs(self) -> int:
        """The last epochs, trained on all data."""
        return math.ceil((1.0 - self.delta) * self.epochs - 1e-9)

    def prunes(self, epoch: int) -> bool:
        return epoch < self.epochs - self.full_epochs

    def epoch_indices(self, epoch, table, seed):
        if epoch == self.plan_epoch:  # planned before a mid-epoch checkpoint: the same rows, whatever was learned since
            return self.rows
        self.plan_epoch, self.rows, self.weights = epoch, None, None
        if not self.prunes(epoch):
            return None
        losses = table[:, 0]
        recorded = torch.isfinite(losses)
        if not recorded.any():
            return None
        low = (recorded & (losses < losses[recorded].mean())).nonzero(as_tuple=True)[0]
        draw = torch.randperm(len(low), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        kept_low = low[draw[:int(self.keep_ratio * len(low))].to(low.device)]
        keep = torch.ones(len(losses), dtype=torch.bool, device=losses.device)
        keep[low] = False
        keep[kept_low] = True
        self.weights = torch.ones(len(losses), device=losses.device)
        self.weights[kept_low] = 1.0 / self.keep_ratio
        self.rows = keep.nonzero(as_tuple=True)[0]
        return self.rows

    def on_epoch_start(self, epoch):
        self.epoch = epoch

    def pick(self, n, index, bucket, generator):
        if self.weights is None or self.plan_epoch != self.epoch:
            return None, None  # a full epoch: the plain mean, as full training
        return None, self.weights[index]

    def settings(self):
        return {"epochs": self.epochs, "prune_ratio": self.prune_ratio, "delta": self.delta}

    def state_dict(self):
        return {"plan_epoch": self.plan_epoch, "rows": self.rows, "weights": self.weights}

    def load_state_dict(self, state):
        self.plan_epoch, self.rows, self.weights = state["plan_epoch"], state["rows"], state["weights"]
