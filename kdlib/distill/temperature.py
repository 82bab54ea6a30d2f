"""Meta-temperature scheduler: the distillation temperature adapts each epoch to two measured signals.

After every epoch the loop validates; the scheduler reads
  - progress: the change of validation accuracy since the previous epoch, and
  - gap: KL(teacher || student) at the current temperature on the validation split,
and sets the temperature for the next epoch:

    stalled (progress < min_progress) and far   (gap > gap_high):  T <- T * (1 + step)
    stalled (progress < min_progress) and close (gap <= gap_high): T <- T * (1 - step)
    still progressing:                                              T unchanged
    then T is clipped to [t_min, t_max].

Why: a student that has stopped improving while still far from the teacher's soft distribution gets
softer targets (a higher T spreads the teacher's mass over the wrong classes, the "dark knowledge",
and flattens what must be matched); a student that has matched the teacher and stopped improving gets
sharper targets that put the weight back on the teacher's decisions. While accuracy still rises,
nothing is changed. The first epoch has no previous accuracy and counts as progressing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class MetaTemperature:
    initial: float = 4.0
    t_min: float = 1.0
    t_max: float = 10.0
    step: float = 0.25
    min_progress: float = 0.002  # validation accuracy, as a fraction
    gap_high: float = 0.05  # KL(teacher || student) in nats at the current T

    def __post_init__(self):
        if not 0 < self.t_min <= self.initial <= self.t_max:
            raise ValueError(f"MetaTemperature needs 0 < t_min <= initial <= t_max, got {self.t_min}, "
                             f"{self.initial}, {self.t_max}")
        if not 0 < self.step < 1:
            raise ValueError(f"MetaTemperature step must be in (0, 1), got {self.step}")
        self.temperature = float(self.initial)
        self.previous_accuracy: float | None = None
        self.last_decision = "start"

    def update(self, val_accuracy: float, gap: float) -> float:
        """Record one epoch's signals; return the temperature for the next epoch."""
        progress = math.inf if self.previous_accuracy is None else val_accuracy - self.previous_accuracy
        self.previous_accuracy = val_accuracy
        if progress >= self.min_progress:
            self.last_decision = "progressing: keep"
        elif gap > self.gap_high:
            self.temperature *= 1 + self.step
            self.last_decision = "stalled, far from teacher: soften"
        else:
            self.temperature *= 1 - self.step
            self.last_decision = "stalled, close to teacher: sharpen"
        self.temperature = min(self.t_max, max(self.t_min, self.temperature))
        return self.temperature

    def settings(self) -> dict:
        return {k: v for k, v in asdict(self).items()}

    def state_dict(self) -> dict:
        return {"temperature": self.temperature, "previous_accuracy": self.previous_accuracy,
                "last_decision": self.last_decision}

    def load_state_dict(self, state: dict) -> None:
        self.temperature, self.previous_accuracy = state["temperature"], state["previous_accuracy"]
        self.last_decision = state["last_decision"]


def soft_kl(teacher_probs: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> float:
    """Mean over samples of KL(teacher || student) with the student softened at ``temperature``;
    ``teacher_probs`` are already softened (a single teacher's or a weighted mixture)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    return float((torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * log_s).sum(1).mean())
