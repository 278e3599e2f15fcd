import math

import numpy as np
import pytest
import torch

from onefeed.objectives.rcl import (coarse_to_fine_negatives, contrastive, cumulative_residuals,
                                    rcl_loss, similarity)
from onefeed.objectives.vq import codebook_losses, straight_through

# two items, two levels, 1-d latents: item 0 = (0.5, 0.25), item 1 = (-1, 0.5)
LATENTS = torch.tensor([[[0.5], [0.25]], [[-1.0], [0.5]]])
Q = torch.tensor([[0.75], [-0.5]])


def test_similarity_is_one_minus_squared_distance():
    sim = similarity(torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert sim.tolist() == [1.0, 1.0 - 5.0]
    cos = similarity(torch.tensor([1.0, 0.0]), torch.tensor([[2.0, 0.0], [0.0, 3.0]]), "cosine")
    assert cos.tolist() == pytest.approx([1.0, 0.0])


def test_cumulative_residuals_sum_and_stop_gradient():
    lat = LATENTS.clone().requires_grad_(True)
    t = cumulative_residuals(lat)
    assert t[:, :, 0].tolist() == [[0.5, 0.75], [-1.0, -0.5]]
    t[:, 1].sum().backward()  # level 1 only: sg[d1] + d2 -> no gradient to d1
    assert lat.grad[:, 0].abs().sum() == 0 and lat.grad[:, 1].tolist() == [[1.0], [1.0]]


def test_rcl_matches_hand_computed_infonce():
    # level 0 targets 0.5 / -1: sims q0 (0.9375, -2.0625), q1 (0, 0.75)
    level0 = (math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-0.75))) / 2
    # level 1 targets 0.75 / -0.5: sims q0 (1, -0.5625), q1 (-0.5625, 1)
    level1 = math.log1p(math.exp(-1.5625))
    total, levels = rcl_loss(Q, LATENTS, temperature=1.0)
    assert levels.tolist() == pytest.approx([level0, level1], abs=1e-6)
    assert total.item() == pytest.approx(level0 + level1, abs=1e-6)
    weighted, _ = rcl_loss(Q, LATENTS, temperature=0.5, level_weights=[0.0, 2.0])
    assert weighted.item() == pytest.approx(2 * math.log1p(math.exp(-1.5625 / 0.5)), abs=1e-6)


def test_rcl_level_gradient_reaches_only_its_residual():
    lat = LATENTS.clone().requires_grad_(True)
    total, _ = rcl_loss(Q, lat, 1.0, level_weights=[0.0, 1.0])
    total.backward()
    assert lat.grad[:, 0].abs().sum() == 0 and lat.grad[:, 1].abs().sum() > 0


def test_contrastive_masks_in_batch_duplicates_and_adds_hard_negatives():
    q, d = torch.tensor([[0.0], [0.0]]), torch.tensor([[0.0], [0.0]])
    same = torch.ones(2, 2, dtype=torch.bool)  # both rows are the same item
    assert contrastive(q, d, 1.0, same=same).item() == pytest.approx(0.0, abs=1e-6)
    assert contrastive(q, d, 1.0).item() == pytest.approx(math.log(2), abs=1e-6)
    hard = torch.tensor([[[1.0]], [[1.0]]])  # sim 0 against the positive's 1
    got = contrastive(q, d, 1.0, hard=hard, same=same).item()
    assert got == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)


def test_rcl_hard_negatives_use_their_own_cumulative_target():
    q = torch.tensor([[0.75]])
    lat = torch.tensor([[[0.5], [0.25]]])
    hard = [None, torch.tensor([[[[-1.0], [0.5]]]])]  # (N=1, H=1, L=2, D=1): target -0.5
    _, levels = rcl_loss(q, lat, 1.0, hard=hard)
    assert levels[0].item() == pytest.approx(0.0, abs=1e-6)  # one row, no negative
    assert levels[1].item() == pytest.approx(math.log1p(math.exp(-1.5625)), abs=1e-6)


def test_coarse_to_fine_negatives_get_harder_by_level():
    neighbours = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
    rng = np.random.default_rng(0)
    out = coarse_to_fine_negatives(neighbours, np.array([0, 2]), n_levels=3, n_neg=50, rng=rng)
    assert out[0] is None
    assert set(out[1][0]) == {1, 2, 3} and set(out[1][1]) == {3, 0, 1}  # whole list, not self
    assert set(out[2][0]) == {1} and set(out[2][1]) == {3}  # nearest half only
    assert coarse_to_fine_negatives(neighbours, np.array([0]), 2, 0, rng) == [None, None]


def test_codebook_losses_and_straight_through():
    d = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]], requires_grad=True)
    e = torch.tensor([[[0.0, 0.0]], [[0.0, 1.0]]], requires_grad=True)
    book, commit = codebook_losses(d, e)
    assert book.item() == commit.item() == pytest.approx((1.0 + 1.0) / 2)
    (book + 2 * commit).backward()
    assert d.grad.tolist() == [[[2.0, 0.0]], [[0.0, 2.0]]]  # only the commitment term
    assert e.grad.tolist() == [[[-1.0, 0.0]], [[0.0, -1.0]]]  # only the codebook term
    x = torch.tensor([0.3], requires_grad=True)
    y = straight_through(x, torch.tensor([1.0]))
    y.backward()
    assert y.item() == 1.0 and x.grad.item() == 1.0


def test_cosine_contrastive_equals_the_alignment_info_nce():
    from onefeed.objectives.alignment import info_nce

    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert contrastive(q, d, 0.1, kind="cosine").item() == pytest.approx(
        info_nce(q, d, 0.1).item(), rel=1e-5)
