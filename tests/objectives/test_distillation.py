"""Token-level distillation divergences on a 2-token vocabulary, by hand."""

import math

import pytest
import torch

from onefeed.objectives.distillation import forward_kl, jsd, neg_entropy, reverse_kl

STUDENT = torch.tensor([[math.log(3.0), 0.0]])  # q = [0.75, 0.25]
TEACHER = torch.tensor([[0.0, 0.0]])  # p = [0.5, 0.5]


def kl(a: list[float], b: list[float]) -> float:
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def test_zero_when_equal():
    logits = torch.randn(3, 4, 7)
    for fn in (forward_kl, reverse_kl, jsd):
        assert fn(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_two_token_values_and_asymmetry():
    p, q = [0.5, 0.5], [0.75, 0.25]
    fkl, rkl = forward_kl(STUDENT, TEACHER).item(), reverse_kl(STUDENT, TEACHER).item()
    assert fkl == pytest.approx(kl(p, q), abs=1e-6) and fkl == pytest.approx(0.143841, abs=1e-6)
    assert rkl == pytest.approx(kl(q, p), abs=1e-6) and rkl == pytest.approx(0.130812, abs=1e-6)
    assert fkl != pytest.approx(rkl, abs=1e-3)
    # swapping the roles swaps the directions
    assert reverse_kl(TEACHER, STUDENT).item() == pytest.approx(fkl, abs=1e-6)


def test_jsd_by_hand():
    p, q, m = [0.5, 0.5], [0.75, 0.25], [0.625, 0.375]
    want = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert jsd(STUDENT, TEACHER).item() == pytest.approx(want, abs=1e-6)
    assert want == pytest.approx(0.033822, abs=1e-6)
    assert jsd(TEACHER, STUDENT).item() == pytest.approx(want, abs=1e-6)  # symmetric at 0.5
    m9 = [0.9 * a + 0.1 * b for a, b in zip(p, q)]
    assert jsd(STUDENT, TEACHER, beta=0.9).item() == pytest.approx(
        0.9 * kl(p, m9) + 0.1 * kl(q, m9), abs=1e-6)
    with pytest.raises(ValueError, match="beta"):
        jsd(STUDENT, TEACHER, beta=1.0)


def test_mask_averages_over_valid_tokens_only():
    student = torch.stack([STUDENT[0], torch.tensor([5.0, -5.0]), STUDENT[0]]).unsqueeze(0)
    teacher = torch.stack([TEACHER[0], torch.tensor([-5.0, 5.0]), TEACHER[0]]).unsqueeze(0)
    mask = torch.tensor([[True, False, True]])
    assert forward_kl(student, teacher, mask).item() == pytest.approx(0.143841, abs=1e-6)
    none = forward_kl(student, teacher, torch.zeros(1, 3, dtype=torch.bool))
    assert none.item() == 0.0


def test_forward_kl_gradient_is_q_minus_p():
    s = STUDENT.clone().requires_grad_(True)
    forward_kl(s, TEACHER).backward()
    torch.testing.assert_close(s.grad, torch.tensor([[0.25, -0.25]]))


def test_neg_entropy_by_hand():
    q = [0.75, 0.25]
    assert neg_entropy(STUDENT).item() == pytest.approx(sum(x * math.log(x) for x in q), abs=1e-6)
