"""``selective-backprop``: Selective Backprop (Jiang et al., 2019, "Accelerating Deep Learning by Focusing on the
Biggest Losers", arXiv:1910.00762; reference code github.com/angelajiang/SelectiveBackprop, lib/calculators.py
``BatchedRelativeProbabilityCalculator`` and lib/hist.py).

Each sample of a batch is learned from with probability CDF(loss)^beta, the CDF taken over the losses of recent
samples: a ring buffer of the last ``history`` losses (1024, as the reference), on the device, to which the batch's
own losses are added first (as the reference does); CDF(l) is the fraction of the buffer strictly below l.

beta from the target rate: if the batch's losses come from the distribution of the history, CDF(loss) is uniform
on [0, 1] and E[CDF^beta] = 1 / (beta + 1); setting that to ``rate`` gives beta = 1 / rate - 1 (rate 0.3: beta 2.33;
the paper's beta = 1, 2, 3 select about 50%, 33%, 25%).

As this project's other rules, the selected samples form a physically smaller sub-batch at once (rounded up to the
size bucket with the highest losses not drawn), where the reference collects selected samples until a full batch.
'forward' scoring is the paper's method; 'stale' scores each sample by its loss at its last learning pass (+inf,
hence selected, before it has one), the history then holding those stale losses.
"""

from __future__ import annotations

import torch

from .base import SelectionRule


class SelectiveBackpropRule(SelectionRule):
    name = "selective-backprop"
    statistics_columns = 1  # the base objective's loss

    def __init__(self, rate: float | None = None, beta: float | None = None, history: int = 1024):
        if (rate is None) == (beta is None):
            raise ValueError("selective-backprop needs either rate (giving beta = 1 / rate - 1) or beta, not both")
        if rate is not None and not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        if beta is not None and beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.rate = rate
        self.beta = 1.0 / rate - 1.0 if beta is None else float(beta)
        self.history_size = history
        self.history: torch.Tensor | None = None
        self.filled, self.position = 0, 0

    def statistics(self, logits, y, losses):
        return losses()[:, None]

    def remember(self, losses: torch.Tensor) -> None:
        """Add losses to the ring buffer (the newest ``history`` of them when there are more)."""
        if self.history is None or self.history.device != losses.device:
            self.history = (torch.zeros(self.history_size, device=losses.device) if self.history is None
                            else self.history.to(losses.device))
        losses = losses[-self.history_size:]
        m = len(losses)
        slots = (self.position + torch.arange(m, device=losses.device)) % self.history_size
        self.history[slots] = losses.to(self.history.dtype)
        self.position = (self.position + m) % self.history_size
        self.filled = min(self.history_size, self.filled + m)

    def scores(self, statistics, partial):
        """The losses themselves (recorded for the notebook); the batch's recorded losses join the history."""
        losses = statistics[:, 0]
        self.remember(losses[torch.isfinite(losses)] if partial else losses)
        return losses

    def probabilities(self, losses: torch.Tensor) -> torch.Tensor:
        if self.filled == 0:
            return torch.ones_like(losses)
        past = self.history[:self.filled].sort().values
        cdf = torch.searchsorted(past, losses.to(past.dtype).contiguous(), right=False) / self.filled
        return cdf.pow(self.beta).to(losses.dtype)

    def choose(self, scores, generator):
        draw = torch.rand(scores.shape, generator=generator, device=scores.device)
        return (draw < self.probabilities(scores)).nonzero(as_tuple=True)[0], None

    def settings(self):
        return {"rate": self.rate, "beta": self.beta, "history": self.history_size}

    def state_dict(self):
        return {"history": self.history, "filled": self.filled, "position": self.position}

    def load_state_dict(self, state):
        self.history, self.filled, self.position = state["history"], state["filled"], state["position"]
