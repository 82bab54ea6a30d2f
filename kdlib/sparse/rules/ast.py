"""``ast``: today's Adaptive Sparse Training rule. A PI controller sets a significance threshold so that a target
fraction of each batch passes (kdlib/sparse/controller.py); significance is

    loss_weight * CE_i / mean(CE) + entropy_weight * H_i / mean(H)

over the current batch (kdlib/sparse/significance.py). With stale scoring the table holds each sample's *raw*
CE and entropy from its last learning pass, normalised over the current batch at selection time (samples never
learned from score +inf and are selected): all of a batch's scores are then on one scale, which they were not
when each learning sub-batch was normalised on its own and written back.

``keep_low`` (kept as an option of this rule): each below-threshold sample is also kept with probability q and its
loss weighted 1/q, the batch loss being sum(w * loss) / batch, an unbiased estimate of the full batch's mean loss.
It is a per-batch estimator inside AST (the samples it keeps were already scored); the ``infobatch`` rule is the
published method, which saves whole batches.
"""

from __future__ import annotations

import torch

from ..controller import PIController, select
from ..significance import EPS, combine, loss_and_entropy
from .base import SelectionRule


class ASTRule(SelectionRule):
    name = "ast"
    statistics_columns = 2  # raw CE, normalised entropy

    def __init__(self, rate: float | None = None, controller: PIController | None = None, loss_weight: float = 0.7,
                 entropy_weight: float = 0.3, keep_low: float = 0.0, **controller_settings):
        if controller is None:
            controller = PIController(**({} if rate is None else {"target": rate}), **controller_settings)
        elif controller_settings or (rate is not None and rate != controller.target):
            raise ValueError("give the ast rule either a controller or its settings (rate, kp, ki, ema_factor), not both")
        if not 0.0 <= keep_low < 1.0:
            raise ValueError(f"keep_low must be in [0, 1), got {keep_low}")
        self.controller = controller
        self.loss_weight, self.entropy_weight, self.keep_low = loss_weight, entropy_weight, keep_low

    def statistics(self, logits, y, losses):
        return torch.stack(loss_and_entropy(logits, y), 1)

    def scores(self, statistics, partial):
        ce, entropy = statistics[:, 0], statistics[:, 1]
        if not partial:
            return combine(ce, entropy, self.loss_weight, self.entropy_weight)
        # normalised over the batch's samples that have a record; the others are selected (+inf)
        seen = torch.isfinite(ce) & torch.isfinite(entropy)
        count = seen.sum().clamp(min=1)
        ce, entropy = torch.where(seen, ce, 0.0), torch.where(seen, entropy, 0.0)
        score = (self.loss_weight * ce / (ce.sum() / count + EPS)
                 + self.entropy_weight * entropy / (entropy.sum() / count + EPS))
        return torch.where(seen, score, float("inf"))

    def choose(self, scores, generator):
        if self.keep_low > 0:
            passed = scores >= self.controller.threshold
            lucky = torch.rand(scores.shape, generator=generator, device=scores.device) < self.keep_low
            chosen = (passed | lucky).nonzero(as_tuple=True)[0]
            return chosen, torch.where(passed[chosen], 1.0, 1.0 / self.keep_low).to(scores.dtype)
        chosen, _ = select(scores, self.controller.threshold, self.controller.target)
        return chosen, None

    def after_batch(self, rate):
        self.controller.update(rate)

    @property
    def threshold(self):
        return self.controller.threshold

    def settings(self):
        c = self.controller
        return {"target": c.target, "kp": c.kp, "ki": c.ki, "ema_factor": c.ema_factor, "loss_weight": self.loss_weight,
                "entropy_weight": self.entropy_weight, "keep_low": self.keep_low}

    def state_dict(self):
        return {"controller": self.controller.state_dict()}

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
