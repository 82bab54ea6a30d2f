"""Classic knowledge distillation (Hinton, Vinyals & Dean, 2015).

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

The T^2 factor keeps the soft term's gradient at the same scale whatever T: the gradient of the KL
term with respect to a student logit is (p_s - p_t) / T, so T^2 brings it back to T (p_s - p_t),
comparable with the cross-entropy's (p - y). Defaults T = 4, alpha = 0.7 (70% of the weight on the
teacher's softened distribution), common choices for MNIST-sized problems.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..objective import Objective, StepOutput
from .teacher_source import TeacherSource

DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.7


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
            temperature: float = DEFAULT_TEMPERATURE, alpha: float = DEFAULT_ALPHA,
            label_smoothing: float = 0.0, per_sample: bool = False) -> torch.Tensor:
    """Hinton KD loss, averaged over the batch (``per_sample``: one value per sample, whose mean is the batch's).
    Computed in float32 whatever the autocast dtype."""
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"kd_loss needs temperature > 0 and 0 <= alpha <= 1, got T={temperature}, alpha={alpha}")
    s, t = student_logits.float(), teacher_logits.float()
    soft = F.kl_div(F.log_softmax(s / temperature, dim=1), F.log_softmax(t / temperature, dim=1),
                    reduction="none" if per_sample else "batchmean", log_target=True)
    if per_sample:
        soft = soft.sum(1)
    hard = F.cross_entropy(s, targets, label_smoothing=label_smoothing, reduction="none" if per_sample else "mean")
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


class KDObjective(Objective):
    """Student learns from a frozen teacher (eval mode, no gradients) and the labels.

    ``teacher``: a ``TeacherSource`` (``teacher_source.teacher_source`` chooses a table or the live model), or
    the teacher model, whose table ``teacher_logits`` (indexed by dataset position) replaces its forward when
    given; live, the teacher sees the same augmented batch as the student, under the loop's autocast.
    """

    name = "kd"

    def __init__(self, teacher: TeacherSource | nn.Module | None, temperature: float = DEFAULT_TEMPERATURE,
                 alpha: float = DEFAULT_ALPHA, label_smoothing: float = 0.0, teacher_logits: torch.Tensor | None = None):
        super().__init__(label_smoothing)
        if teacher is None and teacher_logits is None:
            raise ValueError("KDObjective needs a teacher model or a table of its logits")
        self.teacher = (teacher if isinstance(teacher, TeacherSource)
                        else TeacherSource("teacher", model=teacher, table=teacher_logits))
        self.temperature, self.alpha = temperature, alpha

    def settings(self) -> dict:
        return {**super().settings(), "temperature": self.temperature, "alpha": self.alpha}

    def step(self, model, x, y, index) -> StepOutput:
        t = self.teacher(x, index)
        s = model(x)
        return StepOutput(kd_loss(s, t, y, self.temperature, self.alpha, self.label_smoothing), s, y)

    def per_sample_loss(self, logits, y, index, x=None):
        if self.teacher.table is None and x is None:
            raise ValueError("KDObjective.per_sample_loss needs the inputs x for its live teacher")
        return kd_loss(logits, self.teacher(x, index), y, self.temperature, self.alpha, self.label_smoothing,
                       per_sample=True)
