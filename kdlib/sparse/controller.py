"""The PI controller that sets the significance threshold so that a target fraction of samples is selected.

It acts on an exponential moving average of the per-batch activation rate (the fraction of a batch whose
score passes the threshold), never on the rate averaged since the start of training: an average since the
start reacts ever more slowly as training goes on, which is how the AST this project grew from lost track.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass
class PIController:
    """threshold = clamp(base + kp * e + ki * sum(e)), e = EMA(activation rate) - target.

    Too many samples passing (e > 0) raises the threshold. Anti-windup by conditional integration: while
    the output sits at a bound, errors that would push it further out are not integrated, so the
    controller answers at once when the stream comes back.
    """

    target: float = 0.10
    kp: float = 2.0  # kp, ki, ema_factor: tuned on scripted streams (tests/test_sparse_controller.py)
    ki: float = 0.5
    ema_factor: float = 0.2  # weight of the newest batch in the EMA of the activation rate
    base: float = 1.0  # significance is normalised to a batch mean of 1 (see significance.py)
    min_threshold: float = 0.0
    max_threshold: float = 10.0  # scores have batch mean 1: at most a tenth of a batch can pass 10
    # state
    integral: float = 0.0
    rate_ema: float | None = None
    threshold: float = 1.0

    def __post_init__(self):
        if not 0.0 < self.target <= 1.0:
            raise ValueError(f"target activation rate must be in (0, 1], got {self.target}")
        if not 0.0 < self.ema_factor <= 1.0:
            raise ValueError(f"ema_factor must be in (0, 1], got {self.ema_factor}")
        if self.kp < 0 or self.ki < 0 or self.min_threshold >= self.max_threshold:
            raise ValueError("kp and ki must be >= 0 and min_threshold < max_threshold")

    def update(self, batch_rate: float) -> float:
        """Feed one batch's activation rate; returns the threshold for the next batch."""
        self.rate_ema = batch_rate if self.rate_ema is None else (
            (1 - self.ema_factor) * self.rate_ema + self.ema_factor * batch_rate)
        error = self.rate_ema - self.target
        integral = self.integral + error
        raw = self.base + self.kp * error + self.ki * integral
        clamped = min(self.max_threshold, max(self.min_threshold, raw))
        if clamped == raw or (raw > self.max_threshold) != (error > 0):
            self.integral = integral  # integrate only when it does not drive further into the bound
        self.threshold = clamped
        return clamped

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def select(scores: torch.Tensor, threshold: float, target: float, min_fraction: float | None = None):
    """Indices of the samples to learn from, and the activation rate: the fraction of the batch selected.

    Samples with score >= threshold are selected. When fewer than ``min_fraction`` of the batch pass
    (default: half the target), the top ``min_fraction`` by score are taken instead, so a batch never goes
    without a learning step. The controller regulates this realised rate: a fallback batch counts as
    ``min_fraction`` < target, which lowers the threshold, so the mean over batches meets the target even
    when scores bunch up around the threshold and batches flip between "few pass" and "many pass".
    """
    n = scores.numel()
    min_fraction = target / 2 if min_fraction is None else min_fraction
    passed = scores >= threshold
    floor = max(1, math.ceil(min_fraction * n))
    if int(passed.sum()) < floor:
        return torch.topk(scores, floor).indices, floor / n
    chosen = passed.nonzero(as_tuple=True)[0]
    return chosen, len(chosen) / n


def replay(stream, **controller_settings) -> tuple[list[float], list[float]]:
    """Run a fresh controller over a recorded stream of per-batch significance scores.

    Returns the per-batch pass rates and the threshold after each batch: what the controller would have
    done with these settings on this stream (the notebook's simulator)."""
    controller = PIController(**controller_settings)
    rates, thresholds = [], []
    for scores in stream:
        _, rate = select(torch.as_tensor(scores), controller.threshold, controller.target)
        rates.append(rate)
        thresholds.append(controller.update(rate))
    return rates, thresholds
