"""Multi-task gradient balancing.

* Per-task loss scaling from gradient norms: a cheap stand-in for GradNorm (Chen et al. 2018).
  Instead of learning the weights with their own loss, every few steps each task's gradient
  norm on the shared encoder is measured and the task scales move (EMA) towards the values
  that would make every weighted task gradient equally large.
* PCGrad (Yu et al. 2020): conflicting task gradients are projected onto each other's normal
  planes before they are summed, computed from the tasks' Gram matrix alone."""

from __future__ import annotations

import torch


def equalising_scales(norms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scales s_k such that s_k * w_k * g_k is the same for every task (their mean value of
    w_k * g_k). norms g (K,) gradient norms of the unweighted task losses, weights w (K,)
    -> (K,); a task with no gradient (g = 0) keeps scale 1."""
    wg = weights * norms
    live = wg > 0
    target = wg[live].mean() if live.any() else wg.new_ones(())
    return torch.where(live, target / wg.clamp(min=torch.finfo(wg.dtype).tiny), 1.0)


def ema(old: torch.Tensor, new: torch.Tensor, momentum: float) -> torch.Tensor:
    """(1 - momentum) * old + momentum * new."""
    return (1 - momentum) * old + momentum * new


def pcgrad_coefficients(gram: torch.Tensor, order: list[int]) -> tuple[torch.Tensor, int]:
    """PCGrad (Yu et al. 2020, "Gradient surgery for multi-task learning") in the span of
    the task gradients.

    ``gram`` (K, K) holds the dot products g_i . g_j of K task gradients; ``order`` is the
    step's random task order. Each task i starts from g_i and, for every other task j in
    ``order`` whose (original) gradient it conflicts with (g_i^PC . g_j < 0), is projected
    onto g_j's normal plane: g_i^PC -= (g_i^PC . g_j) / |g_j|^2 g_j. Every g_i^PC stays a
    combination sum_k C[i, k] g_k, so the sum of the projected gradients is sum_k a_k g_k
    with a = C.sum(0). Returns (a (K,), number of projections made); a task with a zero
    gradient projects nothing and is never projected on."""
    k = gram.shape[0]
    coef = torch.eye(k, dtype=gram.dtype)
    projections = 0
    for i in range(k):
        for j in order:
            if j == i or not gram[j, j] > 0:
                continue
            dot = coef[i] @ gram[:, j]
            if dot < 0:
                coef[i, j] -= dot / gram[j, j]
                projections += 1
    return coef.sum(0), projections


def pcgrad(grads: torch.Tensor, order: list[int]) -> torch.Tensor:
    """(K, P) task gradients -> (P,) the sum of their PCGrad projections (float64 inside)."""
    g = grads.double()
    a, _ = pcgrad_coefficients(g @ g.t(), order)
    return (a @ g).to(grads.dtype)
