"""``random-prune``: the control of a rule that prunes whole samples from an epoch (InfoBatch). Each epoch it trains
on as many rows as the matched run did in that epoch of the same seed (``epoch_rows``, {epoch: rows}), drawn
uniformly from (seed, epoch), with every loss weighted 1 (a plain mean). The loader then iterates as many batches,
so it takes the same optimizer steps; only which samples are left out differs (InfoBatch: a random part of the
below-mean-loss samples, the rest rescaled). Dynamic random pruning is the baseline of InfoBatch's own paper.

The mapping may grow between calls (the parent's epochs are added as they finish), so it is not part of the
settings; the parent's name is. An epoch whose count is the whole data set trains on all rows.
"""

from __future__ import annotations

import torch

from .base import SelectionRule


class RandomPruneRule(SelectionRule):
    name = "random-prune"
    scores_batches = False
    prunes_epochs = True

    def __init__(self, rate: float | None = None, epoch_rows: dict | None = None, matched_to: str | None = None):
        if rate is not None:
            raise ValueError("random-prune takes no rate: it prunes as many rows per epoch as its matched run "
                             "(epoch_rows)")
        if epoch_rows is None:
            raise ValueError("random-prune needs epoch_rows ({epoch: rows kept}) from the run it is matched to")
        bad = {e: k for e, k in epoch_rows.items() if int(k) != k or k < 1}
        if bad:
            raise ValueError(f"epoch_rows must be positive integers, got {bad}")
        self.epoch_rows, self.matched_to = {int(e): int(k) for e, k in epoch_rows.items()}, matched_to

    def epoch_indices(self, epoch, table, seed):
        if epoch not in self.epoch_rows:
            raise RuntimeError(f"random-prune matched to {self.matched_to or 'another run'} has no row count for "
                               f"epoch {epoch + 1}: that run has not finished the epoch yet")
        return self.rows_for(epoch, self.epoch_rows[epoch], self.num_samples, seed)

    @staticmethod
    def rows_for(epoch: int, kept: int, num_samples: int, seed: int) -> torch.Tensor | None:
        if kept >= num_samples:
            return None
        draw = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed * 7919 + epoch + 104_729))
        return draw[:kept].sort().values

    def pick(self, n, index, bucket, generator):
        return None, None  # every row of a (pruned) epoch's batches, plain mean

    def settings(self):
        return {"rows": "matched per epoch", "matched_to": self.matched_to}
