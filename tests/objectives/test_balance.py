"""PCGrad on hand-made task gradients (Yu et al. 2020, Alg. 1)."""

import numpy as np
import pytest
import torch

from onefeed.objectives.balance import pcgrad, pcgrad_coefficients


def reference_pcgrad(grads: np.ndarray, order: list[int]) -> np.ndarray:
    """Yu et al.'s Algorithm 1 on explicit vectors (projections on the original g_j)."""
    out = []
    for i, g in enumerate(grads):
        gi = g.astype(np.float64).copy()
        for j in order:
            if j != i and gi @ grads[j] < 0:
                gi -= (gi @ grads[j]) / (grads[j] @ grads[j]) * grads[j]
        out.append(gi)
    return np.sum(out, axis=0)


def test_two_conflicting_gradients_are_projected_onto_each_others_normal_plane():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # g1 . g2 = -1 < 0
    # g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1 = (0, 1); sum (0.5, 1.5)
    torch.testing.assert_close(pcgrad(g, [0, 1]), torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(pcgrad(g, [1, 0]), torch.tensor([0.5, 1.5]))
    a, made = pcgrad_coefficients(g.double() @ g.double().t(), [0, 1])
    torch.testing.assert_close(a, torch.tensor([2.0, 1.5], dtype=torch.float64))  # 2 g1 + 1.5 g2
    assert made == 2
    # the projected gradients no longer conflict with the other task's gradient
    g1p, g2p = torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])
    assert float(g1p @ g[1]) == 0.0 and float(g2p @ g[0]) == 0.0


def test_non_conflicting_gradients_are_summed_unchanged():
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(pcgrad(g, [0, 1]), torch.tensor([2.0, 1.0]))
    a, made = pcgrad_coefficients(g.double() @ g.double().t(), [1, 0])
    assert made == 0 and a.tolist() == [1.0, 1.0]


def test_a_zero_gradient_neither_projects_nor_is_projected():
    g = torch.tensor([[0.0, 0.0], [-1.0, 1.0], [1.0, 0.0]])
    want = reference_pcgrad(g[1:].numpy(), [0, 1])
    torch.testing.assert_close(pcgrad(g, [0, 1, 2]).double(), torch.as_tensor(want))


@pytest.mark.parametrize("seed", range(5))
def test_many_tasks_match_the_explicit_algorithm_and_depend_on_the_order(seed):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(5, 7))
    order = list(rng.permutation(5))
    got = pcgrad(torch.as_tensor(g), order).numpy()
    np.testing.assert_allclose(got, reference_pcgrad(g, order), rtol=1e-10, atol=1e-12)
    outs = {tuple(np.round(pcgrad(torch.as_tensor(g), list(o)).numpy(), 8))
            for o in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3])}
    assert len(outs) > 1 or not (g @ g.T < 0).any()  # the order matters once gradients conflict
