"""Generation loss: negative log-likelihood of the target's code tuple (GenSAR §3.4.1, Eq. 12)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sid_nll(logits: list[torch.Tensor], target_codes: torch.Tensor,
            label_smoothing: float = 0.0) -> torch.Tensor:
    """Sum over levels of the mean cross-entropy over positions with a target.

    logits: L tensors (N, V_j); target_codes: (N, L) (or (..., L) matching the logits'
    leading dims) with -1 where there is no target.
    """
    valid = target_codes[..., 0] >= 0
    if not valid.any():
        return sum(lg.sum() * 0.0 for lg in logits)  # keeps the graph (DDP needs every param)
    total = logits[0].new_zeros(())
    for j, lg in enumerate(logits):
        total = total + F.cross_entropy(lg[valid].float(), target_codes[..., j][valid],
                                        label_smoothing=label_smoothing)
    return total


def text_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-word logits (N, W, V) against targets (N, W), -100 = ignore."""
    if not (targets != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
