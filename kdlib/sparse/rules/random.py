"""``random``: the control. Each batch learns from uniformly drawn samples at a fixed rate, with no scoring.

Default: round(rate * n) samples, rounded up to the size bucket as every rule's learning pass is (the
realised rate is reported). ``exact_rate=True``: the size is drawn between the two bucket multiples around
rate * n so that its expectation is rate * n exactly: a control that matches another run's measured rate
(its samples backpropagated over the samples it saw).
"""

from __future__ import annotations

import math

import torch

from .base import SelectionRule, round_up_to_bucket


class RandomRule(SelectionRule):
    name = "random"
    scores_batches = False

    def __init__(self, rate: float, exact_rate: bool = False):
        if rate is None or not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.rate, self.exact_rate = rate, exact_rate

    def sample_count(self, n: int, bucket: int, generator: torch.Generator) -> int:
        if not self.exact_rate:
            return round_up_to_bucket(max(1, round(self.rate * n)), n, bucket)
        wanted = self.rate * n
        below = math.floor(wanted / bucket) * bucket
        up = torch.rand((), generator=generator, device=generator.device).item() < (wanted - below) / bucket
        return max(1, min(n, below + bucket if up else below))

    def pick(self, n, index, bucket, generator):
        k = self.sample_count(n, bucket, generator)
        return torch.randperm(n, generator=generator, device=index.device)[:k], None

    def settings(self):
        return {"rate": self.rate, "exact_rate": self.exact_rate}
