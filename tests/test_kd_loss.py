import math

import pytest
import torch
import torch.nn.functional as F

from kdlib.distill.kd import KDObjective, kd_loss


def test_hand_worked_case():
    # T = 2; teacher logits [2 ln 3, 0] soften to [3/4, 1/4]; student logits [0, 0] give [1/2, 1/2].
    # KL(p_t || p_s) = 3/4 ln(3/2) + 1/4 ln(1/2); CE(label 0) = ln 2.
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2 * math.log(3), 0.0]])
    y = torch.tensor([0])
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    expected = 0.5 * 4 * kl + 0.5 * math.log(2)
    assert kd_loss(s, t, y, temperature=2.0, alpha=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_soft_term_gradient_is_T_times_probability_gap():
    # d/ds [T^2 KL(p_t || softmax(s/T))] = T (p_s - p_t): here 2 * ([1/2, 1/2] - [3/4, 1/4]) = [-1/2, 1/2].
    s = torch.tensor([[0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[2 * math.log(3), 0.0]])
    kd_loss(s, t, torch.tensor([0]), temperature=2.0, alpha=1.0).backward()
    assert torch.allclose(s.grad, torch.tensor([[-0.5, 0.5]]), atol=1e-6)


@pytest.mark.parametrize("T", [1.0, 4.0, 10.0])
def test_T_squared_keeps_gradient_scale(T):
    # For large T the gap p_s - p_t shrinks like 1/T, so T (p_s - p_t) stays of the same order:
    # the gradient equals T (softmax(s/T) - softmax(t/T)) / batch exactly, for any T.
    torch.manual_seed(0)
    s = torch.randn(8, 10, requires_grad=True)
    t = torch.randn(8, 10) * 3
    kd_loss(s, t, torch.zeros(8, dtype=torch.long), temperature=T, alpha=1.0).backward()
    expected = T * (F.softmax(s.detach() / T, 1) - F.softmax(t / T, 1)) / 8
    assert torch.allclose(s.grad, expected, atol=1e-6)


def test_alpha_zero_is_cross_entropy_and_equal_logits_give_no_soft_loss():
    torch.manual_seed(1)
    s, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    assert kd_loss(s, torch.randn(5, 10), y, alpha=0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert kd_loss(s, s.clone(), y, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_invalid_parameters():
    s = torch.zeros(1, 2)
    with pytest.raises(ValueError):
        kd_loss(s, s, torch.tensor([0]), temperature=0)
    with pytest.raises(ValueError):
        kd_loss(s, s, torch.tensor([0]), alpha=1.5)


def test_objective_freezes_teacher_and_table_matches_live_teacher():
    torch.manual_seed(2)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Dropout(0.5))
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y, index = torch.randn(6, 4), torch.randint(0, 3, (6,)), torch.arange(6)
    live = KDObjective(teacher, temperature=3.0, alpha=0.6)
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()  # the loop's model.train() must not reach the teacher: dropout stays off
    out = live.step(student, x, y, index)
    with torch.no_grad():
        table = teacher.eval()(x)
    cached = KDObjective(None, temperature=3.0, alpha=0.6, teacher_logits=table).step(student, x, y, index)
    assert torch.allclose(out.loss, cached.loss)
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
