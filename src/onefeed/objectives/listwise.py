"""List-wise softmax DPO (S-DPO, Chen et al. 2024), as OneBar Stage II uses it (§3.4.2, Eq. 6-9).

With the policy-reference log-ratio of every candidate ``r = log pi(y|x) - log pi_ref(y|x)``
(Eq. 6), a preferred candidate w is scored against a set of alternatives A(w) under a softmax
choice model (Eq. 8-9)::

    loss_w = -log sigmoid(-log sum_{j in A(w)} exp(beta * (r_j - r_w)))

With one alternative this is pair-wise DPO, ``-log sigmoid(beta * (r_w - r_l))``. The loss
is averaged over every preferred candidate of every list; a list without a preferred
candidate or without an alternative contributes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_dpo_pairs(policy_logp: torch.Tensor, ref_logp: torch.Tensor, anchor: torch.Tensor,
                      beats: torch.Tensor, beta: float) -> torch.Tensor:
    """The general form: policy_logp, ref_logp (B, L) sequence log-probs; anchor (B, L) bool:
    which candidates are preferred anchors; beats (B, L, L) bool: ``beats[b, w, j]`` = j is
    one of w's alternatives -> mean loss over anchors that have an alternative (0 if none)."""
    r = policy_logp.float() - ref_logp.float()  # (B, L)
    diff = beta * (r.unsqueeze(1) - r.unsqueeze(2))  # (B, w, j): beta * (r_j - r_w)
    diff = diff.masked_fill(~beats, float("-inf"))
    has_alt = anchor & beats.any(dim=2)  # (B, L)
    if not has_alt.any():
        return policy_logp.sum() * 0.0  # keeps the graph
    lse = torch.logsumexp(diff[has_alt], dim=1)  # (M,)
    return -F.logsigmoid(-lse).mean()


def softmax_dpo(policy_logp: torch.Tensor, ref_logp: torch.Tensor, preferred_mask: torch.Tensor,
                beta: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Each preferred (clicked) candidate against all valid non-preferred ones of its list.

    policy_logp, ref_logp (B, L); preferred_mask (B, L) bool; valid (B, L) bool (None = all
    valid; padded candidates are never anchors nor alternatives) -> scalar mean loss.
    """
    valid = torch.ones_like(preferred_mask) if valid is None else valid
    anchor = preferred_mask & valid
    other = ~preferred_mask & valid
    beats = anchor.unsqueeze(2) & other.unsqueeze(1)
    return softmax_dpo_pairs(policy_logp, ref_logp, anchor, beats, beta)


def ordinal_softmax_dpo(policy_logp: torch.Tensor, ref_logp: torch.Tensor, levels: torch.Tensor,
                        beta: float, max_anchor_level: int = 4,
                        valid: torch.Tensor | None = None) -> torch.Tensor:
    """OneBar Eq. 7-9 on behaviour levels (Table 2: 1 = clicked and engaged by this user ...
    6 = retrieved, unexposed): every candidate of level <= ``max_anchor_level`` (the clicked
    levels) is an anchor against all candidates of a strictly lower-ranked (larger) level.

    levels (B, L) int64 -> scalar mean loss.
    """
    valid = torch.ones_like(levels, dtype=torch.bool) if valid is None else valid
    anchor = (levels <= max_anchor_level) & valid
    lower = levels.unsqueeze(1) > levels.unsqueeze(2)  # (B, w, j): level_j > level_w
    beats = anchor.unsqueeze(2) & valid.unsqueeze(1) & lower
    return softmax_dpo_pairs(policy_logp, ref_logp, anchor, beats, beta)
