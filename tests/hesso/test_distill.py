"""Distillation: a frozen teacher, the KL term at temperature T, and a loss that can fail."""

import pytest
import torch
import torch.nn.functional as F

from hesso import Teacher, distillation_loss, feature_loss


def test_the_teacher_is_a_frozen_copy():
    student = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    teacher = Teacher(student)
    assert teacher.model is not student and not any(p.requires_grad for p in teacher.model.parameters())
    student.train()
    x = torch.randn(5, 4)
    a, b = teacher(x), teacher(x)
    assert torch.equal(a, b) and not a.requires_grad  # eval mode (no dropout), no graph
    with torch.no_grad():
        student[0].weight.add_(1.0)
    assert torch.equal(teacher(x), a)  # training the student leaves the teacher as it was


def test_the_loss_is_kl_at_temperature_plus_cross_entropy():
    s, t, y = torch.randn(6, 5), torch.randn(6, 5), torch.randint(0, 5, (6,))
    T, alpha = 3.0, 0.7
    p_t = F.softmax(t / T, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    want = alpha * kl + (1 - alpha) * F.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, temperature=T, alpha=alpha), want, atol=1e-6)
    assert torch.allclose(distillation_loss(t, t, temperature=T), torch.zeros(()), atol=1e-6)
    assert torch.allclose(distillation_loss(s, t, temperature=T), kl, atol=1e-6)
    tokens = torch.randn(2, 7, 5)  # token logits of a language model: classes last
    assert distillation_loss(tokens, tokens.flip(1)).item() > 0
    with pytest.raises(ValueError):
        distillation_loss(s, t, temperature=0)


def test_feature_loss():
    a = torch.randn(4, 16)
    assert feature_loss(a, a).abs() < 1e-6 and feature_loss(a, -a) > 1.9
    assert torch.allclose(feature_loss(a, 2 * a, "mse"), (a * a).mean())
