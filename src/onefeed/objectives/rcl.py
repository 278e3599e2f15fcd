"""Residual contrastive learning (UniSearch §3.2, Eq. 1-2) and its coarse-to-fine negatives.

An item is encoded as ``L`` residual latents ``d^(1..L)``; level ``n`` contrasts the query
embedding ``q`` against the cumulative representation ``sg[sum_{m<n} d^(m)] + d^(n)`` (only the
new residual gets the level's gradient), with InfoNCE over in-batch negatives (and, for the
later levels, hard negatives: the coarse-to-fine strategy) and UniSearch's L2 similarity
``sim(q, d) = 1 - ||q - d||^2`` (Eq. 2; ``similarity="cosine"`` for the usual one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Similarity = Literal["l2", "cosine"]


def similarity(q: torch.Tensor, d: torch.Tensor, kind: Similarity = "l2") -> torch.Tensor:
    """q (..., D), d (..., M, D) -> (..., M): ``1 - ||q - d_m||^2`` (UniSearch Eq. 2) or cosine."""
    q = q.float().unsqueeze(-2)
    d = d.float()
    if kind == "cosine":
        return F.cosine_similarity(q, d, dim=-1)
    return 1.0 - (q - d).pow(2).sum(-1)


def cumulative_residuals(latents: torch.Tensor) -> torch.Tensor:
    """(N, L, D) residual latents -> (N, L, D) targets ``sg[sum_{m<n} d^(m)] + d^(n)`` (Eq. 1)."""
    before = torch.cumsum(latents, dim=1) - latents  # sum_{m<n} d^(m)
    return before.detach() + latents


def contrastive(q: torch.Tensor, d: torch.Tensor, temperature: float,
                hard: torch.Tensor | None = None, same: torch.Tensor | None = None,
                kind: Similarity = "l2") -> torch.Tensor:
    """InfoNCE of UniSearch Eq. 2 with in-batch negatives: row i of ``q`` (N, D) against its
    positive ``d[i]`` (N, D), the other rows of ``d`` and its own ``hard`` negatives
    (N, H, D). ``same`` (N, N) bool marks in-batch pairs that are not negatives (another pair
    with the same item); the diagonal is always the positive. -> mean loss over rows."""
    n = len(q)
    logits = similarity(q, d.unsqueeze(0).expand(n, -1, -1), kind)  # (N, N): q_i vs every d_j
    if same is not None:
        off = same & ~torch.eye(n, dtype=torch.bool, device=q.device)
        logits = logits.masked_fill(off, float("-inf"))
    if hard is not None and hard.shape[1]:
        logits = torch.cat([logits, similarity(q, hard, kind)], dim=1)
    return F.cross_entropy(logits / temperature, torch.arange(n, device=q.device))


def rcl_loss(q: torch.Tensor, latents: torch.Tensor, temperature: float,
             hard: Sequence[torch.Tensor | None] | None = None,
             same: torch.Tensor | None = None, level_weights: Sequence[float] | None = None,
             kind: Similarity = "l2") -> tuple[torch.Tensor, torch.Tensor]:
    """Residual contrastive loss (UniSearch Eq. 1): sum over levels of the weighted InfoNCE
    of ``q`` (N, D) against level n's cumulative target of ``latents`` (N, L, D).

    ``hard[n]``: (N, H_n, L, D) latents of level n's hard negatives (their own cumulative
    target at level n is used), or None for in-batch negatives only (coarse-to-fine: none at
    level 0). -> (total, (L,) per-level losses)."""
    n_levels = latents.shape[1]
    targets = cumulative_residuals(latents)
    weights = [1.0] * n_levels if level_weights is None else list(level_weights)
    per_level = []
    for n in range(n_levels):
        neg = hard[n] if hard is not None else None
        neg = cumulative_residuals(neg.flatten(0, 1)).view_as(neg)[:, :, n] \
            if neg is not None else None
        per_level.append(contrastive(q, targets[:, n], temperature, neg, same, kind))
    levels = torch.stack(per_level)
    return (levels * levels.new_tensor(weights)).sum(), levels


def coarse_to_fine_negatives(neighbours: np.ndarray, positives: np.ndarray, n_levels: int,
                             n_neg: int, rng: np.random.Generator, shrink: float = 0.5,
                             ) -> list[np.ndarray | None]:
    """Hard negatives per level, harder at each level (UniSearch §3.2 "Coarse-to-Fine").

    ``neighbours`` (n_items, P): each item's most similar items, nearest first (the item
    itself may appear; it is never drawn); ``positives`` (B,) the batch's items. Level 0 gets
    None (in-batch negatives only); level n >= 1 draws ``n_neg`` items (with replacement)
    from the first ``max(1, round(P * shrink**(n-1)))`` neighbours of each positive — the
    whole list at level 1, then ever closer ones. -> L entries of (B, n_neg) item ids or None.
    """
    out: list[np.ndarray | None] = [None]
    if n_neg <= 0:
        return out + [None] * (n_levels - 1)
    rows = neighbours[positives]  # (B, P)
    for n in range(1, n_levels):
        width = max(1, int(round(rows.shape[1] * shrink ** (n - 1))))
        pool = rows[:, :width]
        ok = pool != positives[:, None]
        # draw among the allowed slots of each row: rank a random key, masked slots last
        keys = np.where(ok[:, None, :], rng.random((len(rows), n_neg, width)), 2.0)
        pick = keys.argmin(-1)  # (B, n_neg)
        chosen = np.take_along_axis(pool, pick, axis=1)
        empty = ~ok.any(1)  # no neighbour but the item itself: fall back to a random item
        if empty.any():
            chosen[empty] = rng.integers(len(neighbours), size=(int(empty.sum()), n_neg))
        out.append(chosen.astype(np.int64))
    return out
