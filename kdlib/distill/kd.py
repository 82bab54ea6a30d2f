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

from ..data.device_loader import DeviceLoader
from ..train import Objective, StepOutput

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


@torch.no_grad()
def precompute_teacher_logits(teacher: nn.Module, loader: DeviceLoader, precision=None) -> torch.Tensor:
    """Teacher logits for every sample of an un-augmented, un-shuffled loader, in dataset order, on its device.

    Valid only when the student sees exactly these inputs, i.e. training without augmentation: then the
    frozen teacher's answer for a sample never changes and one pass replaces one teacher forward per step.
    """
    from ..evaluate import predict_logits

    logits, _ = predict_logits(teacher, loader, precision)
    return logits.to(loader.device)


class KDObjective(Objective):
    """Student learns from a frozen teacher (eval mode, no gradients) and the labels.

    With ``teacher_logits`` (a table indexed by dataset position, see ``precompute_teacher_logits``)
    no teacher forward runs during training; otherwise the teacher sees the same augmented batch as the
    student, under the loop's autocast.
    """

    name = "kd"

    def __init__(self, teacher: nn.Module | None, temperature: float = DEFAULT_TEMPERATURE, alpha: float = DEFAULT_ALPHA,
                 label_smoothing: float = 0.0, teacher_logits: torch.Tensor | None = None):
        super().__init__(label_smoothing)
        if teacher is None and teacher_logits is None:
            raise ValueError("KDObjective needs a teacher model or a table of its logits")
        self.teacher, self.teacher_logits = teacher, teacher_logits
        self.temperature, self.alpha = temperature, alpha
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)

    def settings(self) -> dict:
        return {**super().settings(), "temperature": self.temperature, "alpha": self.alpha}

    def teacher_output(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if self.teacher_logits is not None:
            return self.teacher_logits[index]
        self.teacher.eval()  # the loop puts "the model" in train mode; the teacher always stays in eval
        with torch.no_grad():
            return self.teacher(x)

    def step(self, model, x, y, index) -> StepOutput:
        t = self.teacher_output(x, index)
        s = model(x)
        return StepOutput(kd_loss(s, t, y, self.temperature, self.alpha, self.label_smoothing), s, y)

    def per_sample_loss(self, logits, y, index, x=None):
        if self.teacher_logits is None and x is None:
            raise ValueError("KDObjective.per_sample_loss needs the inputs x for its teacher (or a teacher_logits table)")
        return kd_loss(logits, self.teacher_output(x, index), y, self.temperature, self.alpha, self.label_smoothing,
                       per_sample=True)
