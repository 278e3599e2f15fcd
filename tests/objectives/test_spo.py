import math

import pytest
import torch

from onefeed.objectives.spo import group_advantages, spo_loss, token_kl


def test_group_advantages_normalise_within_each_group():
    adv = group_advantages(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    s = math.sqrt(2 / 3)
    assert adv[0].tolist() == pytest.approx([-1 / s, 0.0, 1 / s])
    assert adv[1].tolist() == [0.0, 0.0, 0.0]  # no preference inside the group


def test_token_kl_is_zero_when_equal_and_positive_otherwise():
    a = torch.log(torch.tensor([0.5, 0.5, 0.2]))
    b = torch.log(torch.tensor([0.5, 0.25, 0.4]))
    kl = token_kl(a, b)
    assert kl.tolist() == pytest.approx([0.0, 0.5 + math.log(2) - 1, 2 - math.log(2) - 1])


def _case():
    logp = torch.log(torch.tensor([[[0.5, 0.4], [0.2, 0.1]]])).requires_grad_(True)  # (1, 2, 2)
    ref = torch.log(torch.tensor([[[0.25, 0.4], [0.2, 0.2]]]))
    return logp, ref, torch.tensor([[1.0, -1.0]])


def test_spo_loss_value_and_gradient_signs():
    logp, ref, adv = _case()
    beta = 0.1
    loss = spo_loss(logp, adv, ref, beta)
    # ratio 1: -(1/2)[(1 - b kl00 + 1)/2 + (-1 - 1 - b kl11)/2], kl00 + kl11 = 0.5 exactly
    assert loss.item() == pytest.approx(beta * 0.5 / 4, abs=1e-6)
    loss.backward()
    g = logp.grad[0]
    # d/dlogp = -(1/(G k)) (A - beta (1 - pi_ref/pi))
    assert g[0, 0].item() == pytest.approx(-(1 - beta * 0.5) / 4, abs=1e-6)
    assert g[1, 1].item() == pytest.approx(-(-1 + beta) / 4, abs=1e-6)
    assert (g[0] < 0).all() and (g[1] > 0).all()  # descent raises the better candidate


def test_spo_loss_clip_stops_the_gradient_past_the_trust_region():
    logp, ref, adv = _case()
    old = logp.detach() - math.log(2)  # ratio 2 everywhere
    loss = spo_loss(logp, adv, logp.detach(), 0.0, old_logp=old, clip=0.2)
    # A=+1: min(2, 1.2) = 1.2 (clipped, no grad); A=-1: min(-2, -1.2) = -2 (unclipped)
    assert loss.item() == pytest.approx(-(1.2 - 2.0) / 2, abs=1e-6)
    loss.backward()
    assert logp.grad[0, 0].abs().sum() == 0 and (logp.grad[0, 1] > 0).all()


def test_spo_loss_mask_drops_missing_candidates():
    logp, ref, adv = _case()
    mask = torch.tensor([[[True, True], [False, False]]])
    got = spo_loss(logp, adv, ref, 0.1, mask=mask).item()
    kl00 = 0.5 + math.log(2) - 1
    assert got == pytest.approx(-(1 - 0.1 * kl00 + 1) / 2, abs=1e-6)
