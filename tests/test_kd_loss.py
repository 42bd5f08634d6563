"""Hinton's KD loss against its formula, computed independently here."""

import math

import torch

from kdcore.distill import KD, Batch, kd_loss


def reference_kd(student, teacher, labels, T, alpha):
    """(1-a)*CE + a*T^2*KL(p_t || p_s), batch mean, written out by hand in float64."""
    total_ce, total_kl = 0.0, 0.0
    for s_row, t_row, y in zip(student.tolist(), teacher.tolist(), labels.tolist()):
        z = sum(math.exp(v) for v in s_row)
        total_ce += -(s_row[y] - math.log(z))
        zs = sum(math.exp(v / T) for v in s_row)
        zt = sum(math.exp(v / T) for v in t_row)
        ps = [math.exp(v / T) / zs for v in s_row]
        pt = [math.exp(v / T) / zt for v in t_row]
        total_kl += sum(p * (math.log(p) - math.log(q)) for p, q in zip(pt, ps))
    n = len(labels)
    return (1 - alpha) * total_ce / n + alpha * T * T * total_kl / n


def test_kd_matches_formula_including_t_squared_and_alpha():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(5, 4, generator=g) * 3
    teacher = torch.randn(5, 4, generator=g) * 3
    labels = torch.tensor([0, 3, 1, 2, 3])
    for T in (1.0, 2.0, 4.0, 7.5):
        for alpha in (0.0, 0.3, 0.9, 1.0):
            terms = KD(T, alpha).loss_terms(
                student, Batch(x=student, y=labels, index=torch.arange(5), teacher_logits=teacher)
            )
            got = float(sum(terms.values()))
            assert math.isclose(got, reference_kd(student, teacher, labels, T, alpha), rel_tol=1e-5), (T, alpha)


def test_kd_term_scales_with_t_squared():
    student, teacher = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[0.2, 1.0, 3.0]])
    T = 3.0
    unscaled = torch.nn.functional.kl_div(
        torch.log_softmax(student / T, 1), torch.softmax(teacher / T, 1), reduction="batchmean"
    )
    assert torch.isclose(kd_loss(student, teacher, T), unscaled * T * T)


def test_kd_is_zero_when_student_equals_teacher():
    logits = torch.randn(8, 10)
    assert float(kd_loss(logits, logits.clone(), 4.0)) < 1e-6


def test_gradients_reach_the_student_only():
    student = torch.randn(6, 5, requires_grad=True)
    teacher = torch.randn(6, 5, requires_grad=True)
    labels = torch.randint(0, 5, (6,))
    terms = KD(4.0, 0.7).loss_terms(student, Batch(x=student, y=labels, index=torch.arange(6), teacher_logits=teacher))
    sum(terms.values()).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
