"""Token-level distillation divergences over the full vocabulary (OneBar §3.4.3, Eq. 13; Table 6).

Student distribution q = softmax(student_logits), teacher distribution p = softmax(teacher
logits), both (..., V) at the same positions (in PIOPD: the student's own sampled prefixes).
Each function sums the divergence over the vocabulary at every position and averages it over
the positions where ``mask`` is True (mask (...) bool; None = every position):

* ``forward_kl``  KL(p || q) = sum p (log p - log q): the student must cover the teacher's
  alternatives (mass-covering);
* ``reverse_kl``  KL(q || p) = sum q (log q - log p): the student is penalised for mass where
  the teacher has little (mode-seeking);
* ``jsd``         beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q (the
  generalised JSD of Agarwal et al. 2024; beta = 0.5 is the symmetric Jensen-Shannon).

Gradients flow into whichever logits require them; PIOPD passes a detached teacher.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def masked_mean(per_token: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of (...) values over the True positions of ``mask`` (0 when none is True)."""
    if mask is None:
        return per_token.mean()
    if not mask.any():
        return per_token.sum() * 0.0
    return per_token[mask].mean()


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """(..., V) log-probs -> (...) KL(a || b)."""
    return (log_a.exp() * (log_a - log_b)).sum(-1)


def forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) per token, averaged over valid tokens -> scalar."""
    log_q = F.log_softmax(student_logits.float(), -1)
    log_p = F.log_softmax(teacher_logits.float(), -1)
    return masked_mean(_kl(log_p, log_q), mask)


def reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(student || teacher) per token, averaged over valid tokens -> scalar."""
    log_q = F.log_softmax(student_logits.float(), -1)
    log_p = F.log_softmax(teacher_logits.float(), -1)
    return masked_mean(_kl(log_q, log_p), mask)


def jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
        mask: torch.Tensor | None = None, beta: float = 0.5) -> torch.Tensor:
    """Generalised Jensen-Shannon divergence (weight ``beta`` on the teacher), 0 < beta < 1."""
    if not 0.0 < beta < 1.0:
        raise ValueError(f"jsd beta must lie in (0, 1), got {beta}")
    log_q = F.log_softmax(student_logits.float(), -1)
    log_p = F.log_softmax(teacher_logits.float(), -1)
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]),
                            dim=0)
    return masked_mean(beta * _kl(log_p, log_m) + (1 - beta) * _kl(log_q, log_m), mask)


def neg_entropy(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """sum q log q per token (OneBar Eq. 14's regulariser: minimising it raises the student's
    entropy), averaged over valid tokens -> scalar."""
    log_q = F.log_softmax(logits.float(), -1)
    return masked_mean((log_q.exp() * log_q).sum(-1), mask)
