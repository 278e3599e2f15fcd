"""OneFeed's cross-task losses and the gradient-norm scales on 2-3 row hand-computed cases."""

import math

import torch

from onefeed.objectives.alignment import bpr, info_nce, sequence_log_prob
from onefeed.objectives.balance import ema, equalising_scales


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # cosine: row 0 [1, 1/sqrt2], row 1 [0, 1/sqrt2]
    r = 1 / math.sqrt(2)
    # tau = 0.5: row 0 logits [2, 2r] (positive 2), row 1 logits [0, 2r] (positive 2r)
    row0 = math.log(1 + math.exp(2 * r - 2))
    row1 = math.log(1 + math.exp(-2 * r))
    got = info_nce(a, b, 0.5)
    assert abs(got.item() - (row0 + row1) / 2) < 1e-6
    assert abs((row0 + row1) / 2 - 0.330085) < 1e-5
    # cosine similarity: scaling either side changes nothing
    torch.testing.assert_close(info_nce(3 * a, 0.5 * b, 0.5), got)


def test_info_nce_lower_when_the_positive_is_the_nearest():
    a = torch.eye(3)
    assert info_nce(a, a, 0.1) < info_nce(a, a.flip(0), 0.1)


def test_bpr_by_hand():
    pos, neg = torch.tensor([2.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 3.0])
    want = (math.log(1 + math.exp(-2)) + math.log(2) + math.log(1 + math.exp(2))) / 3
    assert abs(bpr(pos, neg).item() - want) < 1e-6
    assert abs(want - 0.982334) < 1e-5


def test_sequence_log_prob_sums_the_levels():
    logits = [torch.tensor([[0.0, math.log(3)], [0.0, 0.0]]),
              torch.tensor([[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0]])]
    codes = torch.tensor([[1, 2], [0, 0]])
    got = sequence_log_prob(logits, codes)
    want = torch.tensor([math.log(0.75) + math.log(1 / 3), math.log(0.5) + math.log(0.5)])
    torch.testing.assert_close(got, want)


def test_equalising_scales_by_hand():
    norms = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    weights = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    s = equalising_scales(norms, weights)  # w * g = [1, 2, 2], mean 5/3
    torch.testing.assert_close(s, torch.tensor([5 / 3, 5 / 6, 5 / 6], dtype=torch.float64))
    torch.testing.assert_close(s * weights * norms, torch.full((3,), 5 / 3, dtype=torch.float64))
    # a task with no gradient keeps scale 1 and does not enter the mean
    torch.testing.assert_close(equalising_scales(torch.tensor([0.0, 2.0]), torch.ones(2)),
                               torch.tensor([1.0, 1.0]))


def test_ema_by_hand():
    torch.testing.assert_close(ema(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0]), 0.25),
                               torch.tensor([1.5, 1.5]))
