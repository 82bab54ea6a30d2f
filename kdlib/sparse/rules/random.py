"""``random``: the control. Each batch learns from uniformly drawn samples at a fixed rate, with no scoring.

Default: round(rate * n) samples, rounded up to the size bucket as every rule's learning pass is (the
realised rate is reported). ``exact_rate=True``: the size is drawn between the two bucket multiples around
rate * n so that its expectation is rate * n exactly: a control that matches another run's measured rate.

``epoch_rates`` ({epoch: rate}): a control matched epoch by epoch to another run of the same seed (``random@ast``
learns in each epoch from as many samples, in expectation, as ``ast`` did in that epoch, rounding included); the
rate of each epoch is set when the epoch starts. The mapping may grow between calls (the parent's epochs are
added as they finish), so it is not part of the settings; the parent's name is.
"""

from __future__ import annotations

import math

import torch

from .base import SelectionRule, round_up_to_bucket


class RandomRule(SelectionRule):
    name = "random"
    scores_batches = False

    def __init__(self, rate: float | None = None, exact_rate: bool = False, epoch_rates: dict | None = None,
                 matched_to: str | None = None):
        if epoch_rates is not None:
            if rate is not None:
                raise ValueError("random takes either rate or epoch_rates (a matched control), not both")
            bad = {e: r for e, r in epoch_rates.items() if not 0.0 < r <= 1.0}
            if bad:
                raise ValueError(f"epoch_rates must be in (0, 1], got {bad}")
            rate, exact_rate = None, True
        elif rate is None or not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.rate, self.exact_rate = rate, exact_rate
        self.epoch_rates, self.matched_to, self.epoch = epoch_rates, matched_to, 0

    def on_epoch_start(self, epoch: int) -> None:
        if self.epoch_rates is not None:  # warm-up epochs (full training) need none
            self.epoch, self.rate = epoch, self.epoch_rates.get(epoch)

    def pick(self, n, index, bucket, generator):
        if self.rate is None:
            raise RuntimeError(f"random matched to {self.matched_to or 'another run'} has no rate for epoch "
                               f"{self.epoch + 1}: that run has not finished the epoch yet")
        k = self.sample_count(n, bucket, generator)
        return torch.randperm(n, generator=generator, device=index.device)[:k], None

    def sample_count(self, n: int, bucket: int, generator: torch.Generator) -> int:
        if not self.exact_rate:
            return round_up_to_bucket(max(1, round(self.rate * n)), n, bucket)
        wanted = self.rate * n
        below = math.floor(wanted / bucket) * bucket
        up = torch.rand((), generator=generator, device=generator.device).item() < (wanted - below) / bucket
        return max(1, min(n, below + bucket if up else below))

    def settings(self):
        if self.epoch_rates is not None:
            return {"rate": "matched per epoch", "matched_to": self.matched_to, "exact_rate": True}
        return {"rate": self.rate, "exact_rate": self.exact_rate}
