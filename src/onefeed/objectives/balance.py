"""Per-task loss scaling from gradient norms: a cheap stand-in for GradNorm (Chen et al.
2018). Instead of learning the weights with their own loss, every few steps each task's
gradient norm on the shared encoder is measured and the task scales move (EMA) towards
the values that would make every weighted task gradient equally large."""

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
