"""List-wise softmax DPO (OneBar Eq. 9) on hand-computed lists."""

import math

import pytest
import torch

from onefeed.objectives.listwise import ordinal_softmax_dpo, softmax_dpo


def nll_sigmoid(x: float) -> float:
    """-log sigmoid(x)."""
    return math.log1p(math.exp(-x))


def test_two_candidates_is_pairwise_dpo():
    policy = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.5]])  # r = [0.5, -0.5]
    got = softmax_dpo(policy, ref, torch.tensor([[True, False]]), beta=0.5)
    assert got.item() == pytest.approx(nll_sigmoid(0.5 * (0.5 - (-0.5))), abs=1e-6)
    assert got.item() == pytest.approx(0.474077, abs=1e-6)


def test_three_candidates_by_hand():
    policy = torch.tensor([[0.0, 1.0, -1.0]])
    ref = torch.zeros(1, 3)  # r = policy; chosen 0: sum_j exp(r_j - r_0) = e + 1/e
    got = softmax_dpo(policy, ref, torch.tensor([[True, False, False]]), beta=1.0)
    want = nll_sigmoid(-math.log(math.e + 1 / math.e))
    assert got.item() == pytest.approx(want, abs=1e-6)
    assert want == pytest.approx(1.407606, abs=1e-6)


def test_gradient_raises_the_chosen_and_lowers_the_rest():
    policy = torch.tensor([[-2.0, -1.0, -3.0]], requires_grad=True)
    loss = softmax_dpo(policy, torch.full((1, 3), -2.0), torch.tensor([[False, True, False]]),
                       beta=0.1)
    loss.backward()
    g = policy.grad[0]
    assert g[1] < 0 < g[0] and g[2] > 0  # descent raises the chosen, lowers the others
    assert g.sum().item() == pytest.approx(0.0, abs=1e-7)  # only differences of r matter


def test_padding_is_neither_anchor_nor_alternative():
    policy = torch.tensor([[0.0, -1.0, 50.0], [0.0, 1.0, 0.0]])
    ref = torch.zeros(2, 3)
    pref = torch.tensor([[True, False, False], [False, True, True]])
    valid = torch.tensor([[True, True, False], [True, True, False]])
    got = softmax_dpo(policy, ref, pref, beta=1.0, valid=valid)
    want = (nll_sigmoid(1.0) + nll_sigmoid(1.0)) / 2  # row 0: r_w - r_l = 1; row 1: 1 - 0
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_no_alternative_gives_zero_with_a_graph():
    policy = torch.tensor([[0.0, 1.0]], requires_grad=True)
    got = softmax_dpo(policy, torch.zeros(1, 2), torch.tensor([[True, True]]), beta=1.0)
    assert got.item() == 0.0 and got.requires_grad


def test_ordinal_levels_by_hand():
    """Levels [1, 2, 5]: level 1 against {2, 5}, level 2 (a click) against {5}; 5 no anchor."""
    r = torch.tensor([[0.0, -1.0, 1.0]])
    got = ordinal_softmax_dpo(r, torch.zeros(1, 3), torch.tensor([[1, 2, 5]]), beta=1.0)
    a0 = nll_sigmoid(-math.log(math.exp(-1.0) + math.exp(1.0)))
    a1 = nll_sigmoid(-math.log(math.exp(1.0 - (-1.0))))
    assert got.item() == pytest.approx((a0 + a1) / 2, abs=1e-6)
    # equal levels never compete: two clicks of one level and nothing lower -> no loss
    same = ordinal_softmax_dpo(r[:, :2], torch.zeros(1, 2), torch.tensor([[2, 2]]), beta=1.0)
    assert same.item() == 0.0
