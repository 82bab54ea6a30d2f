"""Attention-weighted multi-teacher distillation: per-sample weights over K teachers.

For sample x with label y, teacher k's score is its confidence in the true class plus its agreement
with the others, both at the distillation temperature T:

    s_k(x) = log p_k(y | x)  -  KL(p_mean(x) || p_k(x)),      p_mean = mean over teachers of p_k

and the weights are the maximiser of  sum_k w_k s_k + tau * H(w)  over the simplex, i.e.

    w(x) = softmax(s(x) / tau).

tau is the strength of the entropy regulariser: large tau -> equal weights; small tau -> all weight on
the best-scoring teacher. A teacher that is always wrong has a very low log p_k(y|x), so it ends up
with almost no weight. The student then matches the mixture sum_k w_k p_k at temperature T. Weights
are computed without gradients (teachers are frozen; the student does not steer its own targets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def teacher_weights(teacher_logits: torch.Tensor, targets: torch.Tensor, temperature: float,
                    tau: float = 1.0) -> torch.Tensor:
    """teacher_logits [K, B, C] -> weights [B, K] (rows sum to 1)."""
    if tau <= 0:
        raise ValueError(f"tau (entropy regulariser strength) must be > 0, got {tau}")
    log_p = F.log_softmax(teacher_logits.float() / temperature, dim=2)  # [K, B, C]
    p = log_p.exp()
    p_mean = p.mean(0)  # [B, C]
    confidence = log_p.gather(2, targets.view(1, -1, 1).expand(len(log_p), -1, 1)).squeeze(2)  # [K, B]
    disagreement = (torch.xlogy(p_mean, p_mean).unsqueeze(0) - p_mean.unsqueeze(0) * log_p).sum(2)  # [K, B]
    return F.softmax((confidence - disagreement).t() / tau, dim=1)


def mixture_probs(teacher_logits: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """sum_k w_k softmax(t_k / T): [K, B, C] and [B, K] -> [B, C]."""
    p = F.softmax(teacher_logits.float() / temperature, dim=2)
    return torch.einsum("kbc,bk->bc", p, weights.float())


def multi_teacher_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                          temperature: float, alpha: float, tau: float = 1.0,
                          label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha * T^2 * KL(mixture || student at T) + (1 - alpha) * CE; returns (loss, weights [B, K])."""
    weights = teacher_weights(teacher_logits, targets, temperature, tau)
    target = mixture_probs(teacher_logits, weights, temperature)
    s = student_logits.float()
    log_s = F.log_softmax(s / temperature, dim=1)
    soft = (torch.xlogy(target, target) - target * log_s).sum(1).mean()
    hard = F.cross_entropy(s, targets, label_smoothing=label_smoothing)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard, weights
