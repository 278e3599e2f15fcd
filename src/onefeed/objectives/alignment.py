"""Cross-task objectives of OneFeed: SID-query contrastive alignment (§3.7, Eq. 9) and
candidate-enhancement consistency (§3.8, Eq. 10)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE (OneFeed Eq. 9): row i of ``a`` against every row of ``b``, positive
    ``b[i]``; cosine similarity over ``temperature``. a, b: (N, d) -> mean loss over rows.

    One direction (SID -> query), as Eq. 9's denominator sums over the in-batch queries.
    """
    sim = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).t()  # (N, N)
    return F.cross_entropy(sim / temperature, torch.arange(len(a), device=a.device))


def bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking (OneFeed Eq. 10): mean of -log sigma(pos - neg).
    pos, neg: (N,) scores of paired positive and negative items."""
    return -F.logsigmoid(pos.float() - neg.float()).mean()


def sequence_log_prob(logits: list[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """Teacher-forced log-probability of each row's code tuple: the sum over levels of
    log softmax(logits_j)[codes_j]. logits: L tensors (N, V_j); codes (N, L) -> (N,)."""
    total = logits[0].new_zeros(len(codes), dtype=torch.float32)
    for j, lg in enumerate(logits):
        total = total + F.log_softmax(lg.float(), -1).gather(1, codes[:, j:j + 1])[:, 0]
    return total
